"""The release state machine (zoneapp.release.model): two officers, expiry, outcomes."""

from __future__ import annotations

import pytest

from zoneapp.release.model import (
    APPROVED,
    DONE,
    EXPIRED,
    NOT_FOUND,
    PENDING,
    RELEASED,
    RELEASING,
    STILL_QUARANTINED,
    Officer,
    Release,
    ReleaseBook,
    ReleaseError,
    ReleaseException,
    identity,
)

#: "alice" in fullwidth letters.
FULLWIDTH = "\uff41\uff4c\uff49\uff43\uff45"
ALLOW = ReleaseException("allow", "notes", detector="PHONE")


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def officer(name: str, person: str = "", zones: tuple[str, ...] = ("restricted",)) -> Officer:
    return Officer(name, person or name, frozenset(zones))


def filed(book: ReleaseBook, who: Officer | None = None, ids: tuple[str, ...] = ("v1",)) -> Release:
    return book.file(
        who or officer("alice"),
        boundary="payments-to-confidential",
        zone="restricted",
        violation_ids=ids,
        exception=ALLOW,
        reason="merchant's public phone",
    )


def test_two_officers_release_and_the_outcome_is_kept_per_record() -> None:
    clock = Clock()
    book = ReleaseBook(ttl=60, clock=clock)
    release = filed(book, ids=("v1", "v2", "v3", "v1"))
    assert release.state == PENDING and release.violation_ids == ("v1", "v2", "v3")
    clock.now += 10
    book.approve(release, officer("bob"))
    assert (release.state, release.approved_by, release.approved_at) == (APPROVED, "bob", 1010)
    book.start(release)
    assert release.state == RELEASING
    book.finish(
        release,
        {
            "v1": {"outcome": RELEASED, "record_id": "t/0/1"},
            "v2": {"outcome": STILL_QUARANTINED, "problems": [{"reason": "dlp"}]},
        },
    )
    assert release.state == DONE and release.finished_at == 1010
    assert release.counts() == {RELEASED: 1, STILL_QUARANTINED: 1, NOT_FOUND: 1}
    # The row survives a round trip (the releases table stores it as JSON).
    assert Release.from_row(release.to_row()) == release


@pytest.mark.parametrize(
    ("requester", "approver"),
    [
        (officer("alice"), officer("alice")),  # the same key twice
        (officer("alice"), officer("Alice")),  # a case variant of the name
        (officer("alice"), officer("ALICE ")),
        (officer("alice"), officer(FULLWIDTH)),  # fullwidth: NFKC folds it
        (officer("alice"), officer("a.lice")),  # punctuation
        (officer("alice-laptop", "alice"), officer("alice-phone", "alice")),  # two keys, one person
        (officer("alice-laptop", "Alice"), officer("alice")),
        (officer("alice"), officer("---")),  # a name with no letters is nobody
    ],
)
def test_one_officer_alone_can_never_approve(requester: Officer, approver: Officer) -> None:
    book = ReleaseBook(ttl=60, clock=Clock())
    release = filed(book, requester)
    with pytest.raises(ReleaseError) as refused:
        book.approve(release, approver)
    assert refused.value.code == "same_officer"
    assert release.state == PENDING and release.approved_by is None
    with pytest.raises(ReleaseError) as not_approved:
        book.start(release)
    assert not_approved.value.code == "not_approved"


def test_identity_folds_what_names_one_person() -> None:
    assert identity("Alice") == identity("alice") == identity(FULLWIDTH) == "alice"
    assert identity("alice") != identity("bob")


def test_a_request_expires_and_can_no_longer_be_approved() -> None:
    clock = Clock()
    book = ReleaseBook(ttl=60, clock=clock)
    release = filed(book)
    assert release.expires_at == 1060
    clock.now = 1059.9
    assert release.state_at(clock()) == PENDING
    clock.now = 1060
    assert release.state_at(clock()) == EXPIRED
    with pytest.raises(ReleaseError) as refused:
        book.approve(release, officer("bob"))
    assert refused.value.code == "expired" and release.state == EXPIRED
    with pytest.raises(ReleaseError):
        book.approve(release, officer("carol"))


def test_only_a_pending_request_is_approved_once() -> None:
    book = ReleaseBook(ttl=60, clock=Clock())
    release = filed(book)
    book.approve(release, officer("bob"))
    with pytest.raises(ReleaseError) as again:
        book.approve(release, officer("carol"))
    assert again.value.code == "not_pending" and release.approved_by == "bob"
    with pytest.raises(ReleaseError) as not_running:
        book.finish(release, {})
    assert not_running.value.code == "not_running"


@pytest.mark.parametrize(
    "who",
    [
        officer("bob", zones=("confidential",)),  # an officer of another zone
        officer("bob", zones=()),  # tenant-scoped officers carry no zone-wide zone
    ],
)
def test_officers_of_another_zone_neither_file_nor_approve(who: Officer) -> None:
    book = ReleaseBook(ttl=60, clock=Clock())
    with pytest.raises(ReleaseError) as refused:
        filed(book, who)
    assert refused.value.code == "forbidden"
    release = filed(book)
    with pytest.raises(ReleaseError) as refused:
        book.approve(release, who)
    assert refused.value.code == "forbidden" and release.state == PENDING


@pytest.mark.parametrize(
    ("ids", "reason", "code"),
    [
        ((), "why", "no_records"),
        (tuple(f"v{i}" for i in range(501)), "why", "too_many"),
        (("v1",), "   ", "bad_request"),
        (("v1",), "x" * 1001, "bad_request"),
    ],
)
def test_a_request_names_records_and_a_reason(ids: tuple[str, ...], reason: str, code: str) -> None:
    book = ReleaseBook(ttl=60, clock=Clock())
    with pytest.raises(ReleaseError) as refused:
        book.file(
            officer("alice"),
            boundary="b",
            zone="restricted",
            violation_ids=ids,
            exception=ALLOW,
            reason=reason,
        )
    assert refused.value.code == code


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"allow": {"detector": "PHONE"}},
        {"allow": {"path": "notes"}},
        {"allow": {"path": "notes", "detector": "PHONE"}, "transform": {}},
        {"transform": {"name": "keep", "path": "notes"}},  # keep is never an exception
        {"transform": {"name": "mask", "path": "notes", "params": []}},
        {"delete": {"path": "notes"}},
    ],
)
def test_malformed_exceptions_are_refused(data: object) -> None:
    with pytest.raises(ReleaseError) as refused:
        ReleaseException.from_json(data)
    assert refused.value.code == "bad_request"


def test_exceptions_round_trip() -> None:
    for exc in (
        ALLOW,
        ReleaseException("transform", "notes", transform="mask", params={"keep_last": 2}),
    ):
        assert ReleaseException.from_json(exc.to_json()) == exc


def test_a_row_of_an_unknown_version_is_not_read() -> None:
    row = filed(ReleaseBook(ttl=60, clock=Clock())).to_row()
    with pytest.raises(ValueError):
        Release.from_row({**row, "v": 99})


def test_the_time_to_live_is_a_setting() -> None:
    from zoneapp.settings import Settings

    assert Settings.from_env({}).release_ttl == 86_400
    assert Settings.from_env({"ZONEAPP_RELEASE_TTL_S": "600"}).release_ttl == 600
    with pytest.raises(ValueError):
        ReleaseBook(ttl=0)


def test_the_retention_is_a_setting() -> None:
    from zoneapp.settings import Settings

    assert Settings.from_env({}).release_retention == 30 * 86_400
    env = {"ZONEAPP_RELEASE_RETENTION_S": "7200"}
    assert Settings.from_env(env).release_retention == 7200
    with pytest.raises(ValueError):
        Settings.from_env({"ZONEAPP_RELEASE_RETENTION_S": "60"})  # under an hour
