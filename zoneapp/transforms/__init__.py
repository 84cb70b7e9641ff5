"""Field transforms, looked up by their lowercase verb from the policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoneapp.transforms.base import (
    SUPPRESS,
    ParamError,
    RecordContext,
    TokenCollisionError,
    Transform,
    TransformSpec,
    TransformTypeError,
)
from zoneapp.transforms.keyed import EncryptTransform, HashTransform, TokenizeTransform
from zoneapp.transforms.simple import (
    GeneralizeTransform,
    KeepTransform,
    MaskTransform,
    SuppressTransform,
)
from zoneapp.vault.base import NO_KNOWN_TOKENS, KnownTokens, VaultEntry

TRANSFORMS: Mapping[str, type[Transform]] = {
    cls.name: cls
    for cls in (
        KeepTransform,
        SuppressTransform,
        MaskTransform,
        HashTransform,
        TokenizeTransform,
        EncryptTransform,
        GeneralizeTransform,
    )
}


def build_transform(name: str, params: Mapping[str, Any], spec: TransformSpec) -> Transform:
    try:
        cls = TRANSFORMS[name]
    except KeyError:
        raise ParamError(
            f"unknown transform {name!r} (expected one of {', '.join(sorted(TRANSFORMS))})"
        ) from None
    return cls(params, spec)


__all__ = [
    "NO_KNOWN_TOKENS",
    "SUPPRESS",
    "TRANSFORMS",
    "KnownTokens",
    "RecordContext",
    "TokenCollisionError",
    "Transform",
    "TransformSpec",
    "TransformTypeError",
    "VaultEntry",
    "build_transform",
]
