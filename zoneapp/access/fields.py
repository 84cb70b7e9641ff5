"""Reversing sanitization for authorized callers: detokenize and decrypt, with an audit trail.

Who may call is decided by the caller of this module (an HTTP role, or possession
of the HSM PIN for the command line); this module enforces the zone: a caller
for zone Z gets only values whose keys belong to zone Z, and a key ring opened
for Z cannot unwrap anything else. Every attempt, allowed or refused, is
written to the audit topic before a value is returned; if the audit record
cannot be written, the value is not returned (fail closed). Audit records never
hold the value, and every one has a ``tenant`` (None only when no tenant is known,
e.g. a malformed ciphertext or a key rotation).

Tenant scope of ``decrypt``: a zenc2 ciphertext names its tenant (authenticated by
the AEAD), and a caller is given the value only if ``may_see(tenant)`` says so; a
zenc1 ciphertext names none, so its tenant is the one in its subject-sealed inner
layer if it has one, else unknown (None): a tenant-scoped officer is refused it.
``decrypt`` opens only record fields (``Purpose.FIELD``): vault entries and subject
keys are in other AEAD domains, and a V1 ciphertext is only tried under a real Kafka
topic name, so no topic or field parameter reaches their associated data.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from zoneapp.formats import utc_iso
from zoneapp.keys import (
    Aad,
    DecryptionError,
    KeyRing,
    Purpose,
    UnknownKeyVersionError,
    ZoneNotPermittedError,
    parse_ciphertext_header,
    subject,
)
from zoneapp.keys.envelope import FORMAT_V2, KAFKA_TOPIC
from zoneapp.policy.compiled import AUDIT_TOPIC
from zoneapp.vault import TokenVault

#: Longest caller-supplied string an audit event holds as is (tokens, field paths, tenants).
MAX_AUDITED_CHARS = 256


class AccessError(Exception):
    """A refused or failed access: ``reason`` is machine-readable; no value in the message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuditSink(Protocol):
    async def write(self, event: dict[str, Any]) -> None: ...


#: Sends one record (topic, key, value) and returns once the broker acknowledged it.
Send = Callable[[str, bytes, bytes], Awaitable[None]]


@dataclass
class KafkaAuditSink:
    """The one audit sink: events to ``audit.access``, keyed by their id, acknowledged
    before the caller goes on (no value is returned before its audit record is stored).
    The CLI sends through aiokafka (:meth:`of_producer`), the worker through Faust's
    producer (``zoneapp.web.access.faust_audit_sink``)."""

    send: Send
    topic: str = AUDIT_TOPIC

    async def write(self, event: dict[str, Any]) -> None:
        await self.send(self.topic, orjson.dumps(event["id"]), orjson.dumps(event))

    @classmethod
    def of_producer(cls, producer: Any) -> KafkaAuditSink:
        """Over an aiokafka producer (``send_and_wait``)."""

        async def send(topic: str, key: bytes, value: bytes) -> None:
            await producer.send_and_wait(topic, value=value, key=key)

        return cls(send)


def audited(value: Any) -> Any:
    """A caller-supplied string as the audit records it: as is when short and printable,
    otherwise ``sha256:<32 hex>:<length>`` (correlatable, bounded, never the text)."""
    if not isinstance(value, str):
        return value
    if len(value) <= MAX_AUDITED_CHARS and value.isprintable():
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"sha256:{digest}:{len(value)}"


def audit_event(
    *, who: str, action: str, zone: str | None, tenant: str | None, outcome: str, **fields: Any
) -> dict[str, Any]:
    """One ``audit.access`` record; every string but the fixed ones goes through
    :func:`audited`, so no caller can put an unbounded or control-laden string in it.
    ``tenant`` is required so that every event names one."""
    return {
        "id": str(uuid.uuid4()),
        "timestamp": utc_iso(),
        "who": audited(who),
        "action": action,
        "zone": audited(zone),
        "tenant": audited(tenant),
        "outcome": outcome,
        **{k: audited(v) for k, v in fields.items()},
    }


def ciphertext_tenant(ciphertext: str | None) -> str | None:
    """The tenant a zenc2 ciphertext names (unauthenticated: for audit records only)."""
    if not ciphertext:
        return None
    try:
        return parse_ciphertext_header(ciphertext).tenant
    except DecryptionError:
        return None


class FieldAccess:
    """Detokenize and decrypt for one zone, through an audit sink."""

    def __init__(self, zone: str, keyring: KeyRing, vault: TokenVault, audit: AuditSink) -> None:
        self.zone = zone
        self.keyring = keyring
        self.vault = vault
        self.audit = audit

    async def detokenize(self, who: str, tenant: str, token: str) -> bytes:
        base = {"who": who, "action": "detokenize", "zone": self.zone, "tenant": tenant}
        try:
            stored = await self.vault.fetch(tenant, token)
            if stored is None:
                raise AccessError(
                    "unknown_token", "no such token for this tenant (or it was erased)"
                )
            base["field_class"] = stored.field_class
            header = parse_ciphertext_header(stored.ciphertext)
            if header.zone != self.zone:
                raise AccessError("wrong_zone", f"the token belongs to zone {header.zone!r}")
            value = await self._decrypt(
                stored.ciphertext, Aad.vault(tenant, stored.field_class, token)
            )
        except AccessError as exc:
            await self.audit.write(
                audit_event(outcome=f"refused:{exc.reason}", token=token, **base)
            )
            raise
        await self.audit.write(audit_event(outcome="allowed", token=token, **base))
        return value

    async def decrypt(
        self,
        who: str,
        ciphertext: str,
        topic: str,
        field_path: str,
        *,
        may_see: Callable[[str | None], bool] = lambda tenant: True,
        tenant: str | None = None,
    ) -> bytes:
        """The plaintext of a record field's ciphertext, if ``may_see`` its tenant.

        ``tenant``, when given, must be the ciphertext's tenant (``wrong_tenant``
        otherwise). The audit event names the ciphertext's tenant.
        """
        base: dict[str, Any] = {
            "who": who,
            "action": "decrypt",
            "zone": self.zone,
            "tenant": None,
            "topic": topic,
            "field": field_path,
        }
        if tenant is not None:
            base["requested_tenant"] = tenant
        try:
            try:
                header = parse_ciphertext_header(ciphertext)
            except DecryptionError:
                raise AccessError("malformed", "not a zoneapp ciphertext") from None
            base["tenant"] = header.tenant
            if header.zone != self.zone:
                raise AccessError("wrong_zone", f"the ciphertext belongs to zone {header.zone!r}")
            if header.format_version == FORMAT_V2 and header.purpose is not Purpose.FIELD:
                raise AccessError("not_a_field", "the ciphertext is not a record field")
            if KAFKA_TOPIC.fullmatch(topic) is None:
                raise AccessError("malformed", "the topic is not a Kafka topic name")
            owner = header.tenant
            if owner is not None:  # zenc2: check the scope before any key is used
                self._check_tenant(owner, tenant, may_see)
            aad = Aad.field(owner or "", topic, field_path)
            value = await self._decrypt(ciphertext, aad)
            sealed = subject.sealed_subject(value)
            if sealed is not None:
                if owner is not None and sealed[0] != owner:
                    raise AccessError("tampered", "the sealed value names another tenant")
                if owner is None:  # zenc1: the sealed layer is the only tenant it names
                    owner = base["tenant"] = sealed[0]
                    self._check_tenant(owner, tenant, may_see)
                inner = aad.encode() if header.format_version == FORMAT_V2 else aad.legacy
                assert inner is not None
                value = await self._open_sealed(value, inner, *sealed)
            elif owner is None:
                self._check_tenant(None, tenant, may_see)
        except AccessError as exc:
            await self.audit.write(audit_event(outcome=f"refused:{exc.reason}", **base))
            raise
        await self.audit.write(audit_event(outcome="allowed", **base))
        return value

    @staticmethod
    def _check_tenant(
        owner: str | None, requested: str | None, may_see: Callable[[str | None], bool]
    ) -> None:
        if (requested is not None and requested != owner) or not may_see(owner):
            raise AccessError("wrong_tenant", "the ciphertext belongs to another tenant")

    async def _open_sealed(self, payload: bytes, aad: bytes, tenant: str, subj: str) -> bytes:
        aead = await subject.SubjectKeys(self.keyring, self.vault, self.zone).for_payload(
            tenant, subj
        )
        if aead is None:
            raise AccessError("erased", "the data subject was erased; the value is gone")
        try:
            return subject.open_sealed(aead, payload, aad)
        except DecryptionError:
            raise AccessError("tampered", "the sealed value was altered") from None

    async def _decrypt(self, ciphertext: str, aad: Aad) -> bytes:
        try:
            return await self.keyring.decrypt(ciphertext, aad)
        except ZoneNotPermittedError:
            raise AccessError("wrong_zone", "this process holds no key for that zone") from None
        except UnknownKeyVersionError:
            raise AccessError(
                "unknown_key_version", "the key version is unknown to the HSM"
            ) from None
        except DecryptionError:
            raise AccessError(
                "tampered", "the ciphertext was altered, or belongs to another field or topic"
            ) from None
