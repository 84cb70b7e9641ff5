"""Every view of a text the DLP scans: normalized, decoded, and split values joined.

For each text of a record the scanner sees:

- the normalized view (:func:`~zoneapp.dlp.normalize.normalize`), and the raw text
  when it differs;
- decoded views of the normalized text, each normalized and expanded again, up to
  :attr:`Limits.depth` layers deep:

  - **percent-encoding** (URLs, form bodies): when the text holds a ``%XX``
    escape, ``unquote``; when it also has a ``+``, or has a ``+`` between two
    digits, ``unquote_plus``;
  - **base64 and base64url**: every token of 12 or more characters (padding
    included, padding optional) of either alphabet, and a text made only of base64
    and spaces joined (MIME-wrapped lines, grouped tokens), and likewise lines of 12
    or more base64 characters after other text (a MIME part's headers), that decodes
    to text:
    UTF-8, UTF-16 or UTF-32 (either byte order) or Latin-1 that is printable, or at
    least 90% printable and 75% printable ASCII; a token that is a gzip or zlib
    stream is inflated first (at most ``Limits.chars`` + 1 bytes, so a bomb exceeds
    the limit).  A padded token
    with extra characters in front (``x`` + b64) is decoded from where its padding
    says it starts;
  - **hex**: every run of 8 or more hex-encoded bytes, bare or each followed by the
    same separator, a space, colon or dash (``34313131…``, ``34 31 31 31 …``,
    ``34:31:…``), read from its first and its second digit, that decodes to text as
    base64 does;
  - **quoted-printable**: a text with two or more upper-case ``=XX`` escapes (as
    RFC 2045 writes them), its soft line breaks removed;
  - **escapes**: JSON and C-style ``\\uXXXX`` / ``\\xXX`` escapes, ``\\n``, ``\\r``,
    ``\\t`` and ``\\/`` (a body logged escaped), and HTML character references
    (``&#52;``, ``&#x34;``, ``&amp;``);
  - **markup**: HTML and XML tags removed (``<td>4111</td><td>1111</td>``,
    ``john<span>@</span>example.com``), character references then decoded;
  - **JSON in a string**: a text that starts with ``{``, ``[`` or ``"`` and parses as
    JSON contributes every key, string and number inside, and the joined views of
    its arrays;
  - **lists in a text**: every ``[...]`` list of scalars, quoted or not, anywhere
    in a text, strict JSON or not (``parts=['4111', '1111', ...]``, a trailing
    comma), gives the joined views of its items, as an array's split value does.

- **split values**: adjacent short scalars of one array (12 characters or fewer,
  ``["4111","1111","1111","1111"]``, ``[4,1,1,1,...]``, ``[[4111,1111],[1111,1111]]``
  or ``[{"a":"4111"},{"b":"1111"},...]``; nulls, empty strings and empty arrays or
  objects in between are skipped), and the values of one key across the array's
  objects (``[{"d":"4111"},{"d":"1111"},...]``, digits only) are also
  scanned joined, without and with a space between them (:func:`joined_views`).

Bounds, per record: at most :attr:`Limits.views` decoded views holding at most
:attr:`Limits.chars` characters in all.  A record that needs more, or whose
decoding goes deeper than :attr:`Limits.depth`, is not scanned partially: the
scanner reports ``DECODE_LIMIT`` at that path and the record is quarantined.
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import html
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson

__all__ = [
    "DECODE_LIMIT",
    "TRIGGERS",
    "Budget",
    "DecodeTooLarge",
    "Limits",
    "decode",
    "joined_views",
]

DECODE_LIMIT = "DECODE_LIMIT"
SHORT = 12

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{10,}={0,2}")
# A text that is nothing but base64 and spaces: MIME-wrapped lines (their breaks are
# spaces in the normalized view) or a token printed in groups.
_B64_WRAPPED = re.compile(r"[A-Za-z0-9+/_=-]+(?: +[A-Za-z0-9+/_=-]+)+ *")
# Lines of 12 or more base64 characters and the line after them: a wrapped body.
# Possessive, and only from the start of a run: a long run without a space after it
# fails once, not once per character (quadratic on a one-line body).
_B64_LINES = re.compile(
    r"(?<![A-Za-z0-9+/_-])(?:[A-Za-z0-9+/_-]{12,}+={0,2} +)+[A-Za-z0-9+/_-]+={0,2}"
)
MIN_B64 = 12
_PRINTABLE_SHARE = 0.9
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# The date and hour of an ISO 8601 time (``2026-11-20T07``, then ":"), a base64 token
# of 13 characters on every record: 9 bytes from digits, "-" and "T" hold no value.
_DATE_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}")
_LIST = re.compile(r"\[([^\[\]]{1,4000})\]")
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
# "[at]" and "(dot)" for the characters of an address written to fool scrapers.
_SPELLED = re.compile(r" ?[\[({<] ?(at|dot) ?[\])}>] ?", re.IGNORECASE)
# Spaces around an address's "@" ("jane.doe @ example.com"): only before a lower-case
# domain that ends in a common top-level domain, so "meet @ home. Then", "@ 5pm" and
# "see you @ 5pm.ok" stay as they are.
_COMMON_TLDS = (
    "com|org|net|edu|gov|mil|int|info|biz|io|co|me|us|uk|eu|de|fr|es|it|nl|be|ch|at|se|no"
    "|dk|fi|pl|pt|ie|ca|au|nz|jp|cn|in|br|mx|ru|il|za|kr|sg|hk|tw"
)
_SPACED_AT = re.compile(
    rf"(?<=[A-Za-z0-9]) ?@ ?(?=[a-z][a-z0-9-]{{0,62}}(?:\.[a-z0-9-]{{1,63}}){{0,6}}"
    rf"\.(?:{_COMMON_TLDS})(?![a-z0-9-]))"
)
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
# An RFC 2047 encoded word: charset, Q or B, text without "?" or spaces (RFC 2047
# limits a word to 75 characters; a longer one is read up to a bound).
_MIME_WORD = re.compile(r"=\?[^?\s]{1,40}\?[QqBb]\?[^?\s]{0,1000}\?=")
# A soft line break; not the padding at the end of a base64 line (16+ characters).
_QP_SOFT_BREAK = re.compile(rb"(?<![A-Za-z0-9+/_-]{16})= +")
_HEX = re.compile(
    # Long runs and the lines after them (xxd -p), bytes each followed by one or two
    # spaces (od, hexdump), a colon or a dash, and "0x" bytes.
    r"[0-9A-Fa-f]{16,}(?: {1,2}[0-9A-Fa-f]{16,})*(?: {1,2}[0-9A-Fa-f]{2,15}(?![0-9A-Za-z]))?"
    r"|(?:[0-9A-Fa-f]{2} {1,3}){7,}[0-9A-Fa-f]{2}"
    r"|(?:[0-9A-Fa-f]{2}:){7,}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{2}-){7,}[0-9A-Fa-f]{2}"
    r"|(?:0[xX][0-9A-Fa-f]{2}[ ,]{0,2}){8,}"
)
_HEX_SEPARATORS = re.compile(r"[ :,-]|0[xX]")
# One line of ``xxd`` (offset, up to eight groups of four digits, two spaces, the
# characters) or of ``hexdump -C`` (offset, sixteen bytes, ``|characters|``).
_DUMP_LINE = re.compile(
    r"[0-9a-f]{7,8}: ((?:[0-9a-f]{4} ){0,7}[0-9a-f]{2,4})  +"
    r"|[0-9a-f]{7,8}  ((?:[0-9a-f]{2}  ?){0,15}[0-9a-f]{2}) +\|(.{1,16}?)\|"
)
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{8,}")
_WHITESPACE = str.maketrans("", "", "\t\n\r")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-record bounds of the decoded views."""

    depth: int = 3
    views: int = 4096
    chars: int = 4 * 1024 * 1024


#: Engine patterns that say a text may need decoding: (decoder name, pattern).
TRIGGERS: tuple[tuple[str, str], ...] = (
    # %XX escapes, or a form body's "+" for a space between digits.
    ("percent", "%[0-9A-Fa-f]{2}|[0-9]\\+[0-9]"),
    # A run of the alphabets that makes a token of MIN_B64 or more: 12 characters, or
    # 10 or 11 and padding.  Whatever follows ends the run, "=" included, so a run
    # with extra padding ("...MQ===") still counts; one match per run, at its end.
    (
        "base64",
        "(?:^|[^A-Za-z0-9+/_\\n-])(?:[A-Za-z0-9+/_-]{12,}(?:[^A-Za-z0-9+/_\\n-]|$)"
        "|[A-Za-z0-9+/_-]{10,11}=)"
        # A text of nothing but base64 and spaces (wrapped lines, groups, a stray
        # break): decoded joined.
        "|^[A-Za-z0-9+/_=-]+(?: +[A-Za-z0-9+/_=-]+)+ *$",
    ),
    # 8 or more hex-encoded bytes, bare or each followed by one separator (hexdump
    # "34 31", "34:31"); a UUID's groups are longer than a byte and shorter than 8.
    # Dumps: xxd's groups of four, "0x34 0x31 ...".
    (
        "hex",
        "(?:^|[^0-9A-Fa-f])(?:[0-9A-Fa-f]{16}|(?:[0-9A-Fa-f]{2}  ?){7}[0-9A-Fa-f]{2}"
        "|(?:[0-9A-Fa-f]{2}:){7}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}"
        "|(?:[0-9A-Fa-f]{4} ){3}[0-9A-Fa-f]{4})|(?:0[xX][0-9A-Fa-f]{2}[ ,]{0,2}){7}0[xX]",
    ),
    ("json", '^ *[\\[{"]'),
    # A list written out inside a text, strict JSON or not (Python's repr, a log line).
    ("list", "\\[ *['\"]?[0-9A-Za-z+][^\\]\\n]{0,64},"),
    # Text-level encodings, peeled in one layer (as three, they ran into the depth
    # limit on ordinary HTML): \\u, \\x and IIS-style %u escapes; any character
    # reference html.unescape reads, with or without its ";" (&#52, &#x00034;, &nbsp,
    # &ThinSpace;); an HTML or XML tag (a receipt's table cells, a <span> around the
    # "@"); quoted-printable's "=XX" escape (also any URL's "id=12") or soft break.
    (
        "text",
        "\\\\u[0-9A-Fa-f]{4}|\\\\x[0-9A-Fa-f]{2}|%[uU][0-9A-Fa-f]{4}|\\\\[nrt/]"
        "|&#[0-9xX]|&[A-Za-z][A-Za-z0-9]"
        "|<[A-Za-z/!?][^<>\\n]{0,512}>"
        # Two upper-case "=XX" escapes, as RFC 2045 writes them (random bytes decoded
        # from base64 and spliced back give one now and then, and soft breaks a lot).
        "|=[0-9A-F]{2}[^\\n]*=[0-9A-F]{2}"
        # An RFC 2047 encoded word (a mail header), and a terminal escape spelled out.
        "|=\\?[^?\\n]{1,40}\\?[QqBb]\\?|\\\\033\\[|\\\\e\\[|\\^\\[\\["
        # An e-mail address written to fool scrapers: "jane [at] example [dot] com",
        # "jane @ example.com".
        "|[\\[({<] ?[Aa][Tt] ?[\\])}>]|[A-Za-z0-9] @ ?[a-z0-9]|[A-Za-z0-9] ?@ [a-z0-9]",
    ),
)


_END = object()


def joined_views(values: Sequence[Any]) -> list[str]:
    """Views of adjacent short scalars of one array, joined (see the module docstring).

    Inner arrays of scalars and objects of one scalar count as their scalars, empty
    arrays and objects as nothing; the objects of the array are also read key by key
    (``[{"d": "4111"}, {"d": "1111"}, …]``), strings of digits only (:func:`_runs`);
    an array of 8 or more integers 0-255 is also read as bytes, as text if it is."""
    views: list[str] = []
    _runs(values, views, digits_only=False)
    # Bytes written as numbers (Node's Buffer in JSON, Java's byte[] through Gson):
    # their text, if they are text.
    if (
        len(values) >= _MIN_BYTES
        and all(type(v) is int and 0 <= v <= 255 for v in values)
        and (text := _as_text(bytes(values))) is not None
    ):
        views.append(text)
    objects = [v for v in values if isinstance(v, dict)]
    if len(objects) >= 2:
        keys: dict[str, None] = {}
        for obj in objects:
            keys.update(dict.fromkeys(obj))
        for key in list(keys)[:_MAX_COLUMNS]:
            column = [obj.get(key) for obj in objects]
            _runs(column, views, digits_only=True)
        return list(dict.fromkeys(views))  # an object of one key is in both
    return views


#: The fewest numbers 0-255 of an array read as bytes (a value's text is longer).
_MIN_BYTES = 8
#: How many keys of an array's objects are read as columns.
_MAX_COLUMNS = 64
#: How deep inner arrays are read for their scalars.
_MAX_NESTING = 4


def _runs(values: Sequence[Any], views: list[str], *, digits_only: bool) -> None:
    """Append the joined views of each run of short scalars in ``values``.

    Fractional numbers break a run: coordinates, measurements and prices are not pieces
    of a number (``[-66.56689, 46.76254]`` joined is a card by chance one time in 20).
    With ``digits_only`` (a key's column across objects), only strings of digits count:
    such a column holds SKUs, names, prices and quantities far more often than pieces,
    and a cart's quantities ``1, 2, 1, 1, …`` joined read as a phone or card number."""
    run: list[str] = []
    for value in [*_scalars(values, _MAX_NESTING), _END]:
        if value is None or isinstance(value, bool) or value == "":
            continue  # nothing in it: a null or an empty string does not break a run
        text: str | None = None
        if isinstance(value, str):
            text = value.strip()
            if digits_only and not text.isdigit():
                text = None
        elif (
            isinstance(value, int | float)
            and not digits_only
            and (not isinstance(value, float) or value.is_integer())
        ):
            text = _number_text(value)
        if text is not None and 0 < len(text) <= SHORT:
            run.append(text)
            continue
        if len(run) >= 2:
            views.append("".join(run))
            views.append(" ".join(run))
        run = []


def _scalars(values: Sequence[Any], depth: int) -> Iterable[Any]:
    """``values`` with inner arrays (``depth`` levels) and objects of one scalar value
    replaced by their scalars, and empty ones dropped; anything else is kept, and
    breaks a run."""
    for value in values:
        if isinstance(value, list) and depth > 0:
            yield from _scalars(value, depth - 1)
        elif isinstance(value, dict) and len(value) <= 1:
            inner = next(iter(value.values()), None)
            yield inner if not isinstance(inner, dict | list) else value
        else:
            yield value


def _spliced(match: re.Match[str], decoded: dict[str, list[str]]) -> str:
    texts = decoded.get(match.group())
    return f" {texts[0]} " if texts else match.group()


def _number_text(value: float) -> str:
    """A number's digits as a producer meant them: ``4111.0`` is 4111 (Python and
    JavaScript producers write whole numbers as floats)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def decode(text: str, decoder: str, budget: Budget | None = None) -> list[str]:
    """One layer of decoding of a normalized text by one decoder (not normalized yet);
    compressed tokens inflate within ``budget`` (raises :class:`DecodeTooLarge`)."""
    budget = budget or Budget()
    if decoder == "percent":
        views = [unquote(text, errors="replace")] if "%" in text else []
        if "+" in text:
            views.append(unquote_plus(text, errors="replace"))
        return views
    if decoder == "base64":
        tokens = _B64.findall(text)
        if " " in text:
            if _B64_WRAPPED.fullmatch(text):
                # Nothing but base64 and spaces: wrapped lines, groups, a stray break.
                tokens.append("".join(text.split()))
            else:
                # Wrapped lines after other text (a MIME part's headers, a log prefix).
                tokens += ["".join(run.split()) for run in _B64_LINES.findall(text)]
        decoded = {
            t: texts
            for t in tokens
            if len(t) >= MIN_B64 and not _DATE_HOUR.fullmatch(t)
            if (texts := _base64_text(t, budget))
        }
        views = [view for texts in decoded.values() for view in texts]
        if decoded and not (len(tokens) == 1 and tokens[0] == text):
            # The tokens' texts put back in their places (one pass), so words around
            # them still give context ("ssn <base64 of 9 digits>").
            views.append(_B64.sub(lambda m: _spliced(m, decoded), text))
        return views
    if decoder == "text":
        # Escapes, tags and character references, then quoted-printable as well: two
        # views, since "=XX" in a URL is no escape and its decoding may break a value.
        spelled = _SPACED_AT.sub("@", _SPELLED.sub(_spelled, text))
        plain = html.unescape(_TAG.sub("", _ESCAPE.sub(_unescape, spelled)))
        if "=" not in plain:
            return [plain]
        data = _QP_SOFT_BREAK.sub(b"", plain.encode("utf-8", "surrogatepass"))
        raw = _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), data)
        views = [plain, _as_text(raw) or raw.decode("utf-8", "replace")]
        if "=?" in plain and (words := _mime_words(plain)) is not None:
            views.append(words)
        return views
    if decoder == "hex":
        views = []
        dump: list[str] = []
        chars: list[str] = []
        for line in _DUMP_LINE.finditer(text):
            # A dump: its bytes, and its column of characters, each joined across lines.
            xxd, hexdump, column = line.groups()
            line_digits = (xxd or hexdump).replace(" ", "")
            dump.append(line_digits)
            # xxd's column holds one character per byte, after the padding.
            end = line.end()
            chars.append(column if xxd is None else text[end : end + len(line_digits) // 2])
        if dump:
            joined = "".join(dump)
            whole = bytes.fromhex(joined[: len(joined) // 2 * 2])
            if (found := _bytes_text(whole, budget)) is not None:
                views.append(found)
            views.append("".join(chars))
        for run in _HEX.findall(text):
            digits = _HEX_SEPARATORS.sub("", run)
            for start in (0, 1):  # a glued-on hex digit in front shifts the bytes
                part = digits[start : len(digits) - (len(digits) - start) % 2]
                if (found := _bytes_text(bytes.fromhex(part), budget)) is not None:
                    views.append(found)
        return views
    if decoder == "json":
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if isinstance(doc, str):
            return [doc]  # a JSON string literal: its escapes decoded
        return list(_json_texts(doc)) if isinstance(doc, dict | list) else []
    if decoder == "list":
        # Every list's joined views in one pair of views ("|" ends a digit run), so a
        # text of thousands of lists stays two views.
        compact: list[str] = []
        spaced: list[str] = []
        for body in _LIST.findall(text):
            items = [item.strip().strip("'\"").strip() for item in body.split(",")]
            pieces = joined_views(items)
            compact += pieces[0::2]
            spaced += pieces[1::2]
        return [" | ".join(compact), " | ".join(spaced)] if compact else []
    raise ValueError(f"unknown decoder {decoder!r}")


_ESCAPE = re.compile(
    r"\\u([Dd][89ABab][0-9A-Fa-f]{2})\\u([Dd][C-Fc-f][0-9A-Fa-f]{2})"  # a surrogate pair
    r"|\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})|%[uU]([0-9A-Fa-f]{4})|\\([nrt/])"
    # An escaped backslash (a JSON text escaped twice, as a log line of a log line):
    # one layer gives the single escapes, which the next layer reads.
    r"|\\(\\)"
    # A terminal escape spelled out (a shell's "\033[", "\e[", a pager's "^[["): the
    # escape it stands for, which normalization removes with its sequence.
    r"|(\\033\[|\\e\[|\^\[\[)"
)
_ESCAPED = {"n": " ", "r": " ", "t": " ", "/": "/"}


def _spelled(m: re.Match[str]) -> str:
    return "@" if m.group(1).lower() == "at" else "."


def _unescape(m: re.Match[str]) -> str:
    high, low, u, x, pct, char, backslash, terminal = m.groups()
    if terminal is not None:
        return "\x1b["
    if backslash is not None:
        return backslash
    if char is not None:
        return _ESCAPED[char]
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
    code = int(u or x or pct, 16)
    return chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _mime_words(text: str) -> str | None:
    """A header's RFC 2047 encoded words decoded (``=?UTF-8?Q?john.doe=40example.com?=``,
    ``=?utf-8?B?…?=``), or None without one: one escape is enough there, while
    quoted-printable in a body starts on two.  A word that does not decode (an unknown
    charset) stays as written."""
    # Each word on its own: the email package's own search of a whole text is
    # quadratic in the words that open and never close.
    decoded, words = _MIME_WORD.subn(_mime_word, text)
    return decoded if words else None


def _mime_word(m: re.Match[str]) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(m.group())))
    except (ValueError, LookupError, UnicodeError, email.errors.MessageError):
        return m.group()


def _base64_text(token: str, budget: Budget) -> list[str]:
    """The texts a base64 / base64url token decodes to, read from each of its first
    four characters: a prefix glued on with characters of the alphabets (``card_``,
    ``id-``, a URL path) shifts where the encoding starts.  Padding is ignored, so
    extra padding (``...MQ===``) does not matter either.

    Bytes that are not text but at least half printable ASCII (a protobuf or
    length-prefixed frame around a value) give their runs of 8 or more printable ASCII
    characters, as ``strings(1)`` does.
    """
    body = token.rstrip("=")
    texts = []
    for start in range(min(4, len(body))):
        part = body[start:]
        if len(part) % 4 == 1:
            part = part[:-1]  # a lone last character holds no whole byte
        data = part.encode("ascii").translate(_URLSAFE)
        try:
            raw = binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        except binascii.Error:
            continue
        text = _bytes_text(raw, budget)
        if text is not None:
            texts.append(text)
    return texts


def _bytes_text(raw: bytes, budget: Budget) -> str | None:
    """The text of decoded bytes (base64, hex), if any: a gzip or zlib stream inflated
    first; text as :func:`_as_text` reads it; else, for bytes at least half printable
    ASCII (a protobuf or length-prefixed frame around a value), their runs of 8 or
    more printable ASCII characters, as ``strings(1)`` gives them."""
    if _compressed(raw):
        raw = _inflated(raw, budget)
    junk = _junk(raw)
    text = _as_text(raw) if _maybe_text(raw, junk) else None
    if text is None and junk * 2 <= len(raw):
        # Mostly text around a binary frame; random bytes are about 37% text.
        runs = _PRINTABLE_RUN.findall(raw)
        text = " ".join(r.decode("ascii") for r in runs) if runs else None
    return text


def _compressed(raw: bytes) -> bool:
    """A gzip header, or a zlib one (deflate, any window size, its check bits right)."""
    return len(raw) > 2 and (
        raw[:2] == b"\x1f\x8b"
        or (raw[0] & 0x0F == 8 and raw[0] >> 4 <= 7 and (raw[0] << 8 | raw[1]) % 31 == 0)
    )


#: The most one decode call may inflate without a budget from the scanner: a record's
#: decoded characters (:attr:`Limits.chars`).
INFLATE_LIMIT = Limits().chars


class DecodeTooLarge(Exception):
    """Inflating a record's compressed tokens would exceed its decoded-characters
    limit: the scanner quarantines the record (``DECODE_LIMIT``) instead of scanning
    part of it."""


class Budget:
    """Bytes a record may still inflate, shared by every token of one decode call and
    handed on by the scanner from its ``Limits.chars`` (what is left of it)."""

    __slots__ = ("left",)

    def __init__(self, left: int = INFLATE_LIMIT) -> None:
        self.left = left


def _inflated(raw: bytes, budget: Budget) -> bytes:
    """A gzip or zlib stream inflated, every member of a multi-member gzip (``cat
    a.gz b.gz``) one after the other, and the plain bytes after the last one; the bytes
    as they were if the first is not a stream.  Raises :class:`DecodeTooLarge` past the
    budget, so a bomb is never inflated further than the record's limit."""
    out = bytearray()
    rest = raw
    members = 0
    while rest:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        try:
            out += inflater.decompress(rest, budget.left - len(out) + 1)
        except zlib.error:
            break
        members += 1
        if len(out) > budget.left:
            raise DecodeTooLarge
        if not inflater.eof:
            rest = b""  # a truncated stream: what it gave
            break
        rest = inflater.unused_data
        if not _compressed(rest):
            break
    if not members:
        return raw
    budget.left -= len(out)
    return bytes(out) + rest


def _junk(raw: bytes) -> int:
    """How many of the bytes are not printable ASCII or whitespace (one C call)."""
    return len(raw.translate(None, _TEXT_BYTES))


def _maybe_text(raw: bytes, junk: int) -> bool:
    """False only where :func:`_as_text` would say None: most non-text bytes (``junk``
    is their count, :func:`_junk`) and not valid UTF-8 (random bytes, which is what an
    id read as base64 gives), in a few C calls."""
    size = len(raw)
    if junk * 4 <= size:
        return size > 0
    # Wide text (UTF-16/32) needs NULs in half of one byte lane: with too few NULs in
    # all, neither lane is counted.
    if raw.count(0) * 2 >= size // 2 and (
        raw[1::2].count(0) * 2 >= size // 2 or raw[::2].count(0) * 2 >= size // 2
    ):
        return True
    # Only valid, printable UTF-8 can still be text (_as_text's first test).
    return not raw.isascii() and "\ufffd" not in raw.decode("utf-8", "replace")


def _mostly_printable(text: str) -> bool:
    """Valid UTF-8 that is text: at least 90% printable once whitespace (no-break and
    ideographic spaces, line separators) and format characters (joiners) are left
    out; random bytes are almost never valid UTF-8 this long."""
    good = sum(c.isprintable() or c.isspace() or unicodedata.category(c) == "Cf" for c in text)
    return good >= _PRINTABLE_SHARE * len(text)


def _as_text(raw: bytes) -> str | None:
    """Decoded bytes as text, if they are text: UTF-8 (a BOM allowed), UTF-16 when
    every other byte is NUL (little-endian, PowerShell's -EncodedCommand, or
    big-endian, Java's ``getBytes(UTF_16)`` with its BOM; UTF-32 likewise), else Latin-1 (cp1252
    producers); accepted when at least 90% of it is printable, so a stray NUL or
    escape code does not hide the rest, while random bytes (a ciphertext) never pass.
    """
    if not raw:
        return None
    if not raw.isascii():
        text = raw.decode("utf-8", "replace")  # no exception on the common path
        if "\ufffd" not in text and (text.isprintable() or _mostly_printable(text)):
            return text
    even = len(raw) % 2 == 0
    utf16le = even and raw[1::2].count(0) * 2 >= len(raw) // 2
    utf16be = even and raw[::2].count(0) * 2 >= len(raw) // 2
    junk = _junk(raw)
    if not (utf16le or utf16be) and junk > 0.25 * len(raw):
        return None  # random bytes: most are not printable ASCII (a ciphertext)
    candidates = [raw.decode("ascii") if raw.isascii() else raw.decode("utf-8", "replace")]
    utf32 = len(raw) % 4 == 0 and raw[2::4].count(0) * 4 >= len(raw)
    for wide, codec in (
        (utf16le, "utf-16-le"),
        (utf16be, "utf-16-be"),
        (utf32 and utf16le, "utf-32-le"),
        (utf32 and utf16be, "utf-32-be"),
    ):
        if wide:
            candidates.append(raw.decode(codec, "replace").removeprefix("\ufeff"))
    latin1 = None
    if not raw.isascii():
        latin1 = raw.decode("latin-1")
        candidates.append(latin1)
    for text in candidates:
        clean = "\ufffd" not in text
        if (
            clean
            and (text.isprintable() or text.translate(_WHITESPACE).isprintable())
            # Latin-1 prints three random bytes in four: it counts as a cp1252
            # producer's text only when that is mostly ASCII.
            and (text is not latin1 or junk * 4 <= len(raw))
        ):
            return text
        # A dirty decoding counts only if it is mostly printable ASCII text, which
        # random bytes are not (about 37% of them are).
        body = text.translate(_WHITESPACE)
        printable = sum(map(str.isprintable, body)) - body.count("\ufffd")
        ascii_text = len(body) - len(body.encode("utf-8", "replace").translate(None, _TEXT_BYTES))
        if printable >= _PRINTABLE_SHARE * len(body) and ascii_text >= 0.75 * len(body):
            return text
    return None


def _json_texts(doc: Any) -> Iterable[str]:
    """Every key, string and number in a JSON document, and its arrays' joined views."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, value in item.items():
                yield key
                stack.append(value)
        elif isinstance(item, list):
            yield from joined_views(item)
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            yield str(item)
