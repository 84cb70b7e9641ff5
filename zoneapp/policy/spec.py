"""The zone policy file, as data: the shape the YAML must have.

Rules are written compactly: every key of a rule other than ``transform``,
``class`` and ``output_class`` is a parameter of the transform::

    card_number: {transform: tokenize, class: restricted, format: card}
    merchant: keep            # shorthand for {transform: keep}
    age_range: {transform: generalize, to: age_range, class: restricted, output_class: public}

A rule without ``class`` is taken to be as sensitive as its source zone, so a
bare ``keep`` can never move data down a level by accident. ``class`` is what goes
in; ``output_class`` (sanitizing transforms only) what comes out, for the flow proof
(:mod:`zoneapp.policy.flow`); without it the output is as sensitive as the
destination zone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zoneapp.policy.levels import Level

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
#: How a subject id is normalized before it is hashed (:mod:`zoneapp.policy.subjects`).
SubjectNormalizer = Literal["email", "trim", "exact"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSpec(_Strict):
    """One transform applied to one field, the key, or a header."""

    model_config = ConfigDict(extra="allow", frozen=True)

    transform: str
    classification: str | None = Field(default=None, alias="class")
    #: The class of a sanitizing transform's output, when the author declares it lower
    #: than the destination zone (the flow proof's default; :mod:`zoneapp.policy.flow`).
    output_class: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"transform": data}
        return data

    @field_validator("classification", "output_class")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None:
            Level.parse(value)
        return value

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DeriveSpec(RuleSpec):
    """A new output field computed from a source field, e.g. a birth year from a date of birth."""

    source: str = Field(alias="from")


class ZoneSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    level: str
    topic_prefix: str | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        Level.parse(value)
        return value


class LimitsSpec(_Strict):
    max_record_bytes: int = Field(default=1_048_576, ge=64, le=64 * 1_048_576)
    max_depth: int = Field(default=32, ge=2, le=512)


class CustomDetectorSpec(_Strict):
    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: str
    #: Match letters case-insensitively (the text is the normalized view either way).
    ignore_case: bool = False


class DlpSpec(_Strict):
    detectors: list[str] = Field(
        default_factory=lambda: ["CREDIT_CARD", "US_SSN", "IBAN", "EMAIL", "PHONE"]
    )
    custom: list[CustomDetectorSpec] = Field(default_factory=list)
    #: Regions (ISO 3166 alpha-2, as libphonenumber names them) whose national phone
    #: formats PHONE recognises without a "+" or a context word; None: the default list.
    phone_regions: list[str] | None = None


class AllowSpec(_Strict):
    """A detector hit that is expected at one output path (e.g. a merchant's public phone)."""

    path: str
    detectors: list[str]


class HeadersSpec(_Strict):
    """What happens to Kafka headers. Headers nobody named are dropped (or block the record)."""

    unlisted: Literal["drop", "block"] = "drop"
    rules: dict[str, RuleSpec] = Field(default_factory=dict)


class TraceSpec(_Strict):
    """What of the producer's W3C trace context crosses (README, Tracing)."""

    #: Continue the record's trace id (a fresh span id is written either way).
    continue_: bool = Field(default=True, alias="continue")
    #: tracestate vendor keys that may cross, each DLP-scanned; none by default.
    tracestate_keys: list[str] = Field(default_factory=list)


class RateLimitSpec(_Strict):
    """A token bucket per tenant (or per tenant and record key) of one boundary."""

    #: Records per second each bucket refills with.
    rate: float = Field(gt=0, le=1_000_000)
    #: Records a bucket holds: how many may pass at once after an idle spell.
    burst: int = Field(ge=1, le=1_000_000)
    #: ``tenant``: one bucket per tenant id; ``tenant_and_key``: per tenant and Kafka key.
    per: Literal["tenant", "tenant_and_key"] = "tenant"
    #: ``delay``: the batch waits (backpressure, nothing lost); ``quarantine``: the
    #: record is quarantined as ``rate_limited``.
    over_limit: Literal["delay", "quarantine"] = "delay"
    #: Buckets kept in memory per boundary and worker (zoneapp.core.ratelimit).
    max_buckets: int = Field(default=10_000, ge=1, le=1_000_000)
    #: ``per: tenant_and_key`` only, and then required: the limit of the tenant as a
    #: whole, which every one of its keys' records is charged to as well.
    tenant_rate: float | None = Field(default=None, gt=0, le=1_000_000)
    tenant_burst: int | None = Field(default=None, ge=1, le=1_000_000)
    #: New tenant buckets at most this many at once and per refill interval (burst /
    #: rate seconds); more newcomers share the overflow bucket (zoneapp.core.ratelimit).
    new_buckets: int = Field(default=10, ge=1, le=1_000_000)
    #: ``delay``: a record that would wait longer (seconds) is quarantined as
    #: ``rate_limited`` instead, so a batch never waits longer than this.
    max_wait: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _tenant_limit(self) -> RateLimitSpec:
        both = self.tenant_rate is not None and self.tenant_burst is not None
        if self.per == "tenant_and_key" and not both:
            raise ValueError(
                "per: tenant_and_key needs tenant_rate and tenant_burst: the limit of the "
                "tenant as a whole, which each key's records count against too"
            )
        if self.per == "tenant" and (self.tenant_rate is not None or self.tenant_burst is not None):
            raise ValueError("tenant_rate and tenant_burst go with per: tenant_and_key only")
        return self


class IngressSpec(_Strict):
    """Checks on records entering the boundary, before any transform (README, Ingress checks)."""

    #: A JSON Schema file (path relative to the policy file) every record must match, or
    #: ``{source topic: file or null}`` naming one per source (null: no schema for it).
    schema_: str | dict[str, str | None] | None = Field(default=None, alias="schema")
    rate_limit: RateLimitSpec | None = None


class BoundarySpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    source: list[str] = Field(min_length=1)
    destination: str
    #: What to do with a field no rule names: drop it (and count it), or block the record.
    unclassified: Literal["suppress", "block"] = "suppress"
    #: The Kafka message key. Default: keyed hash, so partitioning stays deterministic.
    key: RuleSpec = Field(default_factory=lambda: RuleSpec(transform="hash"))
    headers: HeadersSpec = Field(default_factory=HeadersSpec)
    fields: dict[str, RuleSpec] = Field(default_factory=dict)
    #: The data subject of this boundary's records (overrides the policy's ``subject_id``).
    subject_id: str | None = None
    #: How its subject ids are normalized before hashing (overrides the policy's).
    subject_normalizer: SubjectNormalizer | None = None
    #: Which tenants each source topic may carry: a mapping ``{topic: [tenant, ...]}``
    #: for every source, or a pattern such as ``restricted.payments.{tenant}`` that every
    #: source matches. A record naming another tenant is quarantined (``tenant_mismatch``).
    tenants: dict[str, list[str]] | str | None = None
    #: Output fields computed from source fields: ``{birth_year: {from: date_of_birth, ...}}``.
    derive: dict[str, DeriveSpec] = Field(default_factory=dict)
    allow: list[AllowSpec] = Field(default_factory=list)
    trace: TraceSpec = Field(default_factory=TraceSpec)
    ingress: IngressSpec = Field(default_factory=IngressSpec)

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PolicySpec(_Strict):
    version: str = Field(min_length=1)
    zones: list[ZoneSpec] = Field(min_length=2)
    boundaries: list[BoundarySpec] = Field(min_length=1)
    #: Dotted path of the tenant id in every record, when records are multi-tenant.
    tenant_id: str | None = None
    #: Dotted path of the data subject (a user id, an email...). Token mappings are
    #: indexed by a keyed hash of it, so ``erase`` can find a subject's tokens.
    subject_id: str | None = None
    #: How subject ids are normalized before hashing: ``email`` (NFKC, trimmed,
    #: case-folded), ``trim`` (NFC, trimmed; the default) or ``exact``.
    subject_normalizer: SubjectNormalizer = "trim"
    security_topic: str = "security.violations"
    #: Quarantine topic of a zone is ``<zone prefix><quarantine_suffix>``.
    quarantine_suffix: str = "quarantine"
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    dlp: DlpSpec = Field(default_factory=DlpSpec)
