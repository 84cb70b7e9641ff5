"""Erasing a data subject (GDPR Art. 17, CCPA): every boundary's spelling of the id.

A boundary hashes a subject id after normalizing it with its ``subject_normalizer``
(:mod:`zoneapp.policy.subjects`), under its source zone's HMAC key. Erasure computes the
same hash for every boundary that names a subject, and also the hash of the id exactly
as given, which is what index entries written before normalization used, so data
indexed under either form is erased.
"""

from __future__ import annotations

from zoneapp.core.sanitizer import SUBJECT_PURPOSE, subject_hash
from zoneapp.keys.envelope import KeyRing
from zoneapp.policy import CompiledPolicy
from zoneapp.vault import TokenVault

__all__ = ["erase_subject", "subject_hashes", "subject_zones"]


def subject_zones(policy: CompiledPolicy) -> list[str]:
    """The zones whose HMAC keys hash subject ids (sources of boundaries with a subject)."""
    return sorted({b.source_zone.name for b in policy.boundaries if b.subject_path is not None})


def subject_hashes(
    policy: CompiledPolicy, keyring: KeyRing, tenant: str, subject: str
) -> list[str]:
    """Every index hash the subject can have: per boundary normalized, and as given.

    The key ring must hold ``SUBJECT_PURPOSE`` for :func:`subject_zones` (prepared).
    """
    hashes: set[str] = set()
    for b in policy.boundaries:
        if b.subject_path is None:
            continue
        key = keyring.hmac_key(b.source_zone.name, SUBJECT_PURPOSE)
        for spelling in {b.subject_normalizer(subject), subject}:
            if spelling:
                hashes.add(subject_hash(key, tenant, spelling))
    return sorted(hashes)


async def erase_subject(
    policy: CompiledPolicy, keyring: KeyRing, vault: TokenVault, tenant: str, subject: str
) -> int:
    """Delete the subject's token mappings and keys under every hash; returns mappings gone."""
    for zone in subject_zones(policy):
        keyring.require_hmac(zone, SUBJECT_PURPOSE)
    await keyring.prepare()
    erased = 0
    for digest in subject_hashes(policy, keyring, tenant, subject):
        erased += await vault.erase_subject(tenant, digest)
    return erased
