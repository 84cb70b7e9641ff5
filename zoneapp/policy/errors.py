"""Errors raised while loading a zone policy. ``ParamError`` lives with the transforms
(they raise it; the loader re-raises it as a PolicyError with its place)."""

from __future__ import annotations

from zoneapp.transforms.base import ParamError

__all__ = ["ParamError", "PolicyError"]


class PolicyError(ValueError):
    """A policy that must not be used. The message names the file, the place and the problem."""

    def __init__(self, problems: list[str], source: str = "<policy>") -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid zone policy {source}:\n{lines}")
