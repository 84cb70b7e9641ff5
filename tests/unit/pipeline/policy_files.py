"""Policy files for the hot-reload and shadow tests: the unit fixture, edited as text."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures import POLICY

BASE = POLICY.read_text()


def edited(*pairs: tuple[str, str], version: str | None = None) -> str:
    """The fixture with each ``old`` text replaced by ``new`` (each must be there)."""
    text = BASE
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    if version is not None:
        text = text.replace('version: "unit-fixture.1"', f'version: "{version}"')
    return text


#: A valid change a live worker can apply: notes are no longer forwarded.
NOTES_SUPPRESSED = edited(
    ("      notes: {transform: keep, class: confidential}", "      notes: {transform: suppress}"),
    version="unit-fixture.2",
)

#: An invalid policy: keep of a restricted class into the confidential zone (line 47).
INVALID = edited(
    (
        "      payment_id: {transform: keep, class: internal}",
        "      payment_id: {transform: keep, class: restricted}",
    ),
    version="unit-fixture.bad",
)

#: Valid, but it moves a boundary's destination: agents are fixed at start.
NEW_DESTINATION = edited(
    ("    destination: confidential.payments", "    destination: confidential.payments-v2"),
    version="unit-fixture.moved",
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
