"""The OpenAPI 3.1 description served at ``/openapi.json`` (hand-written, tested)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (a parameter is malformed).",
        401: "Missing or unknown API key (see WWW-Authenticate).",
        403: "The key lacks the role this endpoint needs.",
        404: "Not found.",
        410: "Gone: the data subject was erased.",
        422: "The input was altered, malformed, or bound to another field or topic.",
        429: "Rate limited (see Retry-After).",
        503: "A dependency is unavailable.",
    }
    return {str(c): _json(_ERROR, text[c]) for c in codes}


def _param(name: str, where: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _get(
    summary: str,
    ok: dict[str, Any],
    *,
    secured: str | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    if secured:  # unknown keys are limited per source before hashing (zoneapp.web.auth)
        errors = tuple(sorted({*errors, 429}))
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if secured:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs an API key with the {secured} role."
    else:
        op["security"] = []
    return {"get": op}


def _reveal(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    """GET with query parameters, or POST with the same names in a JSON body."""
    value = _json({"type": "object", "properties": {"value": {"type": "string"}}})
    get = _get(
        summary,
        value,
        secured="officer:<zone>",
        params=params,
        errors=(401, 403, 404, 410, 422, 429, 503),
    )["get"]
    post = {k: v for k, v in get.items() if k != "parameters"}
    post["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {p["name"]: {"type": "string"} for p in params},
                    "required": [p["name"] for p in params],
                }
            }
        },
    }
    return {"get": get, "post": post}


def _command(summary: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """An admin POST fanned out to every worker (``zoneapp.web.policy``)."""
    result = {
        "type": "object",
        "required": ["ok", "workers", "missing"],
        "properties": {
            "ok": {"type": "boolean"},
            "workers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["worker", "status", "active"],
                    "properties": {
                        "worker": {"type": "string"},
                        "status": {"enum": ["applied", "unchanged", "refused"]},
                        "active": {"type": "object"},
                        "error": {"type": ["string", "null"]},
                        "candidate": {"type": ["object", "null"]},
                        "candidate_error": {"type": ["string", "null"]},
                    },
                },
            },
            "missing": {"type": "array", "items": {"type": "string"}},
        },
    }
    op: dict[str, Any] = {
        "summary": summary,
        "description": "Needs an API key with the admin role.",
        "security": [{"bearer": []}],
        "responses": {
            "200": _json(result, "Every worker applied it or already had it."),
            "409": _json(result, "A worker refused it (its error says why) or did not answer."),
            **_errors(400, 401, 403, 429),
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {"post": op}


def _policy_paths(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "/policy": _get(
            "Each worker's active policy (version, SHA-256, generation), its candidate and "
            "its last reload error.",
            _json(obj),
            secured="viewer, analyst or admin",
            errors=(401, 403),
        ),
        "/policy/reload": _command(
            "Re-read the policy files on this worker and every peer; an invalid file leaves "
            "the old policy active and is reported with its file, line and problem.",
            None,
        ),
        "/policy/promote": _command(
            "Make the shadowed candidate with this SHA-256 the active policy on every "
            "worker, written over its policy file.",
            {
                "type": "object",
                "required": ["sha256"],
                "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
            },
        ),
        "/shadow": _get(
            "What the candidate policy would do differently, per boundary: records it would "
            "forward or quarantine, fields it would drop or keep, detector hits (counts and "
            "places, never values).",
            _json(obj),
            secured="analyst or admin",
            errors=(401, 403),
        ),
    }


def spec() -> dict[str, Any]:
    obj = {"type": "object", "additionalProperties": True}
    stats = {"$ref": "#/components/schemas/Stats"}
    violation_filters = [
        _param("zone", "query", "Source or destination zone."),
        _param("boundary", "query", "Boundary name."),
        _param("detector", "query", "DLP detector (any finding)."),
        _param("since", "query", "Oldest event time (ISO-8601 or epoch seconds), inclusive."),
        _param("until", "query", "Newest event time (ISO-8601 or epoch seconds), exclusive."),
        _param("limit", "query", "Page size.", type="integer", minimum=1, maximum=500),
        _param("cursor", "query", "next_cursor of the previous page."),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zoneapp operators' API",
            "version": version("zoneapp"),
            "description": (
                "Counts, violations and token metadata of a zoneapp cluster. Never serves "
                "record values. Every worker answers the same."
            ),
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "The zone map page (HTML; its data calls need a key).",
                    "security": [],
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/zones": _get(
                "Every zone and boundary with counters and rates over the last minute.",
                _json({"$ref": "#/components/schemas/ZoneMap"}),
                secured="viewer or analyst",
                errors=(401, 403),
            ),
            "/zones/{zone}": _get(
                "One zone with its boundaries.",
                _json(obj),
                secured="viewer or analyst",
                params=[_param("zone", "path", "Zone name.")],
                errors=(401, 403, 404),
            ),
            "/reconcile": _get(
                "The reconciliation ledger (`faust -A zoneapp reconcile --json`), read from "
                "the topics by this worker; reused for 30 s for the same question.",
                _json({"$ref": "#/components/schemas/Ledger"}),
                secured="viewer or analyst",
                params=[
                    _param("since", "query", "From this time (ISO-8601 or epoch ms)."),
                    _param("until", "query", "Up to this time (ISO-8601 or epoch ms)."),
                    _param("offsets", "query", "FIRST:END source offsets, on every partition."),
                    {
                        **_param("boundary", "query", "Only this boundary (repeatable)."),
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                ],
                errors=(400, 401, 403, 404, 503),
            ),
            "/boundaries/{name}": _get(
                "One boundary's counters.",
                _json({"type": "object", "properties": {"boundary": stats}}),
                secured="viewer or analyst",
                params=[_param("name", "path", "Boundary name.")],
                errors=(401, 403, 404),
            ),
            "/violations": _get(
                "Violation events, newest first, filtered and paginated.",
                _json(
                    {
                        "type": "object",
                        "required": ["items", "count", "next_cursor"],
                        "properties": {
                            "items": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Violation"},
                            },
                            "count": {"type": "integer"},
                            "next_cursor": {"type": ["string", "null"]},
                            "incomplete": {"type": "boolean"},
                        },
                    }
                ),
                secured="analyst",
                params=violation_filters,
                errors=(400, 401, 403),
            ),
            "/violations/{id}": _get(
                "One violation event.",
                _json({"$ref": "#/components/schemas/Violation"}),
                secured="analyst",
                params=[_param("id", "path", "Violation id.")],
                errors=(401, 403, 404),
            ),
            "/tokens/{token}": _get(
                "Token metadata (zone, tenant, field class, created); never the value.",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "token": {"type": "string"},
                            "tenant": {"type": "string"},
                            "field_class": {"type": "string"},
                            "zone": {"type": ["string", "null"]},
                            "zones": {"type": "array", "items": {"type": "string"}},
                            "created": {"type": "string", "format": "date-time"},
                        },
                    }
                ),
                secured="analyst, or officer:<zone> of the token's zone",
                params=[
                    _param("token", "path", "The token."),
                    _param("tenant", "query", "Tenant (found from the token index when absent)."),
                ],
                errors=(401, 403, 404, 503),
            ),
            "/detokenize": _reveal(
                "The value behind a token (audited to audit.access).",
                [
                    _param("zone", "query", "Zone of the token's keys."),
                    _param("tenant", "query", "Tenant of the token."),
                    _param("token", "query", "The token."),
                ],
            ),
            "/decrypt": _reveal(
                "The plaintext of a zenc2 (or zenc1) record field, only for an officer of its"
                " tenant (audited to audit.access).",
                [
                    _param("zone", "query", "Zone of the ciphertext's keys."),
                    _param("topic", "query", "Topic the ciphertext was read from."),
                    _param("field", "query", "Policy field path, e.g. billing.iban."),
                    _param("ciphertext", "query", "The zenc2 (or zenc1) ciphertext."),
                    _param("tenant", "query", "Optional: must be the ciphertext's tenant."),
                ],
            ),
            "/health": _get(
                "Readiness: broker, Redis and HSM reachable, policy loaded (503 otherwise).",
                _json(obj),
                errors=(503,),
            ),
            "/health/live": _get("Liveness.", _json(obj)),
            "/metrics": {
                "get": {
                    "summary": "Counters in the Prometheus text format.",
                    "description": (
                        "Needs an API key with the viewer role, unless the worker runs with "
                        "ZONEAPP_METRICS_PUBLIC=true (then no key is asked for)."
                    ),
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "Prometheus text", "content": {"text/plain": {}}},
                        **_errors(401, 403, 429),
                    },
                }
            },
            "/openapi.json": _get("This description.", _json(obj)),
            **_policy_paths(obj),
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from ZONEAPP_API_KEYS_FILE.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "Stats": {
                    "type": "object",
                    "properties": {
                        name: {"type": "integer"}
                        for name in (
                            "consumed",
                            "forwarded",
                            "quarantined",
                            "blocked",
                            "suppressed_fields",
                            "errors",
                            "consumer_lag",
                        )
                    }
                    | {
                        "reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "detectors": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                        "transforms": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                        "latency_seconds": {
                            "type": "object",
                            "additionalProperties": {"type": ["number", "null"]},
                        },
                        "rates_per_second": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                    },
                },
                "Ledger": {
                    "type": "object",
                    "required": [
                        "generated_at",
                        "ok",
                        "missing",
                        "uncommitted",
                        "duplicated",
                        "forwarded",
                        "quarantined",
                        "source_records",
                        "partitions",
                    ],
                    "properties": {
                        "generated_at": {"type": "string"},
                        "window": {"type": "object"},
                        "boundaries": {"type": ["array", "null"], "items": {"type": "string"}},
                        "ok": {"type": "boolean"},
                        "missing": {"type": "integer"},
                        "uncommitted": {"type": "array", "items": {"type": "string"}},
                        "duplicated": {"type": "integer"},
                        "forwarded": {"type": "integer"},
                        "quarantined": {"type": "integer"},
                        "source_records": {"type": "integer"},
                        "partitions": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "ZoneMap": {
                    "type": "object",
                    "properties": {
                        "generated_at": {"type": "string"},
                        "reconcile": {
                            "type": ["object", "null"],
                            "description": "This worker's last /reconcile verdict and totals.",
                        },
                        "zones": {"type": "array", "items": {"$ref": "#/components/schemas/Stats"}},
                        "boundaries": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Stats"},
                        },
                    },
                },
                "Violation": {
                    "type": "object",
                    "description": "The event as produced to security.violations (no values).",
                    "required": ["id", "timestamp", "boundary", "reason"],
                    "properties": {
                        "id": {"type": "string"},
                        "timestamp": {"type": "string"},
                        "boundary": {"type": "string"},
                        "reason": {"type": "string"},
                        "detector": {"type": ["string", "null"]},
                        "field_path": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
