"""Detokenize and decrypt over HTTP on a real worker: 401, 403, rate limits, the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.records import EMAIL, IBAN, PHONE
from zoneapp.stack import EmbeddedStack

from ..conftest import EXAMPLE_POLICY, require_prerequisites, spawn_worker
from ..test_keys_vault import outputs, send
from ..test_pipeline import payment, read_all

pytestmark = pytest.mark.integration

KEYS = {
    "dpo": ("zk_dpo-0123456789abcdefghijklmnopqr", ["officer:restricted"]),
    "acme-officer": ("zk_acme-0123456789abcdefghijklmnopq", ["officer:restricted:acme"]),
    "globex-officer": ("zk_globex-0123456789abcdefghijklmno", ["officer:restricted:globex"]),
    "conf-officer": ("zk_conf-0123456789abcdefghijklmnopq", ["officer:confidential"]),
    "viewer": ("zk_view-0123456789abcdefghijklmnopq", ["viewer"]),
    "acme-dec": ("zk_acmedec-0123456789abcdefghijklmn", ["officer:restricted:acme"]),
    "globex-dec": ("zk_globexdec-0123456789abcdefghijkl", ["officer:restricted:globex"]),
    "dpo-dec": ("zk_dpodec-0123456789abcdefghijklmno", ["officer:restricted"]),
}


@pytest.fixture(scope="module")
def access_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStack, int]]:
    require_prerequisites()
    tmp = tmp_path_factory.mktemp("access")
    keys = tmp / "api-keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": n, "sha256": hashlib.sha256(k.encode()).hexdigest(), "roles": r}
                    for n, (k, r) in KEYS.items()
                ]
            }
        )
    )
    with EmbeddedStack(tmp / "stack", EXAMPLE_POLICY) as stack:
        env = {
            "ZONEAPP_API_KEYS_FILE": str(keys),
            "ZONEAPP_ACCESS_RATE": "1",
            "ZONEAPP_ACCESS_BURST": "4",
        }
        worker = spawn_worker(stack, tmp, "worker", env)
        yield stack, worker.web_port


def call(
    port: int, path: str, key: str | None, body: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def key(name: str) -> str:
    return KEYS[name][0]


def test_http_reveal_needs_the_right_zone_and_tenant_and_is_audited(
    access_stack: tuple[EmbeddedStack, int],
) -> None:
    stack, port = access_stack
    run = uuid.uuid4().hex[:8]
    [rid] = asyncio.run(send(stack.bootstrap, "restricted.payments", [payment(run, 1)]))
    doc = orjson.loads(outputs(stack, [rid])[rid].value)
    token, iban = doc["customer"]["email"], doc["billing"]["iban"]
    q = f"/detokenize?zone=restricted&tenant=acme&token={token}"

    status, body, headers = call(port, q, None)
    assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", "")
    assert call(port, q, "zk_not-a-real-key-0123456789abcdef")[0] == 401
    assert call(port, q, key("viewer"))[0] == 403
    # An officer of another zone: its keys cannot open a restricted token.
    wrong = q.replace("zone=restricted", "zone=confidential")
    assert call(port, wrong, key("conf-officer"))[0] == 403
    assert call(port, q, key("conf-officer"))[0] == 403
    assert call(port, q, key("globex-officer"))[0] == 403

    status, body, _ = call(port, q, key("acme-officer"))
    assert status == 200 and body == {"value": EMAIL}
    field = {"zone": "restricted", "topic": "confidential.payments", "ciphertext": iban}
    status, body, _ = call(port, "/decrypt", key("dpo"), {**field, "field": "billing.iban"})
    assert status == 200 and json.loads(body["value"]) == IBAN
    status, body, _ = call(port, "/decrypt", key("dpo"), {**field, "field": "customer.phone"})
    assert status == 422 and body["error"] == "tampered" and IBAN not in json.dumps(body)
    status, body, _ = call(port, q.replace("tenant=acme", "tenant=globex"), key("dpo"))
    assert status == 404 and body["error"] == "unknown_token"

    # Rate limit per caller (burst 4, 1/s): the dpo has used 3; a fresh caller is unaffected.
    codes = [call(port, q, key("dpo"))[0] for _ in range(4)]
    assert 429 in codes
    status, _, headers = call(port, q, key("dpo"))
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert call(port, q, key("acme-officer"))[0] == 200

    # Every call, allowed or refused, is in audit.access; no value is.
    def enough(out: dict[str, list[Any]]) -> bool:
        return len(out["audit.access"]) >= 14

    audit = asyncio.run(read_all(stack.bootstrap, ["audit.access"], enough, timeout=30))
    events = [orjson.loads(r.value) for r in audit["audit.access"]]
    outcomes = {(e["who"], e["action"], e["outcome"]) for e in events}
    assert ("unknown", "detokenize", "refused:unauthorized") in outcomes
    assert ("viewer", "detokenize", "refused:forbidden") in outcomes
    assert ("globex-officer", "detokenize", "refused:forbidden") in outcomes
    assert ("conf-officer", "detokenize", "refused:wrong_zone") in outcomes
    assert ("acme-officer", "detokenize", "allowed") in outcomes
    assert ("dpo", "decrypt", "allowed") in outcomes
    assert ("dpo", "decrypt", "refused:tampered") in outcomes
    assert ("dpo", "detokenize", "refused:rate_limited") in outcomes
    assert all(e.get("token") in (None, token) for e in events)
    blob = b"".join(r.value for r in audit["audit.access"])
    assert EMAIL.encode() not in blob and IBAN.encode() not in blob
    for name, (secret, _) in KEYS.items():
        assert secret.encode() not in blob, name


def test_http_decrypt_is_tenant_scoped_and_opens_only_fields(
    access_stack: tuple[EmbeddedStack, int],
) -> None:
    """issue 8 items 1 and 2: officer:restricted:acme got globex's phone number, and a
    vault entry copied from Redis decrypted with topic=zoneapp/vault/v1."""
    import redis

    stack, port = access_stack
    run = uuid.uuid4().hex[:8]
    acme_rid, globex_rid = asyncio.run(
        send(stack.bootstrap, "restricted.payments", [payment(run, 1), payment(run, 2)])
    )
    got = outputs(stack, [acme_rid, globex_rid])
    acme, globex = (orjson.loads(got[r].value) for r in (acme_rid, globex_rid))
    assert globex["tenant_id"] == "globex"
    field = {"zone": "restricted", "topic": "confidential.payments", "field": "customer.phone"}
    steal = {**field, "ciphertext": globex["customer"]["phone"], "tenant": "acme"}
    status, body, _ = call(port, "/decrypt", key("acme-dec"), steal)
    assert status == 403 and body["error"] == "wrong_tenant" and PHONE not in json.dumps(body)
    own = {**field, "ciphertext": acme["customer"]["phone"], "tenant": "acme"}
    status, body, _ = call(port, "/decrypt", key("acme-dec"), own)
    assert status == 200 and json.loads(body["value"]) == PHONE
    theirs = {**field, "ciphertext": globex["customer"]["phone"], "tenant": "globex"}
    assert call(port, "/decrypt", key("globex-dec"), theirs)[0] == 200

    # A vault entry and a subject key, straight from Redis, are not record fields.
    client = redis.Redis.from_url(stack.vault_url)
    token = acme["customer"]["email"]
    entry = orjson.loads(client.get(f"zoneapp:tok:{{acme}}:{token}"))  # type: ignore[arg-type]
    [skey] = client.keys("zoneapp:skey:{acme}:*")
    subject = skey.decode().rsplit(":", 1)[1]  # type: ignore[union-attr]
    wrapped = client.get(skey).decode()  # type: ignore[union-attr]
    for ciphertext, topic, name in (
        (entry["x"], "zoneapp/vault/v1", f"acme\x1f{entry['c']}\x1f{token}"),
        (wrapped, "zoneapp/skey/v1", f"acme\x1f{subject}"),
    ):
        probe = {"zone": "restricted", "topic": topic, "field": name, "ciphertext": ciphertext}
        status, body, _ = call(port, "/decrypt", key("dpo-dec"), probe)
        assert status == 422 and body["error"] == "not_a_field", body
        assert EMAIL not in json.dumps(body)

    def enough(out: dict[str, list[Any]]) -> bool:
        return sum(b"-dec" in r.value for r in out["audit.access"]) >= 5

    audit = asyncio.run(read_all(stack.bootstrap, ["audit.access"], enough, timeout=30))
    events = [orjson.loads(r.value) for r in audit["audit.access"]]
    mine = [e for e in events if e["who"].endswith("-dec")]
    assert all("tenant" in e for e in events)
    assert {(e["who"], e["outcome"], e["tenant"]) for e in mine} >= {
        ("acme-dec", "refused:wrong_tenant", "globex"),
        ("acme-dec", "allowed", "acme"),
        ("globex-dec", "allowed", "globex"),
        ("dpo-dec", "refused:not_a_field", "acme"),
    }


def test_keys_and_values_stay_out_of_the_worker_log(
    access_stack: tuple[EmbeddedStack, int],
) -> None:
    stack, _ = access_stack
    log = Path(stack.workdir).parent / "worker.log"
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    for secret, _ in KEYS.values():
        assert secret not in text
    assert EMAIL not in text and IBAN not in text
