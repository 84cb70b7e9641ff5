"""Policy errors (defined in :mod:`zoneapp.errors` so transforms can raise them)."""

from zoneapp.errors import ParamError, PolicyError

__all__ = ["ParamError", "PolicyError"]
