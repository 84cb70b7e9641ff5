"""Errors raised while loading a zone policy; no zoneapp imports, so every layer can use them."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy that must not be used. The message names the file, the place and the problem."""

    def __init__(self, problems: list[str], source: str = "<policy>") -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid zone policy {source}:\n{lines}")


class ParamError(ValueError):
    """A transform or detector parameter is wrong; re-raised as a PolicyError with its place."""
