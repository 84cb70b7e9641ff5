"""Reversing sanitization (detokenize, decrypt), erasure, and their one audit trail."""
