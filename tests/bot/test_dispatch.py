"""The dispatcher's claim, lease and record rules, on both engines.

Sending through the real SDKs against loopback fake providers is in tests/channels/.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.dispatch import Dispatcher, DispatchSettings, Job, Outcome
from channels import errors
from channels.base import SendReceipt
from storage import repo
from storage.db import transaction
from storage.models import Address, Message

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def _never(job: Job) -> SendReceipt:
    raise AssertionError("claim and record tests send nothing")


def _dispatcher(db: sessionmaker[Session], clock: Clock, **settings: object) -> Dispatcher:
    return Dispatcher(
        db,
        {"sms": _never, "telegram": _never},
        clock,
        DispatchSettings(**settings),  # type: ignore[arg-type]
        random.Random(7),
    )


def _queue(
    db: sessionmaker[Session],
    text: str,
    *,
    kind: str = "reply",
    channel: str = "sms",
    at: datetime = T0,
    address: str = "+32470000001",
) -> int:
    with transaction(db) as s:
        contact, _, _ = repo.find_or_create_contact(s, channel, address, at)
        row = repo.add_outbound(
            s,
            channel=channel,
            address=address,
            text=text,
            now=at,
            kind=kind,
            contact_id=contact.id,
        )
        return row.id


def _rows(db: sessionmaker[Session]) -> dict[str, Message]:
    with transaction(db, read_only=True) as s:
        return {m.text: m for m in s.scalars(select(Message))}


def test_replies_go_before_pushes_and_older_before_newer(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "push old", kind="push", at=T0 - timedelta(minutes=5))
    _queue(db, "reply new", at=T0)
    _queue(db, "reply old", at=T0 - timedelta(minutes=1))
    _queue(db, "later", at=T0 + timedelta(minutes=1))  # not due yet
    _queue(db, "whatsapp", channel="whatsapp")  # no transport for it here
    jobs = _dispatcher(db, clock).claim()
    assert [j.text for j in jobs] == ["reply old", "reply new", "push old"]
    assert all(j.attempts == 1 for j in jobs)


def test_a_claimed_row_is_leased_and_reclaimed_only_after_the_lease(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    _queue(db, "hello")
    dispatcher = _dispatcher(db, clock, lease=timedelta(seconds=60))
    (job,) = dispatcher.claim()
    row = _rows(db)["hello"]
    assert (row.status, row.lease_until) == ("sending", T0 + timedelta(seconds=60))
    clock.now = T0 + timedelta(seconds=59)
    assert dispatcher.claim() == []
    # The first dispatcher died mid-send (SIGKILL): its row comes back when the lease ends.
    clock.now = T0 + timedelta(seconds=61)
    (again,) = dispatcher.claim()
    assert (again.id, again.attempts) == (job.id, 2)


def test_concurrent_claimers_never_share_a_row(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(60):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    claimed: list[list[int]] = []
    barrier = threading.Barrier(3)

    def claimer() -> None:
        dispatcher = _dispatcher(db, clock, batch=25)
        barrier.wait()
        claimed.append([j.id for j in dispatcher.claim()])

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in claimed for i in batch]
    assert len(ids) == len(set(ids)) == 60


def _record(
    db: sessionmaker[Session], clock: Clock, outcome_for: object, **settings: object
) -> Message:
    dispatcher = _dispatcher(db, clock, **settings)
    (job,) = dispatcher.claim()
    if isinstance(outcome_for, SendReceipt):
        dispatcher.record([Outcome(job, receipt=outcome_for)])
    else:
        assert isinstance(outcome_for, errors.SendError)
        dispatcher.record([Outcome(job, error=outcome_for)])
    return _rows(db)["hello"]


def test_an_accepted_send_is_sent_with_the_provider_id(db: sessionmaker[Session]) -> None:
    _queue(db, "hello")
    row = _record(db, Clock(), SendReceipt("SM123", segments=2))
    assert (row.status, row.provider_id, row.segments, row.sent_at, row.lease_until) == (
        "sent",
        "SM123",
        2,
        T0,
        None,
    )


@pytest.mark.parametrize(
    ("error", "status", "wait_at_least"),
    [
        (errors.Unreachable("503"), "queued", timedelta(seconds=1)),
        (errors.Throttled("429", retry_after=30), "queued", timedelta(seconds=30)),
        (errors.Unknown("read timeout"), "unknown", None),
        (errors.Rejected("bad body", code="21602"), "failed", None),
        (errors.OutsideSessionWindow("63016", code="63016"), "failed", None),
    ],
)
def test_outcomes_follow_the_error_tree(
    db: sessionmaker[Session],
    error: errors.SendError,
    status: str,
    wait_at_least: timedelta | None,
) -> None:
    _queue(db, "hello")
    row = _record(db, Clock(), error)
    assert row.status == status
    assert type(error).__name__ in (row.error or "")
    if wait_at_least is not None:
        assert row.next_attempt_at is not None
        assert row.next_attempt_at - T0 >= wait_at_least


def test_retryable_errors_give_up_after_max_attempts(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "hello")
    dispatcher = _dispatcher(db, clock, max_attempts=3)
    statuses = []
    for _ in range(3):
        clock.now += timedelta(hours=1)
        (job,) = dispatcher.claim()
        dispatcher.record([Outcome(job, error=errors.Unreachable("502"))])
        statuses.append(_rows(db)["hello"].status)
    assert statuses == ["queued", "queued", "failed"]
    assert _rows(db)["hello"].attempts == 3


def test_our_own_credentials_refused_keeps_the_message(db: sessionmaker[Session]) -> None:
    _queue(db, "hello")
    row = _record(db, Clock(), errors.ConfigError("401", code="20003"))
    assert (row.status, row.attempts) == ("queued", 0)
    assert row.next_attempt_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("error", "column"),
    [
        (errors.ContactOptedOut("21610", code="21610"), "opted_out_at"),
        (errors.ContactBlocked("bot was blocked by the user"), "opted_out_at"),
        (errors.InvalidAddress("21211", code="21211"), "invalid_at"),
    ],
)
def test_refusals_about_the_contact_mark_the_address(
    db: sessionmaker[Session], error: errors.SendError, column: str
) -> None:
    _queue(db, "hello")
    row = _record(db, Clock(), error)
    assert row.status == "failed"
    with transaction(db, read_only=True) as s:
        (address,) = s.scalars(select(Address))
    assert getattr(address, column) == T0


def test_a_row_erased_by_forget_before_sending_fails_without_a_send(
    db: sessionmaker[Session],
) -> None:
    message_id = _queue(db, "hello")
    with transaction(db) as s:
        row = s.get(Message, message_id)
        assert row is not None
        row.address = None
    assert _dispatcher(db, Clock()).claim() == []
    assert (_rows(db)["hello"].status, _rows(db)["hello"].error) == ("failed", "address erased")


def test_a_late_record_after_another_dispatcher_took_over_changes_nothing(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    _queue(db, "hello")
    slow, fast = _dispatcher(db, clock), _dispatcher(db, clock)
    (first,) = slow.claim()
    clock.now += timedelta(minutes=2)  # the lease ran out
    (second,) = fast.claim()
    fast.record([Outcome(second, receipt=SendReceipt("TG-2"))])
    slow.record([Outcome(first, error=errors.Unreachable("too late"))])
    assert (_rows(db)["hello"].status, _rows(db)["hello"].provider_id) == ("sent", "TG-2")


def test_a_late_record_does_not_touch_the_new_owners_lease(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "hello")
    slow, fast = _dispatcher(db, clock), _dispatcher(db, clock)
    (first,) = slow.claim()
    clock.now += timedelta(minutes=2)
    (second,) = fast.claim()
    slow.record([Outcome(first, receipt=SendReceipt("TG-1"))])  # before the new owner records
    row = _rows(db)["hello"]
    assert (row.status, row.provider_id, row.attempts) == ("sending", None, 2)
    fast.record([Outcome(second, receipt=SendReceipt("TG-2"))])
    assert _rows(db)["hello"].provider_id == "TG-2"
