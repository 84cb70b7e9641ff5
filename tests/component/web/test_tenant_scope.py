"""A tenant-scoped officer gets its own tenant's data only, on every route that reveals
or describes a token or a ciphertext; every refusal is audited, and no refusal, audit
event or metadata answer holds a value."""

from __future__ import annotations

import json
from urllib.parse import quote

import orjson

from .conftest import EMAILS, PHONES, Web, no_secret_in


def token_path(web: Web, tenant: str, query: str = "") -> str:
    return "/tokens/" + quote(web.token(tenant), safe="") + query


async def test_token_metadata_is_scoped_to_the_officers_tenant(served: Web) -> None:
    web = served
    acme = await web.get_json(token_path(web, "acme"), "officer-acme")
    assert acme["tenant"] == "acme" and acme["zone"] == "restricted"
    assert set(acme) == {"token", "tenant", "field_class", "zone", "zones", "created"}
    assert acme["field_class"] == "email"
    # Another tenant's officer, an officer of another zone: 403, and nothing of the token.
    for who in ("officer-globex", "officer-confidential", "officer-public"):
        status, _, body = await web.call("GET", token_path(web, "acme"), who)
        assert status == 403, who
        assert b"acme" not in body and web.token("acme").encode() not in body
    # Naming another tenant does not widen the scope: globex's token is not acme's.
    status, _, _ = await web.call("GET", token_path(web, "globex", "?tenant=acme"), "officer-acme")
    assert status == 404
    status, _, _ = await web.call(
        "GET", token_path(web, "globex", "?tenant=globex"), "officer-acme"
    )
    assert status == 403
    # The zone-wide officer and the analyst see both tenants' metadata.
    for who in ("officer", "analyst"):
        for tenant in ("acme", "globex"):
            assert (await web.get_json(token_path(web, tenant), who))["tenant"] == tenant


async def test_detokenize_is_scoped_to_the_officers_tenant(served: Web) -> None:
    web = served
    acme = {"zone": "restricted", "tenant": "acme", "token": web.token("acme")}
    status, _, body = await web.call("POST", "/detokenize", "officer-acme", body=acme)
    assert status == 200 and orjson.loads(body) == {"value": EMAILS["acme"]}

    # globex's officer asking for acme's token as acme: refused before any lookup.
    status, _, body = await web.call("POST", "/detokenize", "officer-globex", body=acme)
    assert status == 403 and orjson.loads(body)["error"] == "forbidden"
    no_secret_in(body, "officer-globex")
    # ... and claiming its own tenant for acme's token: there is no such token of globex.
    lying = {**acme, "tenant": "globex"}
    status, _, body = await web.call("POST", "/detokenize", "officer-globex", body=lying)
    assert status == 404 and orjson.loads(body)["error"] == "unknown_token"
    no_secret_in(body, "officer-globex")

    outcomes = [(e["who"], e["tenant"], e["outcome"]) for e in web.audit.events]
    assert outcomes == [
        ("officer-acme", "acme", "allowed"),
        ("officer-globex", "acme", "refused:forbidden"),
        ("officer-globex", "globex", "refused:unknown_token"),
    ]
    no_secret_in(orjson.dumps(web.audit.events), None)


async def test_decrypt_is_scoped_to_the_ciphertexts_tenant(served: Web) -> None:
    web = served
    field = {"zone": "restricted", "topic": "confidential.orders", "field": "customer.phone"}
    globex = {**field, "ciphertext": web.ciphertext("globex")}

    # acme's officer with globex's ciphertext: as acme, as globex, or naming no tenant.
    for tenant, error in (("acme", "wrong_tenant"), ("globex", "forbidden"), (None, "forbidden")):
        body = {**globex, **({"tenant": tenant} if tenant else {})}
        status, _, got = await web.call("POST", "/decrypt", "officer-acme", body=body)
        assert status == 403 and orjson.loads(got)["error"] == error, (tenant, got)
        no_secret_in(got, "officer-acme")

    status, _, got = await web.call(
        "POST", "/decrypt", "officer-globex", body={**globex, "tenant": "globex"}
    )
    assert status == 200 and orjson.loads(got) == {"value": json.dumps(PHONES["globex"])}
    # The zone-wide officer needs no tenant.
    status, _, got = await web.call("POST", "/decrypt", "officer", body=globex)
    assert status == 200 and orjson.loads(got) == {"value": json.dumps(PHONES["globex"])}

    audited = [(e["who"], e["tenant"], e["outcome"]) for e in web.audit.events]
    assert ("officer-acme", "globex", "refused:wrong_tenant") in audited
    assert ("officer-globex", "globex", "allowed") in audited
    no_secret_in(orjson.dumps(web.audit.events), None)


async def test_unauthenticated_reveals_are_audited_without_their_parameters(served: Web) -> None:
    web = served
    query = {"zone": "restricted", "tenant": "acme-secret-tenant", "token": web.token("acme")}
    status, headers, _ = await web.call("GET", "/detokenize", params=query)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    [event] = web.audit.events
    assert (event["who"], event["outcome"], event["zone"]) == (
        "unknown",
        "refused:unauthorized",
        "restricted",
    )
    assert event["tenant"] is None and len(event["request_sha256"]) == 32
    blob = orjson.dumps(event)
    assert b"acme-secret-tenant" not in blob and web.token("acme").encode() not in blob

    # Beyond the anonymous budget (ZONEAPP_ANONYMOUS_BURST=5 per source): 429, unaudited.
    codes = [(await web.call("GET", "/detokenize", params=query))[0] for _ in range(6)]
    assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
    assert len(web.audit.events) == 5 and web.state.reveal.suppressed == 2
