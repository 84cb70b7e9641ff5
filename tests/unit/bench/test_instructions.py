"""bench.instructions runs each of its loops (valgrind counts them; here they only run)."""

from __future__ import annotations

import pytest

from bench import instructions


@pytest.mark.parametrize(
    ("mode", "printed"),
    [
        ("scan", "scanned 4 records"),
        ("sanitize", "sanitized 8 records"),
        ("engine", "engine passes of 4 records"),
    ],
)
def test_each_mode_runs_its_loop(
    mode: str, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    instructions.main([mode, "--records", "8"])
    assert capsys.readouterr().out.strip() == printed


def test_the_engine_passes_are_the_two_joins_of_each_record() -> None:
    from zoneapp.dlp import build_scanner

    scanner = build_scanner(["CREDIT_CARD", "EMAIL"], [])
    calls = [([("a", "x 4111 1111 1111 1111"), ("b", "h1.abc")], frozenset({1}))]
    passes = instructions._engine_passes(scanner, calls)
    assert len(passes) == 2
    assert [p.args[0] for p in passes] == [b"x 4111 1111 1111 1111", b"h1.abc"]
