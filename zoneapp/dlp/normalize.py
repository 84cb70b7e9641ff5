"""The normalized view a text is scanned in: formatting must not hide a value.

The forwarded value is never changed; this view exists only for detection.
:func:`normalize` applies, in order:

0. digit look-alikes NFKC leaves alone or turns into several characters (category
   No with a digit value: dingbat and parenthesized digits, Ethiopic numerals) to
   their ASCII digit;
1. NFKC (full-width digits and at signs, ligatures, compatibility forms), then
   decomposed (NFD; together that is NFKD), so a combining mark put on a letter
   (``DË89…``, ``GB82WÉST…``) comes off again in step 6 instead of staying composed;
2. every Unicode decimal digit (category Nd: Arabic-Indic, Devanagari, ...) to ASCII,
   those of Unicode 15 and 16 too (Kawi, Nag Mundari, Garay, …: :data:`_NEWER_ZEROS`);
3. format characters (category Cf: zero-width space and joiner, soft hyphen,
   word joiner, BOM, bidi marks) removed, except the tag characters U+E0020-E007E
   ("ASCII smuggling": invisible copies of ASCII), which become their ASCII letter;
4. every space separator (Zs), line or paragraph separator (Zl, Zp) and control
   character (Cc: tab, line breaks, NUL, ESC, DEL, the C1 controls) to one ASCII
   space, so a control character between groups separates them as a space does;
5. dash punctuation (Pd: en and em dash, non-breaking hyphen, ...), the minus
   sign and the katakana prolonged sound mark ``ー`` (typed for a hyphen by Japanese
   input methods) to ``-``;
6. combining and enclosing marks (Mn, Me: accents, variation selectors, keycaps)
   removed; blank-looking fillers (Hangul fillers, the blank Braille pattern, the
   Mongolian vowel separator) to a space, as they look;
7. ideographic and halfwidth full stops to ``.`` (they separate domain labels).

Text after a right-to-left override (U+202E, up to its pop or the end of its
paragraph) is shown reversed: ``\u202e1111 1111 1111 1114`` shows as a card, so such a
text's view is its normalized stored order, `` | ``, and the normalized order shown.
ANSI terminal escape sequences (``ESC [ 1;36 m``: coloured logs, ``grep --color``)
are removed first: they show nothing, and their digits would break a number's groups.
ASCII text needs only that and step 4, so the common case is one ``str.translate``.
For other text the per-character mapping is computed once per code point and cached.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize"]

_ASCII_SPACES = {ord(c): " " for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85"}
#: Step 4 for ASCII text: every control character (NUL, ESC, DEL, ...) is a space.
_ASCII_CONTROLS = {c: " " for c in (*range(0x20), 0x7F)}


# The minus signs, and the katakana prolonged sound mark (full and halfwidth), which
# Japanese input methods give for a hyphen.
_MINUS = {0x2212, 0x2796, 0x02D7, 0x2043, 0x30FC, 0xFF70}
_FULL_STOPS = {0x3002, 0xFF61}
_FILLERS = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E}


# A CSI sequence (parameters, intermediates, final byte), or a two-character escape
# (charset selection ``ESC ( B``, ``ESC =``).
# The final byte is required, and no form ends in a digit: an escape never takes a
# digit of the text with it ("\x1b[4111…" unterminated keeps its digits).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()*+][A-Za-z]|[=>MDEHc])")
_TAGS = range(0xE0020, 0xE007F)
#: Decimal digits of Unicode 15 and 16, which this interpreter's Unicode 14 data does
#: not know (their code points are unassigned there): the first of each ten.
_NEWER_ZEROS = (
    0x10D40,  # Garay
    0x11BF0,  # Sunuwar
    0x11F50,  # Kawi
    0x16130,  # Gurung Khema
    0x16D70,  # Kirat Rai
    0x116D0,  # Myanmar Pao
    0x116DA,  # Myanmar Eastern Pwo Karen
    0x1CCF0,  # outlined digits
    0x1E4F0,  # Nag Mundari
    0x1E5F1,  # Ol Onal
)
_NEWER_DIGITS = {zero + d: str(d) for zero in _NEWER_ZEROS for d in range(10)}

# A right-to-left override and what it reverses on screen: up to its pop directional
# formatting (or an isolate's end, or the end of the text).
_OVERRIDE = re.compile("\u202e([^\u202c\u2069\n\r\u2029]*)")


class _CharMap(dict[int, str | None]):
    """str.translate table for steps 2-7, filled on first sight of each code point."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)
        mapped: str | None
        if category == "Nd":
            mapped = str(unicodedata.digit(char))
        elif code in _NEWER_DIGITS:
            mapped = _NEWER_DIGITS[code]
        elif category in ("Zs", "Zl", "Zp", "Cc") or code in _FILLERS:
            mapped = " "
        elif code in _TAGS:
            mapped = chr(code - 0xE0000)
        elif category in ("Cf", "Mn", "Me"):
            mapped = None
        elif category == "Pd" or code in _MINUS:
            mapped = "-"
        elif code in _FULL_STOPS:
            mapped = "."
        else:
            mapped = char
        self[code] = mapped
        return mapped


class _DigitLookalikes(dict[int, str]):
    """str.translate table for step 0."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = unicodedata.digit(char, None) if unicodedata.category(char) == "No" else None
        mapped = str(value) if value is not None else char
        self[code] = mapped
        return mapped


_CHAR_MAP = _CharMap()
_LOOKALIKES = _DigitLookalikes()


def normalize(text: str) -> str:
    """The detection view of ``text`` (see the module docstring)."""
    if text.isascii():
        # isprintable() is False exactly when an ASCII control character is present.
        if text.isprintable():
            return text
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        return text.translate(_ASCII_CONTROLS)
    if "\u202e" in text:
        shown = _OVERRIDE.sub(lambda m: m.group(1)[::-1], text)
        return f"{_normalized(text)} | {_normalized(shown)}"
    return _normalized(text)


def _normalized(text: str) -> str:
    """Steps 0-7 on a non-ASCII text (and its escapes removed first)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return unicodedata.normalize("NFKD", text.translate(_LOOKALIKES)).translate(_CHAR_MAP)
