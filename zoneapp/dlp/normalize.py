"""The normalized view a text is scanned in: formatting must not hide a value.

The forwarded value is never changed; this view exists only for detection.
:func:`normalize` applies, in order:

1. NFKC (full-width digits and at signs, ligatures, compatibility forms);
2. every Unicode decimal digit (category Nd: Arabic-Indic, Devanagari, ...) to ASCII;
3. format characters (category Cf: zero-width space and joiner, soft hyphen,
   word joiner, BOM, bidi marks) removed;
4. every space separator (Zs), line or paragraph separator (Zl, Zp), tab, line
   break and other ASCII control whitespace to one ASCII space;
5. dash punctuation (Pd: en and em dash, non-breaking hyphen, ...) to ``-``.

ASCII text needs only step 4, so the common case is one ``str.translate``.  For
other text the per-character mapping is computed once per code point and cached.
"""

from __future__ import annotations

import unicodedata

__all__ = ["normalize"]

_ASCII_SPACES = {ord(c): " " for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"}


class _CharMap(dict[int, str | None]):
    """str.translate table for steps 2-5, filled on first sight of each code point."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)
        mapped: str | None
        if category == "Nd":
            mapped = str(unicodedata.digit(char))
        elif category == "Cf":
            mapped = None
        elif category in ("Zs", "Zl", "Zp") or code in _ASCII_SPACES:
            mapped = " "
        elif category == "Pd":
            mapped = "-"
        else:
            mapped = char
        self[code] = mapped
        return mapped


_CHAR_MAP = _CharMap()


def normalize(text: str) -> str:
    """The detection view of ``text`` (see the module docstring)."""
    if text.isascii():
        # isprintable() is False exactly when an ASCII control character is present.
        return text if text.isprintable() else text.translate(_ASCII_SPACES)
    return unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
