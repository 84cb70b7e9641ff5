"""Instruction counts per record of bench.dlp's two loops, for a machine under load.

``valgrind --tool=callgrind --toggle-collect=functools_reduce python -m bench.instructions
MODE [--records N]``, MODE ``scan``, ``sanitize`` or ``engine``: the bench's records,
policy, key ring and a warm-up chunk are set up, then the loop runs inside
``functools.reduce`` (a C entry point the setup does not call), so callgrind counts that
loop alone: N records for ``sanitize``, N / 2 for ``scan`` and ``engine`` (it prints how
many); the count over that is instructions per record.  ``engine`` counts only the
scan's two Hyperscan passes over each record's level-0 texts (the plain ones, and the
keyed transforms' outputs) with a handler that does nothing: the floor of any scan with
these prefilter patterns.  Wall-clock µs on a shared 2-core machine vary by 50 %,
instruction counts very little.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("mode", choices=["scan", "sanitize", "engine"])
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args(argv)

    from bench.dlp import payment_records, steady_sanitizer
    from zoneapp.dlp import build_scanner
    from zoneapp.dlp.phone import DEFAULT_REGIONS

    n = args.records
    raws = payment_records(3 * n, 7)
    warm, scanned, timed = raws[:n], raws[n : 2 * n], raws[2 * n :]
    policy, sanitizer, sanitize = steady_sanitizer()
    calls: list[tuple[list[tuple[str, str]], frozenset[int]]] = []

    class Recorder:
        def scan(self, items: Any, opaque: Any = ()) -> Any:
            calls.append((list(items), frozenset(opaque)))
            return policy.scanner.scan(items, opaque)

    sanitize(warm)
    sanitizer.scanner = Recorder()  # type: ignore[assignment]
    sanitize(scanned)  # what the sanitizer hands the scanner, for the scan loop
    sanitizer.scanner = policy.scanner
    warm_calls, timed_calls = calls[: n // 2], calls[n // 2 :]
    # A scanner of its own: the policy's has already decoded (and cached) these texts
    # while they were recorded, which a worker never has for a new record.
    dlp = policy.spec.dlp
    scanner = build_scanner(
        dlp.detectors,
        [(c.name, c.pattern, c.ignore_case) for c in dlp.custom],
        phone_regions=dlp.phone_regions or DEFAULT_REGIONS,
    )
    for items, opaque in warm_calls:
        scanner.scan(items, opaque)
    if args.mode == "engine":
        passes = _engine_passes(scanner, timed_calls)
        functools.reduce(lambda _, scan: scan(), passes, None)
        print(f"engine passes of {len(timed_calls)} records")
    elif args.mode == "scan":
        functools.reduce(lambda _, call: scanner.scan(*call), timed_calls, None)
        print(f"scanned {len(timed_calls)} records")
    else:
        functools.reduce(lambda _, r: sanitize((r,)), timed, None)
        print(f"sanitized {len(timed)} records")


def _engine_passes(
    scanner: Any, calls: Sequence[tuple[list[tuple[str, str]], frozenset[int]]]
) -> list[Any]:
    """One callable per Hyperscan pass the scan makes first for each call: the plain
    texts' join on the full database, the opaque texts' join on the detectors' one."""
    passes = []
    for items, opaque in calls:
        plain = "\n".join(t for i, (_, t) in enumerate(items) if i not in opaque).encode()
        hidden = "\n".join(t for i, (_, t) in enumerate(items) if i in opaque).encode()
        for db, data in ((scanner.engine._db, plain), (scanner._opaque_engine._db, hidden)):
            if data:
                passes.append(functools.partial(db.scan, data, match_event_handler=_nothing))
    return passes


def _nothing(*_: object) -> None:
    return None


if __name__ == "__main__":
    main()
