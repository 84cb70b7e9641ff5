"""The one interface every field transform implements.

Parameters are validated once, when the policy is compiled; ``apply`` runs on
the hot path and does no validation of its own beyond the value's type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from zoneapp.vault.base import NO_KNOWN_TOKENS, KnownTokens, VaultEntry

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from zoneapp.keys.envelope import KeyRing


class ParamError(ValueError):
    """A transform or detector parameter is wrong; the policy loader re-raises it as a
    PolicyError with its place."""


class _Suppressed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "SUPPRESS"


#: Returned by a transform to drop the field from the output.
SUPPRESS: Final = _Suppressed()

JSONScalar = str | int | float | bool | None


class TransformTypeError(TypeError):
    """The value's type does not fit the rule (e.g. a card-number rule on an object).

    The message names the transform and the type, never the value.
    """


class TokenCollisionError(ValueError):
    """A token already maps to another value (of the same tenant): never forward it.

    Deterministic tokens are HMACs cut to the token's size; a ``format: card`` token of
    a 12-digit card has only 8 free digits, so two cards can share a token.
    """


@dataclass(slots=True)
class RecordContext:
    """What a transform may use while one record is sanitized."""

    keyring: KeyRing
    zone: str
    topic: str
    tenant: str
    #: Keyed hash of the data subject, when the policy names a ``subject_id``.
    subject: str | None = None
    #: The data subject's own key: ``encrypt`` seals with it too, so erasure shreds it.
    subject_aead: AESGCM | None = None
    #: Tokens the vault already holds, by (tenant, token): a transform skips re-encrypting
    #: those whose fingerprint matches, and refuses those whose fingerprint differs.
    stored_tokens: KnownTokens = NO_KNOWN_TOKENS
    vault_entries: list[VaultEntry] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransformSpec:
    """Where a transform sits: the compiled rule path and the field class it is for."""

    rule_path: str
    field_class: str
    zone: str


class Transform(ABC):
    """Maps one value to its sanitized form, or to :data:`SUPPRESS`."""

    name: ClassVar[str]
    #: HMAC working keys this transform needs, by purpose; loaded before the first batch.
    hmac_purposes: tuple[str, ...] = ()
    #: Equal inputs give equal outputs (required of key transforms).
    deterministic: bool = True

    def __init__(self, params: Mapping[str, Any], spec: TransformSpec) -> None:
        self.spec = spec
        unknown = set(params) - set(self.allowed_params())
        if unknown:
            raise ParamError(
                f"unknown parameter(s) {', '.join(sorted(unknown))} for transform "
                f"{self.name!r} (allowed: {', '.join(self.allowed_params()) or 'none'})"
            )
        self.configure(dict(params))

    @classmethod
    def allowed_params(cls) -> tuple[str, ...]:
        return ()

    def configure(self, params: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Validate and store parameters; raise ParamError."""

    @abstractmethod
    def apply(self, value: Any, ctx: RecordContext) -> Any:
        """Return the sanitized value, or SUPPRESS."""

    def reproduces_value(self) -> str | None:
        """Why, with these parameters, the output can reproduce the input (or most of its
        digits), or None. The policy check refuses such a rule on a field classified above
        its destination zone."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.rule_path!r})"


def type_error(transform: str, value: Any) -> TransformTypeError:
    return TransformTypeError(f"transform {transform!r} cannot take a {json_type(value)}")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def int_param(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParamError(f"parameter {name!r} must be an integer from {lo} to {hi}")
    return value


def choice_param(
    params: dict[str, Any], name: str, default: str | None, choices: tuple[str, ...]
) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise ParamError(f"parameter {name!r} must be one of {', '.join(choices)}")
    assert isinstance(value, str)
    return value
