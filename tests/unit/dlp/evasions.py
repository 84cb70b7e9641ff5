"""How careless people and attackers write a value: each function is one evasion class.

Shared by the detector tables: every valid vector is also tried in every form here
that applies to it, so a new evasion class is one function away from all detectors.
"""

from __future__ import annotations

import base64
import gzip
import json
import quopri
import re
import zlib
from collections.abc import Callable
from urllib.parse import quote

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


def between_digits(sep: str) -> Callable[[str], str]:
    """Put ``sep`` between every two adjacent digits."""

    def form(value: str) -> str:
        out = []
        for i, ch in enumerate(value):
            out.append(ch)
            if ch.isdigit() and i + 1 < len(value) and value[i + 1].isdigit():
                out.append(sep)
        return "".join(out)

    return form


def regroup(sep: str) -> Callable[[str], str]:
    """Replace the value's own separators (spaces and hyphens) with ``sep``."""

    def form(value: str) -> str:
        return re.sub("[ -]", lambda _: sep, value)

    return form


#: Forms that keep every digit and change only formatting (name, function).
FORMATTING: list[tuple[str, Callable[[str], str]]] = [
    ("dots", regroup(".")),
    ("slashes", regroup("/")),
    ("underscores", regroup("_")),
    ("mixed", lambda v: regroup("-")(v).replace("-", " ", 1).replace("-", ".", 1)),
    ("spaced-dash", regroup(" - ")),
    ("nbsp", regroup("\u00a0")),
    ("narrow-nbsp", regroup("\u202f")),
    ("en-dash", regroup("\u2013")),
    ("non-breaking-hyphen", regroup("\u2011")),
    ("zero-width-space", between_digits("\u200b")),
    ("soft-hyphen", between_digits("\u00ad")),
    ("word-joiner", between_digits("\u2060")),
    ("bom", between_digits("\ufeff")),
    ("tab-grouped", regroup("\t")),
    ("fullwidth", lambda v: v.translate(FULLWIDTH)),
    ("arabic-indic", lambda v: v.translate(ARABIC_INDIC)),
    ("devanagari", lambda v: v.translate(DEVANAGARI)),
    ("glued-letters", lambda v: f"REF{v}X"),
    ("glued-underscores", lambda v: f"ref_{v}_end"),
]


def _surrogates(char: str) -> str:
    """``char`` as JSON escapes of a UTF-16 surrogate pair (digits as mathematical bold)."""
    code = 0x1D7CE + int(char) if char.isdigit() else ord(char)
    if code < 0x10000:
        return char
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _broken(text: str, at: int) -> str:
    """A stray line break inside ``text``."""
    return text[:at] + "\n" + text[at:]


#: Forms that encode the value (name, function).
ENCODINGS: list[tuple[str, Callable[[str], str]]] = [
    ("percent-url", lambda v: "https://shop.example/pay?ref%3D" + quote(v, safe="")),
    ("percent-all", lambda v: "".join(f"%{b:02X}" for b in v.encode())),
    ("form-body", lambda v: "a=1&note=" + quote(f"my value {v}").replace("%20", "+")),
    ("base64", lambda v: base64.b64encode(v.encode()).decode()),
    ("base64-in-text", lambda v: "blob=" + base64.b64encode(f"note {v} end".encode()).decode()),
    ("base64url", lambda v: base64.urlsafe_b64encode(f"{v}??>>".encode()).decode().rstrip("=")),
    ("json-in-string", lambda v: '{"meta": {"note": "' + v + '"}}'),
    ("json-array-in-string", lambda v: '["x", "' + v + '"]'),
    ("double-percent", lambda v: quote(quote(v, safe=""), safe="")),
    # Lenient decoders ignore padding beyond what the length needs.
    ("base64-extra-padding", lambda v: base64.b64encode(v.encode()).decode().rstrip("=") + "==="),
    ("base64-padding-then-text", lambda v: base64.b64encode(v.encode()).decode() + "=x"),
    # Character references html.unescape (and browsers) read without their ";".
    ("html-decimal-no-semicolon", lambda v: "".join(f"&#{ord(c)}" for c in v)),
    ("html-hex-padded", lambda v: "".join(f"&#x{ord(c):06x};" for c in v)),
    ("html-named-space", lambda v: re.sub("[ -]", "&ThinSpace;", v)),
    ("percent-u", lambda v: "".join(f"%u{ord(c):04X}" for c in v)),
    # A surrogate pair per character: mathematical digits, NFKC-folded once decoded.
    ("json-surrogates", lambda v: "n: " + "".join(_surrogates(c) for c in v)),
    # base64 glued to characters of its alphabet, at any alignment.
    ("base64-glued-prefix", lambda v: "card_" + base64.b64encode(v.encode()).decode().rstrip("=")),
    ("base64-letters-glued", lambda v: "xyz" + base64.b64encode(v.encode()).decode()),
    (
        "base64-url-path",
        lambda v: "https://api.test/u/" + base64.urlsafe_b64encode(v.encode()).decode() + "/x",
    ),
    ("base64-stray-break", lambda v: _broken(base64.b64encode(v.encode()).decode(), 5)),
    # A protobuf field (tag, length) around the value.
    (
        "base64-protobuf",
        lambda v: base64.b64encode(
            b"\x08\x01\x12" + bytes([len(v.encode())]) + v.encode()
        ).decode(),
    ),
    ("base64-of-json", lambda v: base64.b64encode(('{"n": "' + v + '"}').encode()).decode()),
    # Other byte orders and widths of the text under base64.
    ("base64-utf16be", lambda v: base64.b64encode(f"n: {v}".encode("utf-16-be")).decode()),
    ("base64-utf16-bom", lambda v: base64.b64encode(f"n: {v}".encode("utf-16")).decode()),
    ("base64-utf32", lambda v: base64.b64encode(f"n: {v}".encode("utf-32")).decode()),
    # Compressed, then base64 (a gzip header is "H4sI").
    ("base64-gzip", lambda v: base64.b64encode(gzip.compress(f"n: {v}".encode())).decode()),
    ("base64-zlib", lambda v: "z=" + base64.b64encode(zlib.compress(f"n: {v}".encode())).decode()),
    # MIME: lines of an odd width after the part's headers.
    (
        "mime-part",
        lambda v: (
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + _wrapped(base64.b64encode(f"note: {v}, thanks".encode()).decode(), 15)
        ),
    ),
    # Quoted-printable, every byte escaped or only the spaces.
    ("quoted-printable", lambda v: "".join(f"={b:02X}" for b in v.encode())),
    (
        "quoted-printable-spaces",
        lambda v: quopri.encodestring(f"n: {v} ok".encode(), True).decode(),
    ),
    # Hex: bare, after 0x, and as hexdumps print it.
    ("hex", lambda v: f"n: {v}".encode().hex()),
    ("hex-0x", lambda v: "0x" + v.encode().hex().upper()),
    ("hexdump", lambda v: " ".join(f"{b:02x}" for b in f"n: {v}".encode())),
    ("hex-colons", lambda v: ":".join(f"{b:02X}" for b in f"n: {v}".encode())),
    ("hex-0x-bytes", lambda v: ", ".join(f"0x{b:02x}" for b in v.encode())),
    # Dumps as the tools print them, the value running onto the next line.
    ("xxd-plain", lambda v: _wrapped(f"Customer card number: {v}, exp".encode().hex(), 60)),
    ("od", lambda v: _wrapped(" " + " ".join(f"{b:02x}" for b in f"note: {v}".encode()), 48)),
    ("hexdump-C", lambda v: _hexdump(f"Customer card number: {v}, ok".encode())),
    ("xxd", lambda v: _xxd(f"Customer card number: {v}, ok".encode())),
    # Markup around the pieces, and escapes of a body logged escaped.
    (
        "html-cells",
        lambda v: "".join(f"<td>{c}</td>" for c in v.split(" ")) if " " in v else f"<b>{v}</b>",
    ),
    ("html-span-at", lambda v: v.replace("@", "<span>@</span>").replace(" ", "<br>")),
    ("escaped-newlines", lambda v: v.replace(" ", "\\n").replace("-", "\\r\\n")),
    # Control characters between the characters (a JSON \u0000 decodes to NUL).
    ("nul-separated", lambda v: v.replace(" ", "\x00").replace("-", "\x1b")),
    # Non-Latin text with a no-break or ideographic space, under base64.
    ("base64-cjk", lambda v: base64.b64encode(f"カード番号\u3000{v}です".encode()).decode()),
    ("base64-cyrillic", lambda v: base64.b64encode(f"номер карты:\u00a0{v}".encode()).decode()),
    (
        "base64-gzip-members",
        lambda v: base64.b64encode(gzip.compress(b"log\n") + gzip.compress(v.encode())).decode(),
    ),
    ("hex-gzip", lambda v: gzip.compress(f"n: {v}".encode()).hex()),
    # A split value written out as a list inside a text: Python's repr, lenient JSON.
    ("python-repr-list", lambda v: "parts=" + repr(_pieces(v))),
    ("json-list-trailing-comma", lambda v: "x " + json.dumps(_pieces(v))[:-1] + ",]"),
]


def _pieces(value: str) -> list[str]:
    """``value`` in pieces (a split value): its groups, or four characters each."""
    groups = re.split(r"[ -]", value)
    if len(groups) > 1:
        return groups
    return [value[i : i + 4] for i in range(0, len(value), 4)]


def _hexdump(data: bytes) -> str:
    """``hexdump -C``: offset, sixteen bytes in two halves, the characters."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at : at + 16]
        hexes = (
            " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        )
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:08x}  {hexes:<48}  |{chars}|")
    return "\n".join(lines) + "\n"


def _xxd(data: bytes) -> str:
    """``xxd``: offset, eight groups of four digits, the characters."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at : at + 16]
        digits = chunk.hex()
        groups = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:08x}: {groups:<39}  {chars}")
    return "\n".join(lines) + "\n"


def _wrapped(text: str, width: int) -> str:
    """``text`` in lines of ``width`` characters."""
    return "\r\n".join(text[i : i + width] for i in range(0, len(text), width))
