"""Pure record logic: the sanitizer, violation events, counters. No I/O library here."""
