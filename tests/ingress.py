"""Helpers for the ingress-check tests: the unit fixture policy with an ``ingress:`` block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures import POLICY
from zoneapp.policy import CompiledPolicy, load_policy

SCHEMA = POLICY.with_name("schemas") / "payment.schema.json"
BOUNDARY = "payments-to-confidential"


def payment_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


def write_policy(
    folder: Path,
    ingress: dict[str, Any],
    schemas: dict[str, Any] | None = None,
    boundary: str = BOUNDARY,
    **boundary_keys: Any,
) -> Path:
    """The unit fixture policy with ``ingress`` on ``boundary``, written to ``folder``
    with each of ``schemas`` (file name -> JSON, or text) beside it."""
    data = yaml.safe_load(POLICY.read_text())
    for b in data["boundaries"]:
        if b["name"] == boundary:
            b["ingress"] = ingress
            b.update(boundary_keys)
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in (schemas or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(schema if isinstance(schema, str) else json.dumps(schema))
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ingress_policy(folder: Path, ingress: dict[str, Any], **boundary_keys: Any) -> CompiledPolicy:
    """Compiled, with the payment schema at ``schemas/payment.schema.json``."""
    schemas = {"schemas/payment.schema.json": payment_schema()}
    return load_policy(write_policy(folder, ingress, schemas, **boundary_keys))
