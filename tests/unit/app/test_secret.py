"""Secret: the PIN wrapper never shows its value."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from zoneapp.keys import Secret

PIN = "8675309-pin"


def test_repr_and_str_hide_the_value() -> None:
    s = Secret(PIN)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>20}", str([s]), str({"pin": s})):
        assert PIN not in text
    assert repr(s) == "Secret('***')"
    assert s.reveal() == PIN.encode()
    assert Secret(PIN.encode()).reveal() == PIN.encode()


def test_cannot_be_pickled_but_can_be_copied() -> None:
    s = Secret(PIN)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert copy.copy(s) is s and copy.deepcopy({"pin": s})["pin"] is s


def test_digest_comparison() -> None:
    d = Secret(PIN).digest()
    assert PIN.encode() not in d
    assert Secret(PIN).matches(d)
    assert not Secret(PIN + "x").matches(d)


def test_type_error_does_not_echo_value() -> None:
    with pytest.raises(TypeError) as info:
        Secret(8675309)  # type: ignore[arg-type]
    assert "8675309" not in str(info.value)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_PIN", raising=False)
    monkeypatch.delenv("T_PIN_FILE", raising=False)
    assert Secret.from_env_or_file("T_PIN", "T_PIN_FILE") is None
    monkeypatch.setenv("T_PIN", "")
    assert Secret.from_env_or_file("T_PIN", "T_PIN_FILE") is None
    monkeypatch.setenv("T_PIN", PIN)
    s = Secret.from_env_or_file("T_PIN", "T_PIN_FILE")
    assert s is not None and s.reveal() == PIN.encode()


@pytest.mark.parametrize("content", [PIN + "\n", PIN + "\r\n", PIN])
def test_from_file_strips_one_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    f = tmp_path / "pin"
    f.write_bytes(content.encode())
    monkeypatch.delenv("T_PIN", raising=False)
    monkeypatch.setenv("T_PIN_FILE", str(f))
    s = Secret.from_env_or_file("T_PIN", "T_PIN_FILE")
    assert s is not None and s.reveal() == PIN.encode()


def test_from_file_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("T_PIN", raising=False)
    monkeypatch.setenv("T_PIN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="T_PIN_FILE"):
        Secret.from_env_or_file("T_PIN", "T_PIN_FILE")
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    monkeypatch.setenv("T_PIN_FILE", str(empty))
    with pytest.raises(ValueError, match="empty"):
        Secret.from_env_or_file("T_PIN", "T_PIN_FILE")
    monkeypatch.setenv("T_PIN", PIN)
    with pytest.raises(ValueError, match="set only one") as info:
        Secret.from_env_or_file("T_PIN", "T_PIN_FILE")
    assert PIN not in str(info.value)
