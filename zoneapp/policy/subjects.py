"""Data subject ids are normalized before they are hashed, so erasure finds every spelling.

``Jane.Doe@Example.com `` and ``jane.doe@example.com`` are one data subject: with the
``email`` normalizer they hash to the same index key, so erasing one erases both.
Normalizing more than the id's owner considers equal over-erases (two subjects
merged), never under-erases; pick ``exact`` for ids that are case-sensitive by design.

* ``email`` - Unicode NFKC (full-width letters become ASCII), surrounding whitespace
  removed, case-folded (local part included: mail providers treat it case-insensitively
  in practice).
* ``trim`` (default) - Unicode NFC, surrounding whitespace removed.
* ``exact`` - the id as it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping

__all__ = ["NORMALIZERS", "normalize_email", "normalize_trim"]


def normalize_email(subject: str) -> str:
    return unicodedata.normalize("NFKC", subject).strip().casefold()


def normalize_trim(subject: str) -> str:
    return unicodedata.normalize("NFC", subject).strip()


def _exact(subject: str) -> str:
    return subject


NORMALIZERS: Mapping[str, Callable[[str], str]] = {
    "email": normalize_email,
    "trim": normalize_trim,
    "exact": _exact,
}
