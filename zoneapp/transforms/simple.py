"""Transforms that need no keys: keep, suppress, mask, generalize."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from zoneapp.transforms.base import (
    SUPPRESS,
    ParamError,
    RecordContext,
    Transform,
    choice_param,
    int_param,
    type_error,
)


class KeepTransform(Transform):
    """Pass the value through unchanged (the DLP scan still runs on it)."""

    name = "keep"

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        return value


class SuppressTransform(Transform):
    """Drop the field."""

    name = "suppress"

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        return SUPPRESS


class MaskTransform(Transform):
    """Replace letters and digits with a mask character, keeping the last N.

    ``123-45-6789`` → ``***-**-6789``; ``4111 1111 1111 1881`` → ``**** **** **** 1881``.
    Separators (anything that is not a letter or digit) are kept unless
    ``keep_separators`` is false, so the shape of the value survives.
    """

    name = "mask"

    @classmethod
    def allowed_params(cls) -> tuple[str, ...]:
        return ("keep_last", "keep_first", "char", "keep_separators")

    def configure(self, params: dict[str, Any]) -> None:
        self.keep_last = int_param(params, "keep_last", 4, 0, 64)
        self.keep_first = int_param(params, "keep_first", 0, 0, 64)
        char = params.get("char", "*")
        if not isinstance(char, str) or len(char) != 1 or char.isalnum():
            raise ParamError("parameter 'char' must be one character that is not a letter or digit")
        self.char = char
        keep_separators = params.get("keep_separators", True)
        if not isinstance(keep_separators, bool):
            raise ParamError("parameter 'keep_separators' must be true or false")
        self.keep_separators = keep_separators

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise type_error(self.name, value)
        text = value if isinstance(value, str) else str(value)
        if not self.keep_separators:
            text = "".join(c for c in text if c.isalnum())
        total = sum(1 for c in text if c.isalnum())
        # Never reveal more than half of a short value, whatever the rule says.
        reveal_last = min(self.keep_last, total // 2)
        reveal_first = min(self.keep_first, max(0, total // 2 - reveal_last))
        out: list[str] = []
        seen = 0
        for c in text:
            if c.isalnum():
                visible = seen < reveal_first or seen >= total - reveal_last
                out.append(c if visible else self.char)
                seen += 1
            else:
                out.append(c)
        return "".join(out)


def _parse_date(value: Any, transform: str) -> dt.date:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise (
        type_error(transform, value)
        if not isinstance(value, str)
        else ValueError(f"transform {transform!r} expects an ISO date (YYYY-MM-DD...)")
    )


#: Years an integer (or a 4-digit string) may be for ``to: year``: anything else (an SSN,
#: epoch milliseconds, an account number) is not a year and is quarantined.
PLAUSIBLE_YEARS = range(1800, 2201)
#: A ``prefix`` longer than this can copy a value (PCI DSS shows at most the first six
#: digits of a card); refused on a field classified above its destination.
MAX_SAFE_PREFIX = 6
#: ``bucket`` may have at most this many buckets (about 10 bits) over its declared range
#: on a field classified above its destination.
MAX_SAFE_BUCKETS = 1000


def _year(value: Any, transform: str) -> int:
    if isinstance(value, str) and len(value) == 4 and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in PLAUSIBLE_YEARS:
            raise ValueError(f"transform {transform!r}: the number is not a plausible year")
        return value
    return _parse_date(value, transform).year


class GeneralizeTransform(Transform):
    """Coarsen a value: date → year or month, date of birth → age range, zip → prefix,
    number → bucket.

    Age ranges are computed against the processing date (UTC). Ages at or above
    ``top`` (default 90, as HIPAA Safe Harbor asks) collapse into one ``90+`` bucket.
    Buckets are written ``lo-hi`` with ``lo`` inclusive and ``hi`` exclusive; a bucket
    rule declares the range of its values (``min`` inclusive, ``max`` exclusive) and a
    value outside it is refused (``invalid_value``), so no bucket can carry an arbitrary
    number. ``year`` takes a date, or an integer (or 4-digit string) in
    :data:`PLAUSIBLE_YEARS`. ``prefix`` never returns a whole value: a value no longer
    than the prefix is refused.
    """

    name = "generalize"
    MODES = ("year", "month", "age_range", "prefix", "bucket")

    @classmethod
    def allowed_params(cls) -> tuple[str, ...]:
        return ("to", "width", "length", "pad", "top", "min", "max")

    def configure(self, params: dict[str, Any]) -> None:
        self.to = choice_param(params, "to", None, self.MODES)
        self.width = int_param(params, "width", 10, 1, 10**12)
        self.length = int_param(params, "length", 3, 0, 64)
        self.top = int_param(params, "top", 90, 1, 200)
        pad = params.get("pad", "")
        if not isinstance(pad, str) or len(pad) > 1 or pad.isalnum():
            raise ParamError("parameter 'pad' must be empty or one non-alphanumeric character")
        self.pad = pad
        self.lo: int | float = 0
        self.hi: int | float = 0
        if self.to == "bucket":
            bounds = [params.get("min"), params.get("max")]
            if any(isinstance(b, bool) or not isinstance(b, int | float) for b in bounds):
                raise ParamError("'to: bucket' needs the numbers 'min' and 'max' (its range)")
            self.lo, self.hi = bounds  # type: ignore[assignment]
            if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
                raise ParamError("parameter 'min' must be below 'max'")
        elif "min" in params or "max" in params:
            raise ParamError("parameters 'min' and 'max' are for 'to: bucket' only")

    def reproduces_value(self) -> str | None:
        if self.to == "prefix" and self.length > MAX_SAFE_PREFIX:
            return f"keeps {self.length} leading characters (at most {MAX_SAFE_PREFIX})"
        if self.to == "bucket":
            if self.width < 2:
                return "with width 1 keeps every integer"
            buckets = math.ceil((self.hi - self.lo) / self.width)
            if buckets > MAX_SAFE_BUCKETS:
                return f"has {buckets} buckets over its range (at most {MAX_SAFE_BUCKETS})"
        return None

    def apply(self, value: Any, ctx: RecordContext) -> Any:
        if value is None:
            return None
        if self.to == "year":
            return _year(value, self.name)
        if self.to == "month":
            d = _parse_date(value, self.name)
            return f"{d.year:04d}-{d.month:02d}"
        if self.to == "age_range":
            born = _parse_date(value, self.name)
            today = dt.datetime.now(dt.UTC).date()
            age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
            if age < 0:
                raise ValueError(f"transform {self.name!r}: date of birth is in the future")
            if age >= self.top:
                return f"{self.top}+"
            lo = age // self.width * self.width
            return f"{lo}-{min(lo + self.width, self.top) - 1}"
        if self.to == "prefix":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise type_error(self.name, value)
            text = str(value)
            if len(text) <= self.length:
                raise ValueError(f"transform {self.name!r}: the value is no longer than the prefix")
            head = text[: self.length]
            return head + self.pad * (len(text) - len(head)) if self.pad else head
        # bucket
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise type_error(self.name, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"transform {self.name!r} cannot bucket a non-finite number")
        if not self.lo <= value < self.hi:
            raise ValueError(f"transform {self.name!r}: the value is outside the bucket range")
        lo = math.floor(value / self.width) * self.width
        return f"{lo}-{lo + self.width}"
