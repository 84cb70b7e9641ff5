"""The Redis vault's key layout and commands: the one source of truth for the code and the ACL.

:class:`~zoneapp.vault.redis.RedisTokenVault` builds every key with the functions here
and sends only :data:`COMMANDS`; :func:`acl_rules` turns both into the ACL rule of the
vault's Redis user. ``deploy/redis/start.sh`` carries that rule between markers, and a
unit test (``tests/unit/vault/test_layout.py``) fails when the two differ; an
integration test runs every vault operation as that ACL user on a real redis-server
(in cluster mode, so a cross-slot command or transaction fails too).

Layout (every key has a hash tag, so it is Redis Cluster compatible):

* ``zoneapp:tok:{<tenant>}:<token>`` - the mapping (JSON: class, fingerprint, ciphertext)
* ``zoneapp:subj:{<tenant>}:<subject hash>`` - set of the subject's tokens
* ``zoneapp:skey:{<tenant>}:<subject hash>`` - the subject's key, envelope-encrypted
* ``zoneapp:tokidx:{<token>}`` - token → tenant, for metadata lookups by token alone

The tenant is the hash tag of the first three, so one tenant's mappings, subject sets
and subject keys share a slot and erasure is a one-slot transaction. The token index is
tagged by the token (one slot per token) and written and deleted outside transactions.
Index keys written before this layout (``zoneapp:tokidx:<token>``, no tag) are still
read and deleted. The empty tenant (policies without ``tenant_id``, and record keys of
topics that bind no single tenant) is written ``{_}``: a record's tenant id can never
be ``_`` or contain a brace (:data:`RESERVED_TENANT_CHARS`), so no tenant shares it.
"""

from __future__ import annotations

__all__ = [
    "COMMANDS",
    "KEY_PATTERNS",
    "RESERVED_TENANT_CHARS",
    "acl_rules",
    "index_key",
    "legacy_index_key",
    "subject_secret_key",
    "subject_set_key",
    "tenant_tag",
    "token_key",
]

#: What the vault's keys start with (all of them, and nothing else's).
KEY_PATTERNS = ("zoneapp:tok:*", "zoneapp:tokidx:*", "zoneapp:subj:*", "zoneapp:skey:*")
#: Every command the vault sends (redis-py's HELLO/AUTH need no grant).
COMMANDS = ("get", "set", "sadd", "smembers", "del", "multi", "exec", "ping")
#: Tenant ids containing these break hash tags; ``_`` alone is the empty tenant.
RESERVED_TENANT_CHARS = frozenset("{}")
EMPTY_TENANT_TAG = "_"


def tenant_tag(tenant: str) -> str:
    return tenant or EMPTY_TENANT_TAG


def token_key(tenant: str, token: str) -> str:
    return f"zoneapp:tok:{{{tenant_tag(tenant)}}}:{token}"


def subject_set_key(tenant: str, subject: str) -> str:
    """The set of a subject's tokens; same hash tag as the tokens, so erasure is one slot."""
    return f"zoneapp:subj:{{{tenant_tag(tenant)}}}:{subject}"


def subject_secret_key(tenant: str, subject: str) -> str:
    """Where a subject's wrapped key lives (same slot as its tokens)."""
    return f"zoneapp:skey:{{{tenant_tag(tenant)}}}:{subject}"


def index_key(token: str) -> str:
    """token → tenant, so metadata can be found from a token alone (its own slot)."""
    return f"zoneapp:tokidx:{{{token}}}"


def legacy_index_key(token: str) -> str:
    """The index key before hash tags; read and deleted, never written."""
    return f"zoneapp:tokidx:{token}"


def acl_rules() -> str:
    """The ACL rule (after ``user <name> on >password``) of the vault's Redis user."""
    keys = " ".join(f"~{p}" for p in KEY_PATTERNS)
    commands = " ".join(f"+{c}" for c in COMMANDS)
    return f"resetkeys {keys} resetchannels -@all {commands}"


if __name__ == "__main__":  # python -m zoneapp.vault.layout: the rule for deploy/redis/start.sh
    print(acl_rules())
