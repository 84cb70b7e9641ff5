"""The guard's observer hooks: called explicitly, in order, and never able to change an output."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from tests.fixtures import POLICY
from tests.records import CARD, payment, raw
from zoneapp.core.sanitizer import Forward, Outcome, Quarantine, RawRecord
from zoneapp.keys.envelope import KeyRing
from zoneapp.pipeline.guard import BoundaryGuard
from zoneapp.pipeline.observer import (
    NO_OBSERVER,
    BoundaryObserver,
    NoObserver,
    RecordTrace,
    SafeObserver,
)
from zoneapp.pipeline.sink import MemorySink, Sent
from zoneapp.policy import CompiledPolicy, load_policy
from zoneapp.vault import MemoryTokenVault

BOUNDARY = "payments-to-confidential"
PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{PRODUCER_TRACE}-00f067aa0ba902b7-01".encode()
OUR_TRACE = "0af7651916cd43dd8448eb211c80319c"
#: A value an observer's exception message carries: it must never reach a log line.
SECRET = "4111111111111111-in-an-exception"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy(POLICY)


class RecordingObserver(NoObserver):
    """Writes down every hook with the record's offset (or the step's name)."""

    __slots__ = ("calls", "outcomes")

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.outcomes: dict[int, Outcome] = {}

    def on_batch_start(self, records: Sequence[RawRecord]) -> None:
        self.calls.append(("batch_start", [r.offset for r in records]))

    def on_step_start(self, name: str, attributes: Mapping[str, int | str]) -> None:
        self.calls.append(("step_start", name))

    def on_step_end(self, name: str, error: BaseException | None) -> None:
        self.calls.append(("step_end", name, type(error).__name__ if error else None))

    def on_record_parsed(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        assert 0 < started_ns <= ended_ns
        self.calls.append(("parsed", record.offset))

    def on_dlp_scanned(self, record: RawRecord, started_ns: int, ended_ns: int, hits: int) -> None:
        assert 0 < started_ns <= ended_ns
        self.calls.append(("dlp", record.offset, hits))

    def on_record_sanitized(self, record: RawRecord, started_ns: int, ended_ns: int) -> None:
        assert 0 < started_ns <= ended_ns
        self.calls.append(("sanitized", record.offset))

    def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> RecordTrace | None:
        self.outcomes[record.offset] = outcome
        kind = "forward" if isinstance(outcome, Forward) else outcome.reason
        self.calls.append(("outcome", record.offset, kind))
        return RecordTrace(OUR_TRACE, [("traceparent", f"00-{OUR_TRACE}-{'1' * 16}-01".encode())])

    def on_violation(self, record: RawRecord, violation_id: str) -> None:
        self.calls.append(("violation", record.offset, violation_id))

    def on_record_sent(self, record: RawRecord) -> None:
        self.calls.append(("sent", record.offset))

    def on_batch_end(self, error: BaseException | None) -> None:
        self.calls.append(("batch_end", type(error).__name__ if error else None))


class FailingObserver(NoObserver):
    """Every hook raises, with a value in the message."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):

            def fail(*args: Any) -> Any:
                raise ValueError(f"observer saw {SECRET}")

            return fail
        return object.__getattribute__(self, name)


def guard_for(
    policy: CompiledPolicy,
    keyring: KeyRing,
    sink: MemorySink,
    vault: MemoryTokenVault,
    observer: BoundaryObserver | None = None,
) -> BoundaryGuard:
    return BoundaryGuard(policy, policy.boundary(BOUNDARY), keyring, vault, sink, observer=observer)


def batch() -> list[RawRecord]:
    return [
        raw(payment(), headers=[("traceparent", TRACEPARENT)], offset=0),
        raw(payment(notes=f"card {CARD}"), headers=[("traceparent", TRACEPARENT)], offset=1),
        raw(b"{broken", headers=[("traceparent", TRACEPARENT)], offset=2),
    ]


def traceparents(sent: Sent) -> list[bytes]:
    return [v for k, v in sent[3] if k.lower() == "traceparent"]


def _unrandom(value: Any) -> Any:
    """A JSON document with each ciphertext (a random nonce every time) as its prefix."""
    if isinstance(value, dict):
        return {k: _unrandom(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unrandom(v) for v in value]
    if isinstance(value, str) and value.startswith("zenc"):
        return value.split(".", 1)[0]
    return value


def without_trace(sent: list[Sent]) -> list[Any]:
    """What was produced, minus what differs per run: trace headers, violation ids and
    times, ciphertexts' random bytes."""
    out = []
    for topic, key, value, headers in sent:
        doc: Any = value
        if topic == "security.violations":
            key = None
            event = orjson.loads(value or b"")
            doc = {k: v for k, v in event.items() if k not in ("id", "trace_id", "timestamp")}
        elif topic == "confidential.payments":
            doc = _unrandom(orjson.loads(value or b""))
        kept = [
            (k, v)
            for k, v in headers
            if k not in ("traceparent", "zoneapp-violation-id") and not v.startswith(b"zenc")
        ]
        out.append((topic, key, doc, kept))
    return out


async def test_the_observer_sees_exactly_the_hooks_of_each_record(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    observer = RecordingObserver()
    sink = MemorySink()
    await guard_for(policy, keyring, sink, vault, observer).handle(batch())
    violations = [orjson.loads(v or b"") for _, _, v, _ in sink.on("security.violations")]
    assert [e["reason"] for e in violations] == ["dlp", "invalid_json"]
    assert observer.calls == [
        ("batch_start", [0, 1, 2]),
        ("step_start", "keys.prepare"),
        ("step_end", "keys.prepare", None),
        ("parsed", 0),
        ("parsed", 1),
        ("parsed", 2),  # quarantined at parse: no DLP scan, no second phase
        ("step_start", "subject_keys.get"),
        ("step_end", "subject_keys.get", None),
        ("dlp", 0, 0),
        ("sanitized", 0),
        ("dlp", 1, 1),  # the card: the sanitizer reports its hit
        ("sanitized", 1),
        ("step_start", "vault.store"),
        ("step_end", "vault.store", None),
        ("outcome", 0, "forward"),
        ("sent", 0),
        ("outcome", 1, "dlp"),
        ("violation", 1, violations[0]["id"]),
        ("sent", 1),
        ("outcome", 2, "invalid_json"),
        ("violation", 2, violations[1]["id"]),
        ("sent", 2),
        ("batch_end", None),
    ]
    # The trace context the observer returned is what every output carries.
    for sent in sink.sent:
        assert traceparents(sent) == [f"00-{OUR_TRACE}-{'1' * 16}-01".encode()]
    assert {e["trace_id"] for e in violations} == {OUR_TRACE}
    assert isinstance(observer.outcomes[1], Quarantine)


async def test_a_failed_step_and_batch_are_reported(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    class BrokenSink(MemorySink):
        async def send(self, topic: str, *args: Any) -> None:
            raise ConnectionError("producer gone")

    observer = RecordingObserver()
    with pytest.raises(ConnectionError):
        await guard_for(policy, keyring, BrokenSink(), vault, observer).handle(batch()[:1])
    assert observer.calls[-2:] == [("outcome", 0, "forward"), ("batch_end", "ConnectionError")]
    assert ("sent", 0) not in observer.calls


async def test_a_failing_observer_never_drops_or_leaks_a_record(
    policy: CompiledPolicy,
    keyring: KeyRing,
    vault: MemoryTokenVault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Observer exceptions are swallowed and logged by type, once per hook: the same
    records are produced as without an observer, under a fresh trace (never the
    producer's, which only an observer implementing the trace policy continues)."""
    plain, observed = MemorySink(), MemorySink()
    await guard_for(policy, keyring, plain, vault).handle(batch())
    failing = guard_for(policy, keyring, observed, vault, FailingObserver())
    with caplog.at_level(logging.WARNING, logger="zoneapp.pipeline.observer"):
        await failing.handle(batch())
        await failing.handle(batch())
    # Per batch: one forward; two quarantines, each with its violation event.
    assert len(plain.sent) == 5 and len(observed.sent) == 10
    assert without_trace(observed.sent) == without_trace(plain.sent) * 2
    for sent in observed.sent:
        [value] = traceparents(sent)
        assert PRODUCER_TRACE.encode() not in value and value.endswith(b"-00")
    assert SECRET not in caplog.text and "observer saw" not in caplog.text
    assert "FailingObserver.on_record_outcome raised ValueError" in caplog.text
    assert isinstance(failing.observer, SafeObserver)
    hooks = {hook for hook, _ in failing.observer.failures}
    assert hooks == {
        "on_batch_start",
        "on_step_start",
        "on_step_end",
        "on_record_parsed",
        "on_dlp_scanned",
        "on_record_sanitized",
        "on_record_outcome",
        "on_violation",
        "on_record_sent",
        "on_batch_end",
    }
    # Logged once per hook and exception type, however many records and batches.
    assert caplog.text.count("raised ValueError") == len(hooks)
    assert failing.observer.failures[("on_record_outcome", "ValueError")] == 6


async def test_an_observer_returning_no_trace_context_gets_a_fresh_one(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    class Wrong(NoObserver):
        __slots__ = ()

        def on_record_outcome(self, record: RawRecord, outcome: Outcome) -> Any:
            return [("traceparent", TRACEPARENT)]  # not a RecordTrace: ignored

    for observer in (Wrong(), None):
        sink = MemorySink()
        await guard_for(policy, keyring, sink, vault, observer).handle(batch())
        values = [traceparents(s) for s in sink.sent]
        assert all(len(v) == 1 and PRODUCER_TRACE.encode() not in v[0] for v in values)
        # One fresh trace per record, the same on its quarantine and violation.
        assert len({v[0] for v in values}) == 3


async def test_without_an_observer_no_clock_is_read(
    policy: CompiledPolicy, keyring: KeyRing, vault: MemoryTokenVault
) -> None:
    guard = guard_for(policy, keyring, MemorySink(), vault)
    assert guard.observer is NO_OBSERVER and guard.sanitizer.observer is None
    observed = guard_for(policy, keyring, MemorySink(), vault, RecordingObserver())
    assert observed.sanitizer.observer is observed.observer
