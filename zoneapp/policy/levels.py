"""Classification levels, ordered from least to most sensitive."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        try:
            return cls[name.upper()]
        except KeyError:
            allowed = ", ".join(lv.name.lower() for lv in cls)
            raise ValueError(
                f"unknown classification {name!r} (expected one of {allowed})"
            ) from None

    def __str__(self) -> str:
        return self.name.lower()
