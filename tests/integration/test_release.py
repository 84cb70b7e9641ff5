"""Approved release from quarantine on the embedded stack (issue 12, item 2).

A real worker quarantines two payments (a phone number, a card number in ``notes``). An
officer lists them and files a release that allows PHONE at ``notes``; the same officer
(and a case variant of the name) cannot approve it; a second officer does, through the
CLI. The worker re-reads the originals from ``restricted.quarantine``, re-runs the
boundary and produces the phone record to ``confidential.payments`` with a
``zoneapp-release-id`` header; the card record still fails and stays quarantined, and the
release says why. ``reconcile`` counts the released record and still balances, and the
release survives a restart of the worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.records import CARD, PHONE
from tests.waiting import wait_for
from zoneapp.stack import EmbeddedStack, WorkerProcess

from .conftest import EXAMPLE_POLICY, REPO, WORKER_STOP_TIMEOUT, require_prerequisites, spawn_worker
from .test_keys_vault import send
from .test_pipeline import header, payment, read_all

pytestmark = pytest.mark.integration

APP_ID = "zoneapp-release-test"
FAUST = str(Path(sys.executable).with_name("faust"))
BOUNDARY = "payments-to-confidential"
KEYS = {
    "analyst": ("zk_release-analyst-0123456789abcdefghij", ["analyst"]),
    "alice": ("zk_release-alice-0123456789abcdefghijkl", ["officer:restricted"]),
    "Alice": ("zk_release-alice-case-0123456789abcdefgh", ["officer:restricted"]),
    "bob": ("zk_release-bob-0123456789abcdefghijklmno", ["officer:restricted"]),
}


def call(port: int, method: str, path: str, who: str, body: Any = None) -> tuple[int, Any, bytes]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {KEYS[who][0]}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw), raw
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw or b"{}"), raw


@pytest.fixture(scope="module")
def release_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmbeddedStack, Path, dict[str, str]]]:
    require_prerequisites()
    tmp = tmp_path_factory.mktemp("release")
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
    for name, (key, _) in KEYS.items():
        (tmp / f"{name}.key").write_text(key + "\n")
    env = {
        "ZONEAPP_API_KEYS_FILE": str(keys),
        "ZONEAPP_APP_ID": APP_ID,
        "ZONEAPP_STATS_FLUSH_MS": "500",
    }
    with EmbeddedStack(tmp / "stack", EXAMPLE_POLICY, partitions=2) as stack:
        yield stack, tmp, env


def cli(stack: EmbeddedStack, port: int, key_file: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **stack.env(), "ZONEAPP_APP_ID": APP_ID}
    done = subprocess.run(
        [FAUST, "-A", "zoneapp", *args, "--url", f"http://127.0.0.1:{port}",
         "--key-file", str(key_file)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_quarantine_request_second_officer_release(
    release_env: tuple[EmbeddedStack, Path, dict[str, str]],
) -> None:
    stack, tmp, env = release_env
    worker: WorkerProcess = spawn_worker(stack, tmp, "release-worker", env)
    port = worker.web_port
    run = uuid.uuid4().hex[:8]
    phone_note = f"please call {PHONE} before delivery"
    records = [payment(run, 1, notes=phone_note), payment(run, 2, notes=f"paid with {CARD}")]
    phone_id, card_id = asyncio.run(send(stack.bootstrap, "restricted.payments", records))

    # Review: the analyst lists both, with metadata only.
    def listed() -> dict[str, Any] | None:
        status, page, raw = call(port, "GET", f"/quarantine?boundary={BOUNDARY}", "analyst")
        assert status == 200 and PHONE.encode() not in raw and CARD.encode() not in raw
        found = {i["record_id"]: i for i in page["items"]}
        return found if {phone_id, card_id} <= set(found) else None

    found = wait_for(listed, 90, "both records in the quarantine list")
    assert (found[phone_id]["reason"], found[phone_id]["detector"]) == ("dlp", "PHONE")
    assert found[phone_id]["field_path"] == "notes"
    assert found[card_id]["detector"] == "CREDIT_CARD"
    code, out, err = cli(stack, port, tmp / "analyst.key", "quarantine", "--boundary", BOUNDARY)
    assert code == 0, err
    assert found[phone_id]["violation_id"] in out and PHONE not in out and CARD not in out

    # Request by alice (through the CLI), for both records, allowing PHONE at notes.
    ids = [found[phone_id]["violation_id"], found[card_id]["violation_id"]]
    code, out, err = cli(
        stack, port, tmp / "alice.key", "release-request", "--boundary", BOUNDARY,
        "--violation", ids[0], "--violation", ids[1],
        "--reason", "the customer asked for a call back", "--allow", "PHONE", "--path", "notes",
    )  # fmt: skip
    assert code == 0, err
    release = json.loads(out)
    assert release["state"] == "pending" and release["violation_ids"] == ids
    assert release["exception"] == {"allow": {"detector": "PHONE", "path": "notes"}}
    rid = release["id"]

    # One officer alone cannot release: not with the same key, nor a case variant.
    for who in ("alice", "Alice"):
        status, refused, raw = call(port, "POST", f"/releases/{rid}/approve", who)
        assert (status, refused["error"]) == (403, "same_officer")
        assert PHONE.encode() not in raw
    code, _, err = cli(stack, port, tmp / "alice.key", "release-approve", rid)
    assert code == 1 and "same_officer" in err

    # The second officer approves through the CLI; the worker runs the release.
    code, out, err = cli(stack, port, tmp / "bob.key", "release-approve", rid)
    assert code == 0, err
    assert json.loads(out)["approved_by"] == "bob"

    def done() -> dict[str, Any] | None:
        status, body, _ = call(port, "GET", f"/releases/{rid}", "analyst")
        return body if status == 200 and body["state"] == "done" else None

    finished = wait_for(done, 120, "the release to finish")
    code, out, err = cli(stack, port, tmp / "analyst.key", "release-show", rid)
    assert code == 0 and json.loads(out)["counts"] == finished["counts"], err
    code, out, err = cli(stack, port, tmp / "analyst.key", "releases")
    assert code == 0 and [r["id"] for r in json.loads(out)["items"]] == [rid], err
    assert finished["counts"] == {"released": 1, "quarantined": 1, "not_found": 0}
    card = finished["results"][ids[1]]
    assert card["outcome"] == "quarantined"
    assert [(p["reason"], p["field_path"], p["detector"]) for p in card["problems"]] == [
        ("dlp", "notes", "CREDIT_CARD")
    ]

    # The released record is at the destination with the release id; the card is not.
    def released(out: dict[str, list[Any]]) -> bool:
        return any(header(r, "zoneapp-release-id") for r in out["confidential.payments"])

    outputs = asyncio.run(read_all(stack.bootstrap, ["confidential.payments"], released, 60))
    mine = [r for r in outputs["confidential.payments"] if header(r, "zoneapp-release-id")]
    assert len(mine) == 1
    [record] = mine
    assert header(record, "zoneapp-release-id") == rid.encode()
    assert header(record, "zoneapp-record-id") == phone_id.encode()
    doc = json.loads(record.value)
    assert doc["notes"] == phone_note and doc["customer"]["email"].startswith("tok_")
    assert all(CARD.encode() not in (r.value or b"") for r in outputs["confidential.payments"])

    # reconcile counts the released record and still balances.
    def ledger() -> dict[str, Any] | None:
        done = subprocess.run(
            [FAUST, "-A", "zoneapp", "reconcile", "--json", "--boundary", BOUNDARY],
            cwd=REPO, env={**os.environ, **stack.env(), "ZONEAPP_APP_ID": APP_ID},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        summary = json.loads(done.stdout)
        return summary if done.returncode == 0 and summary["ok"] else None

    summary = wait_for(ledger, 120, "reconcile to balance")
    assert summary["released"] == 1 and summary["missing"] == 0
    assert summary["quarantined"] == 2 and summary["duplicated"] == 0

    # The release survives a restart (the releases table's changelog).
    worker.stop(timeout=WORKER_STOP_TIMEOUT)
    again = spawn_worker(stack, tmp, "release-worker-2", env)

    def recovered() -> dict[str, Any] | None:
        status, body, _ = call(again.web_port, "GET", f"/releases/{rid}", "analyst")
        return body if status == 200 else None

    kept = wait_for(recovered, 120, "the release after a restart")
    assert kept["state"] == "done" and kept["results"] == finished["results"]
    status, page, _ = call(again.web_port, "GET", f"/quarantine?boundary={BOUNDARY}", "analyst")
    assert status == 200
    assert {i["violation_id"]: i["released_by"] for i in page["items"]}.get(ids[0]) == rid
    # Audited: request, the refusals, the approval and the run.
    audit = asyncio.run(
        read_all(stack.bootstrap, ["audit.access"], lambda o: len(o["audit.access"]) >= 6, 30)
    )
    steps = [json.loads(r.value) for r in audit["audit.access"]]
    mine_steps = [
        (s["action"], s["outcome"], s["who"]) for s in steps if s.get("release_id") == rid
    ]
    assert ("release.request", "allowed", "alice") in mine_steps
    assert ("release.approve", "refused:same_officer", "Alice") in mine_steps
    assert ("release.approve", "allowed", "bob") in mine_steps
    assert ("release.run", "done", "bob") in mine_steps
    assert all(PHONE not in json.dumps(s) for s in steps)
    again.stop(timeout=WORKER_STOP_TIMEOUT)


def test_a_second_worker_names_the_one_keeping_the_releases(
    release_env: tuple[EmbeddedStack, Path, dict[str, str]],
) -> None:
    stack, tmp, env = release_env
    group = {**env, "ZONEAPP_APP_ID": APP_ID + "-pair"}
    first = spawn_worker(stack, tmp, "pair-1", group)
    second = spawn_worker(stack, tmp, "pair-2", group)
    ports = {first.web_port, second.web_port}

    def split() -> tuple[int, dict[str, Any]] | None:
        answers = {port: call(port, "GET", "/releases", "analyst")[:2] for port in ports}
        keeping = [p for p, (status, _) in answers.items() if status == 200]
        others = [body for status, body in answers.values() if status == 503]
        if len(keeping) == 1 and len(others) == 1 and others[0].get("owner"):
            return keeping[0], others[0]
        return None

    keeper, refused = wait_for(split, 120, "one worker keeping the releases, one naming it")
    assert refused["error"] == "not_serving"
    assert refused["owner"].endswith(f":{keeper}")
    first.stop(timeout=WORKER_STOP_TIMEOUT)
    second.stop(timeout=WORKER_STOP_TIMEOUT)
