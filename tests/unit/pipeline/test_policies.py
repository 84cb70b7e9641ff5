"""Hot reload: validation first, the old policy kept on a bad file, one policy per batch.

The switch reads real files from a temporary directory; the guards sanitize with the real
sanitizer on the in-memory keys and vault.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.records import payment, raw
from zoneapp.keys.envelope import KeyRing
from zoneapp.observability.policy import render
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.policies import APPLIED, REFUSED, UNCHANGED, BoundaryGuards, PolicySwitch
from zoneapp.pipeline.sink import Headers, MemorySink
from zoneapp.policy import CompiledBoundary, CompiledPolicy
from zoneapp.vault import CachingTokenVault, MemoryTokenVault

from .policy_files import BASE, INVALID, NEW_DESTINATION, NOTES_SUPPRESSED, write

BOUNDARY = "payments-to-confidential"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return write(tmp_path / "policy.yaml", BASE)


@pytest.fixture
def switch(policy_file: Path) -> PolicySwitch:
    return PolicySwitch.load(str(policy_file))


def guards_of(
    switch: PolicySwitch, keyring: KeyRing, vault: MemoryTokenVault, sink: Any
) -> BoundaryGuards:
    cached = CachingTokenVault(vault)

    def build(policy: CompiledPolicy, boundary: CompiledBoundary) -> BoundaryGuard:
        return BoundaryGuard(policy, boundary, keyring, cached, sink)

    return BoundaryGuards(switch, BOUNDARY, build)


def lineage(headers: Headers) -> tuple[str, str]:
    h = dict(headers)
    return h["zoneapp-policy-version"].decode(), h["zoneapp-policy-hash"].decode()


async def test_an_invalid_file_leaves_the_old_policy_active_and_says_where(
    switch: PolicySwitch, policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = switch.active
    write(policy_file, INVALID)
    with caplog.at_level(logging.ERROR, logger="zoneapp.pipeline.policies"):
        result = await switch.reload("SIGHUP")
    assert result.status == REFUSED
    assert switch.active is before and switch.active.sha256 == sha(BASE)
    # The log line names the file, the line and the problem, and that the old one stays.
    logged = caplog.text
    assert str(policy_file) in logged and "line 52" in logged and "payment_id" in logged
    assert "would move a field classified restricted" in logged
    assert "unit-fixture.1" in logged and "stays active" in logged
    assert result.error is not None and "line 52" in result.error
    # The metric is raised, and cleared by the next good reload.
    metrics = render([{"worker": "w1", **switch.state()}])
    assert 'zoneapp_policy_reload_failed{worker="w1"} 1' in metrics
    assert 'zoneapp_policy_reload_failures_total{worker="w1"} 1' in metrics
    write(policy_file, NOTES_SUPPRESSED)
    assert (await switch.reload("SIGHUP")).status == APPLIED
    metrics = render([{"worker": "w1", **switch.state()}])
    assert 'zoneapp_policy_reload_failed{worker="w1"} 0' in metrics
    assert 'zoneapp_policy_reloads_total{worker="w1"} 1' in metrics
    assert f'version="unit-fixture.2",sha256="{sha(NOTES_SUPPRESSED)}"' in metrics


async def test_an_unreadable_file_is_refused_too(switch: PolicySwitch, policy_file: Path) -> None:
    policy_file.unlink()
    result = await switch.reload("watch")
    assert result.status == REFUSED and "cannot read the file" in (result.error or "")
    assert switch.active.sha256 == sha(BASE)


async def test_the_same_bytes_are_unchanged(switch: PolicySwitch) -> None:
    before = switch.active
    result = await switch.reload("SIGHUP")
    assert result.status == UNCHANGED and switch.active is before


async def test_a_policy_that_needs_new_agents_is_refused_with_restart(
    switch: PolicySwitch, policy_file: Path
) -> None:
    write(policy_file, NEW_DESTINATION)
    result = await switch.reload("SIGHUP")
    assert result.status == REFUSED
    assert "boundary 'payments-to-confidential': destination changed" in (result.error or "")
    assert "restart the worker" in (result.error or "")
    removed = BASE[: BASE.index("  - name: user-pii-to-confidential")]
    write(policy_file, removed)
    result = await switch.reload("SIGHUP")
    assert result.status == REFUSED
    assert "boundary 'user-pii-to-confidential' removed" in (result.error or "")
    assert switch.active.sha256 == sha(BASE)


async def test_a_worker_running_some_boundaries_ignores_the_others(policy_file: Path) -> None:
    """With ZONEAPP_BOUNDARIES, a boundary this worker does not run may come and go."""
    switch = PolicySwitch.load(str(policy_file), selected=(BOUNDARY,))
    removed = BASE[: BASE.index("  - name: user-pii-to-confidential")]
    write(policy_file, removed)
    assert (await switch.reload("SIGHUP")).status == APPLIED


async def test_lineage_headers_carry_the_new_version_and_hash(
    switch: PolicySwitch, policy_file: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    sink = MemorySink()
    guards = guards_of(switch, keyring, vault, sink)
    await guards.handle([raw(payment(), offset=1)])
    write(policy_file, NOTES_SUPPRESSED)
    assert (await switch.reload("http:ops")).status == APPLIED
    await guards.handle([raw(payment(), offset=2)])
    first, second = sink.on("confidential.payments")
    assert lineage(first[3]) == ("unit-fixture.1", sha(BASE))
    assert lineage(second[3]) == ("unit-fixture.2", sha(NOTES_SUPPRESSED))
    assert "notes" in orjson.loads(first[2] or b"") and "notes" not in orjson.loads(
        second[2] or b""
    )


class HeldSink(MemorySink):
    """Holds the first send until released: a batch caught half-way through producing."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers, ts: int | None
    ) -> None:
        self.entered.set()
        await self.release.wait()
        await super().send(topic, key, value, headers, ts)


async def test_a_batch_in_flight_finishes_under_the_policy_it_started_with(
    switch: PolicySwitch, policy_file: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    """The swap lands while a batch is being produced: every output of that batch (forwards,
    quarantines, violation events) is under the old policy, every output of the next
    batch under the new one. No record is forwarded under a half-applied policy."""
    sink = HeldSink()
    guards = guards_of(switch, keyring, vault, sink)
    card = "4111 1111 1111 1111"
    batch = [raw(payment(), offset=o) for o in range(5)] + [
        raw(payment(notes=f"card {card}"), offset=5)
    ]
    in_flight = asyncio.create_task(guards.handle(batch))
    await sink.entered.wait()
    write(policy_file, NOTES_SUPPRESSED)
    assert (await switch.reload("SIGHUP")).status == APPLIED
    assert switch.active.sha256 == sha(NOTES_SUPPRESSED)
    sink.release.set()
    await in_flight
    old = list(sink.sent)
    await guards.handle([raw(payment(), offset=o) for o in range(6, 9)])
    new = sink.sent[len(old) :]
    forwarded_old = [s for s in old if s[0] == "confidential.payments"]
    assert len(forwarded_old) == 5
    for sent in forwarded_old:
        assert lineage(sent[3]) == ("unit-fixture.1", sha(BASE))
        assert "notes" in orjson.loads(sent[2] or b"")  # the old rules, all of them
    [event] = [orjson.loads(s[2] or b"") for s in old if s[0] == "security.violations"]
    assert event["policy_hash"] == sha(BASE)
    assert len(new) == 3
    for sent in new:
        assert lineage(sent[3]) == ("unit-fixture.2", sha(NOTES_SUPPRESSED))
        assert "notes" not in orjson.loads(sent[2] or b"")


async def test_the_runtime_follows_the_swap(policy_file: Path) -> None:
    """Views and commands ask ``require_policy()``: they see the new generation."""
    from zoneapp.runtime import Runtime
    from zoneapp.settings import Settings

    runtime = Runtime.from_settings(
        Settings(
            keys_url="memory://",
            vault_url="memory://",
            environment="development",
            policy_path=str(policy_file),
        )
    )
    write(policy_file, NOTES_SUPPRESSED)
    assert (await runtime.policies.reload("SIGHUP")).status == APPLIED
    assert runtime.require_policy().digest == sha(NOTES_SUPPRESSED)
    await runtime.close()


async def test_watching_reports_a_bad_file_once(switch: PolicySwitch, policy_file: Path) -> None:
    assert not switch.changed_on_disk()
    write(policy_file, INVALID)
    assert switch.changed_on_disk()
    assert (await switch.reload("watch")).status == REFUSED
    assert not switch.changed_on_disk()  # refused bytes are not retried every poll
    write(policy_file, NOTES_SUPPRESSED)
    assert switch.changed_on_disk()
    assert (await switch.reload("watch")).status == APPLIED
    assert not switch.changed_on_disk()


async def test_promote_writes_the_shadowed_candidate_and_activates_it(
    tmp_path: Path, policy_file: Path
) -> None:
    candidate = write(tmp_path / "candidate.yaml", NOTES_SUPPRESSED)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate))
    await switch.load_candidate("start")
    assert switch.candidate is not None and switch.candidate.sha256 == sha(NOTES_SUPPRESSED)
    # The file changes after it was shadowed: promote uses what was shadowed, by its hash.
    write(candidate, BASE.replace("unit-fixture.1", "unit-fixture.other"))
    wrong = await switch.promote(sha(BASE.replace("unit-fixture.1", "unit-fixture.x")), "cli")
    assert wrong.status == REFUSED and "not" in (wrong.error or "")
    result = await switch.promote(sha(NOTES_SUPPRESSED), "http:ops")
    assert result.status == APPLIED
    assert switch.active.sha256 == sha(NOTES_SUPPRESSED) and switch.candidate is None
    assert policy_file.read_text() == NOTES_SUPPRESSED  # a restart keeps it
    assert not list(tmp_path.glob(".policy.yaml.*"))  # no temporary file left behind
    again = await switch.promote(sha(NOTES_SUPPRESSED), "http:ops")
    assert again.status == UNCHANGED  # a retried promote is harmless


async def test_promote_refuses_when_the_policy_file_cannot_be_written(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    policy_file = write(folder / "policy.yaml", BASE)
    candidate = write(tmp_path / "candidate.yaml", NOTES_SUPPRESSED)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate))
    await switch.load_candidate("start")
    shutil.rmtree(folder)
    result = await switch.promote(sha(NOTES_SUPPRESSED), "cli")
    assert result.status == REFUSED and "cannot write" in (result.error or "")
    assert switch.active.sha256 == sha(BASE) and switch.candidate is not None


async def test_a_candidate_with_other_topics_is_not_shadowed(
    tmp_path: Path, policy_file: Path
) -> None:
    candidate = write(tmp_path / "candidate.yaml", NEW_DESTINATION)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate))
    result = await switch.load_candidate("start")
    assert switch.candidate is None
    assert "destination changed" in (result.candidate_error or "")
    assert render([{"worker": "w", **switch.state()}]).count(
        'zoneapp_policy_candidate_failures_total{worker="w"} 1'
    )


async def test_compiling_does_not_hold_the_event_loop(
    switch: PolicySwitch, policy_file: Path
) -> None:
    """Compiling a policy takes about a second (the DLP engine): the agents keep running."""
    write(policy_file, NOTES_SUPPRESSED)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = asyncio.get_running_loop().time()
    assert (await switch.reload("SIGHUP")).status == APPLIED
    took = asyncio.get_running_loop().time() - started
    ticker.cancel()
    assert took > 0.2 and ticks >= 0.5 * took / 0.01


async def test_the_error_is_what_check_policy_says(switch: PolicySwitch, policy_file: Path) -> None:
    from zoneapp.commands import check_policy_file

    write(policy_file, INVALID)
    result = await switch.reload("SIGHUP")
    ok, _, errors = check_policy_file(str(policy_file))
    assert not ok and errors == result.error


async def test_a_reload_that_opens_a_leak_across_two_hops_is_refused(tmp_path: Path) -> None:
    """Each boundary on its own is fine, so the loader accepts it; check-policy's flow
    proof refuses it, and so does a reload (a live change must not open a leak)."""
    from tests.unit.policy.test_flow import chain

    safe = chain(
        "fields:\n  tenant: {transform: keep, class: internal}\n",
        "fields:\n  tenant: {transform: hash, class: internal}\n",
    )
    leaking = chain(
        "fields:\n  tenant: {transform: keep, class: internal}\n",
        "fields:\n  tenant: {transform: keep, class: public}\n",
    )
    policy_file = write(tmp_path / "flow.yaml", safe)
    switch = PolicySwitch.load(str(policy_file))
    write(policy_file, leaking)
    result = await switch.reload("SIGHUP")
    assert result.status == REFUSED and switch.active.sha256 == sha(safe)
    assert "the flow proof refuses the policy" in (result.error or "")
    assert "boundary 'to-public'" in (result.error or "") and "hop 2" in (result.error or "")


#: Each change a running worker cannot apply, and what the refusal names.
ZONES = "  - {name: confidential, level: confidential}"
RESTART_NEEDED = {
    "sources": (("    source: restricted.payments\n", "    source: restricted.payments-v2\n"),),
    "source zone": (
        (ZONES, ZONES + '\n  - {name: vault, level: restricted, topic_prefix: "vault."}'),
        ("    source: restricted.payments\n", "    source: vault.payments\n"),
    ),
    "destination zone": (
        (ZONES, ZONES + '\n  - {name: analytics, level: confidential, topic_prefix: "bi."}'),
        ("    destination: confidential.payments\n", "    destination: bi.payments\n"),
    ),
    "quarantine topic": (("quarantine_suffix: quarantine", "quarantine_suffix: held"),),
    "security_topic": (("security_topic: security.violations", "security_topic: security.events"),),
    "added": (
        (
            "  - name: user-pii-to-confidential\n",
            "  - name: more-pii\n    source: restricted.more\n    destination: confidential.more\n"
            "    fields: {tenant_id: {transform: keep, class: internal}}\n"
            "  - name: user-pii-to-confidential\n",
        ),
    ),
}


@pytest.mark.parametrize("change", sorted(RESTART_NEEDED))
async def test_every_topology_change_needs_a_restart(
    switch: PolicySwitch, policy_file: Path, change: str
) -> None:
    from .policy_files import edited

    write(policy_file, edited(*RESTART_NEEDED[change]))
    result = await switch.reload("SIGHUP")
    assert result.status == REFUSED, result
    assert change in (result.error or "") and "restart the worker" in (result.error or "")
    assert switch.active.sha256 == sha(BASE)


async def test_rules_detectors_limits_and_allow_lists_apply_live(
    switch: PolicySwitch, policy_file: Path
) -> None:
    from .policy_files import edited

    text = edited(
        ("  max_depth: 16", "  max_depth: 12"),
        ("  detectors: [CREDIT_CARD, US_SSN, IBAN, EMAIL, PHONE]", "  detectors: [CREDIT_CARD]"),
        ("      cvv: {transform: suppress}", "      cvv: {transform: mask, class: restricted}"),
        (
            "    unclassified: suppress\n",
            "    unclassified: block\n"
            "    allow:\n      - {path: notes, detectors: [CREDIT_CARD]}\n",
        ),
        ("subject_normalizer: email", "subject_normalizer: trim"),
    )
    write(policy_file, text)
    assert (await switch.reload("SIGHUP")).status == APPLIED
    assert switch.active.policy.max_depth == 12


async def test_a_promoted_candidate_file_that_stays_is_not_shadowed(
    tmp_path: Path, policy_file: Path
) -> None:
    candidate = write(tmp_path / "candidate.yaml", NOTES_SUPPRESSED)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate))
    await switch.load_candidate("start")
    assert (await switch.promote(sha(NOTES_SUPPRESSED), "cli")).status == APPLIED
    result = await switch.reload("SIGHUP")
    assert result.status == UNCHANGED and switch.candidate is None
    assert result.candidate_error is None and not switch.changed_on_disk()


async def test_an_unchanged_rate_limit_keeps_its_buckets_across_a_reload(
    tmp_path: Path, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    """A reload must not hand every tenant a fresh burst: the same limit keeps its token
    buckets; a changed limit starts with full ones."""
    from tests.ingress import write_policy

    limit = {"rate": 0.001, "burst": 2, "over_limit": "quarantine"}
    policy_file = write_policy(tmp_path, {"rate_limit": limit})
    switch = PolicySwitch.load(str(policy_file))
    sink = MemorySink()
    guards = guards_of(switch, keyring, vault, sink)

    def reasons(outcomes: list[Any]) -> list[str]:
        return [getattr(o, "reason", "forwarded") for o in outcomes]

    first = await guards.handle([raw(payment(), offset=o) for o in range(2)])
    assert reasons(first) == ["forwarded", "forwarded"]  # the burst is spent
    text = policy_file.read_text().replace("unit-fixture.1", "unit-fixture.2")
    policy_file.write_text(text)
    assert (await switch.reload("SIGHUP")).status == APPLIED
    after = await guards.handle([raw(payment(), offset=2)])
    assert reasons(after) == ["rate_limited"]
    write_policy(tmp_path, {"rate_limit": {**limit, "burst": 3}})
    assert (await switch.reload("SIGHUP")).status == APPLIED
    changed = await guards.handle([raw(payment(), offset=o) for o in range(3, 7)])
    assert reasons(changed) == ["forwarded", "forwarded", "forwarded", "rate_limited"]


async def test_a_file_nested_too_deep_is_refused_not_raised(
    switch: PolicySwitch, policy_file: Path
) -> None:
    # A RecursionError out of the YAML parser used to escape the reload (and crash the
    # watching timer): it is a refusal like any other, counted, and not retried.
    write(policy_file, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert switch.changed_on_disk()
    result = await switch.reload("watch")
    assert result.status == REFUSED and "nesting too deep" in (result.error or "")
    assert switch.active.sha256 == sha(BASE)
    assert switch.failed and switch.failures == 1
    assert not switch.changed_on_disk()


async def test_promote_keeps_the_file_mode_and_follows_no_planted_symlink(
    tmp_path: Path, policy_file: Path
) -> None:
    import os

    policy_file.chmod(0o600)
    candidate = write(tmp_path / "candidate.yaml", NOTES_SUPPRESSED)
    victim = write(tmp_path / "victim.txt", "do not overwrite\n")
    # The temporary name an old version used, planted as a symlink to another file.
    (tmp_path / f".policy.yaml.{os.getpid()}.tmp").symlink_to(victim)
    switch = PolicySwitch.load(str(policy_file), candidate_path=str(candidate))
    await switch.load_candidate("start")
    assert (await switch.promote(sha(NOTES_SUPPRESSED), "cli")).status == APPLIED
    assert victim.read_text() == "do not overwrite\n"
    assert not policy_file.is_symlink() and policy_file.read_text() == NOTES_SUPPRESSED
    assert policy_file.stat().st_mode & 0o777 == 0o600
