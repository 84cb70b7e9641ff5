"""Per-subject keys, so erasure can crypto-shred a data subject's encrypted fields.

When a boundary names a ``subject_id``, each data subject (per tenant) gets a random
256-bit key. It is stored in the token vault envelope-encrypted under the zone's
keys (``zoneapp:skey:{tenant}:<subject hash>``), so a copy of Redis reveals nothing.
An ``encrypt`` field of that subject is sealed twice: first with the subject key
(inner layer, below), then as usual with the zone's data key (``zenc2``), so the
ciphertext format, the zone check and the topic/field binding are unchanged.
Erasing the subject deletes its key: every such field becomes unrecoverable.

Inner layer (the ``zenc2``/``zenc1`` plaintext), never starting like JSON::

    0x00 'S' 0x01 | u8 tenant_len | tenant | u8 subject_len | subject hash |
    12-byte nonce | AES-256-GCM(subject key, value, AAD = caller AAD || header)

The caller AAD is the outer ciphertext's: ``Aad.encode()`` for zenc2, the legacy
``topic|path`` for zenc1. The stored subject key itself is a ``Purpose.SUBJECT_KEY``
ciphertext (:meth:`~zoneapp.keys.envelope.Aad.subject_key`), so it can never be
opened as a record field.

Fetching keys costs one Redis pipeline per batch (it also notices an erasure made
by another process); unwrapping a subject key is in-process (the zone's data key
is cached), so the HSM is not called per subject.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zoneapp.keys.base import DecryptionError
from zoneapp.keys.envelope import Aad

if TYPE_CHECKING:
    from zoneapp.keys.envelope import KeyRing


class SubjectKeyStore(Protocol):
    """Where wrapped subject keys live (the token vault implements it); a protocol so that
    keys/ sits below vault/ in the layers."""

    async def subject_keys(
        self, wanted: Collection[tuple[str, str]], create: Callable[[str, str], str]
    ) -> dict[tuple[str, str], str]: ...

    async def fetch_subject_key(self, tenant: str, subject: str) -> str | None: ...


MARK = b"\x00S\x01"
_NONCE = 12
SubjectId = tuple[str, str]  # (tenant, subject hash)


def wrap_aad(tenant: str, subject: str) -> Aad:
    """Binds a stored subject key to its tenant and subject (its own domain)."""
    return Aad.subject_key(tenant, subject)


def _header(tenant: str, subject: str) -> bytes:
    t, s = tenant.encode(), subject.encode()
    return MARK + bytes((len(t),)) + t + bytes((len(s),)) + s


def seal(aead: AESGCM, tenant: str, subject: str, plaintext: bytes, aad: bytes) -> bytes:
    header = _header(tenant, subject)
    nonce = os.urandom(_NONCE)
    return header + nonce + aead.encrypt(nonce, plaintext, aad + header)


def sealed_subject(payload: bytes) -> SubjectId | None:
    """(tenant, subject hash) of a sealed payload, or None for a plain one."""
    if not payload.startswith(MARK):
        return None
    try:
        i = len(MARK)
        tlen = payload[i]
        tenant = payload[i + 1 : i + 1 + tlen].decode()
        j = i + 1 + tlen
        slen = payload[j]
        subject = payload[j + 1 : j + 1 + slen].decode()
    except (IndexError, UnicodeDecodeError):
        raise DecryptionError("malformed subject-sealed payload") from None
    return tenant, subject


def open_sealed(aead: AESGCM, payload: bytes, aad: bytes) -> bytes:
    tenant_subject = sealed_subject(payload)
    assert tenant_subject is not None
    header = _header(*tenant_subject)
    nonce = payload[len(header) : len(header) + _NONCE]
    try:
        return aead.decrypt(nonce, payload[len(header) + _NONCE :], aad + header)
    except InvalidTag:
        raise DecryptionError("tampered ciphertext or wrong field/topic binding") from None


class SubjectKeys:
    """Gets (creating on first sight) the keys of a batch's subjects for one zone."""

    def __init__(self, keyring: KeyRing, vault: SubjectKeyStore, zone: str, capacity: int = 50_000):
        self.keyring = keyring
        self.vault = vault
        self.zone = zone
        self.capacity = capacity
        self._aeads: OrderedDict[str, AESGCM] = OrderedDict()  # by wrapped key text

    def _new_wrapped(self, tenant: str, subject: str) -> str:
        return self.keyring.encrypt(self.zone, os.urandom(32), wrap_aad(tenant, subject))

    async def get(self, wanted: Collection[SubjectId]) -> dict[SubjectId, AESGCM]:
        """One vault round trip (two when new subjects appear) for the whole batch."""
        wrapped = await self.vault.subject_keys(wanted, self._new_wrapped)
        out: dict[SubjectId, AESGCM] = {}
        for (tenant, subject), text in wrapped.items():
            aead = self._aeads.get(text)
            if aead is None:
                key = await self.keyring.decrypt(text, wrap_aad(tenant, subject))
                aead = self._aeads[text] = AESGCM(key)
                if len(self._aeads) > self.capacity:
                    self._aeads.popitem(last=False)
            else:
                self._aeads.move_to_end(text)
            out[(tenant, subject)] = aead
        return out

    async def for_payload(self, tenant: str, subject: str) -> AESGCM | None:
        """The key of one subject for decryption, without creating it; None once erased."""
        text = await self.vault.fetch_subject_key(tenant, subject)
        if text is None:
            return None
        return AESGCM(await self.keyring.decrypt(text, wrap_aad(tenant, subject)))
