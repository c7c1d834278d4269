"""The dispatcher's claim, lease and record rules, on both engines.

Sending through the real SDKs against loopback fake providers is in tests/channels/.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.sending import DispatchSettings, Job, Outcome, Pacing
from channels import errors
from channels.base import SendReceipt
from storage import repo
from storage.db import make_engine, transaction
from storage.migrate import upgrade
from storage.models import Address, Message, StatusReport
from storage.outbox import CLAIM

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
        return repo.add_outbound(
            s,
            channel=channel,
            address=address,
            text=text,
            now=at,
            kind=kind,
            contact_id=contact.id,
        )


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


def test_a_small_claim_takes_the_button_answer_then_the_reply_past_older_pushes(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    for n in range(3):
        _queue(db, f"push {n}", kind="push", at=T0 - timedelta(minutes=10 - n))
    _queue(db, "reply", channel="telegram", address="100", at=T0 - timedelta(seconds=2))
    _queue(db, "", kind="callback_answer", channel="telegram", address="100", at=T0)
    _queue(db, "telegram push", kind="push", channel="telegram", address="200", at=T0)
    dispatcher = _dispatcher(db, clock, batch=2)
    assert [(j.channel, j.kind, j.text) for j in dispatcher.claim()] == [
        ("sms", "push", "push 0"),
        ("sms", "push", "push 1"),
        ("telegram", "callback_answer", ""),
        ("telegram", "reply", "reply"),
    ]
    assert [j.text for j in dispatcher.claim()] == ["push 2", "telegram push"]
    with transaction(db, read_only=True) as s:
        stored = {(m.kind, m.text): m.priority for m in s.scalars(select(Message))}
    assert stored[("callback_answer", "")] == 0
    assert stored[("reply", "reply")] == 1
    assert stored[("push", "push 0")] == 2


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
        (errors.OutsideSessionWindow("63016", code="63016"), "held", None),
        (errors.NoTemplate("no template for park in nl"), "failed", None),
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


# --- pacing: the sender's budget and the gap per address, shared by all dispatchers ---------


def _paced(
    db: sessionmaker[Session], clock: Clock, pacing: dict[str, Pacing], **settings: object
) -> Dispatcher:
    return Dispatcher(
        db,
        {"sms": _never, "telegram": _never, "whatsapp": _never},
        clock,
        DispatchSettings(**settings),  # type: ignore[arg-type]
        random.Random(7),
        pacing=pacing,
    )


def test_a_sender_budget_lets_out_what_fits_in_the_horizon(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(30):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    pacing = {"sms": Pacing(key="sms:+15555550199", per_second=10)}
    first = _paced(db, clock, pacing).claim()
    # One every 0.1 s, from now to the end of the one-second horizon.
    assert [round(j.delay, 3) for j in first] == [n / 10 for n in range(11)]
    # Another dispatcher at the same moment finds the budget spent.
    assert _paced(db, clock, pacing).claim() == []
    clock.now += timedelta(seconds=1)
    later = _paced(db, clock, pacing).claim()
    assert [round(j.delay, 3) for j in later] == [n / 10 for n in range(1, 11)]


def test_sms_segments_count_against_the_budget(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(10):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    pacing = {"sms": Pacing(key="sms:x", per_second=6, cost=lambda job: 3)}
    jobs = _paced(db, clock, pacing).claim()
    assert [round(j.delay, 3) for j in jobs] == [0.0, 0.5, 1.0]


def test_one_chat_gets_one_message_a_second_and_chores_do_not_wait(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    for text in ("intro", "question", "third"):
        _queue(db, text, channel="telegram", address="100")
    _queue(db, "other chat", channel="telegram", address="200")
    _queue(db, "", kind="callback_answer", channel="telegram", address="100")
    pacing = {
        "telegram": Pacing(
            key="telegram",
            per_second=100,
            per_address=timedelta(seconds=1),
            cost=lambda job: 0 if job.kind == "callback_answer" else 1,
        )
    }
    dispatcher = _paced(db, clock, pacing)
    jobs = {(j.kind, j.text): round(j.delay, 2) for j in dispatcher.claim()}
    assert jobs == {
        ("callback_answer", ""): 0.0,
        ("reply", "intro"): 0.0,
        ("reply", "other chat"): 0.01,  # the sender's 100 a second
    }
    assert dispatcher.claim() == []  # the chat's next message waits a second
    clock.now += timedelta(seconds=0.99)
    assert dispatcher.claim() == []
    clock.now += timedelta(seconds=0.01)
    assert [(j.text, j.delay) for j in dispatcher.claim()] == [("question", 0.0)]
    clock.now += timedelta(seconds=1)
    assert [j.text for j in dispatcher.claim()] == ["third"]


def test_pacing_holds_across_concurrent_dispatchers(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(90):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    pacing = {"sms": Pacing(key="sms:x", per_second=20)}
    delays: list[float] = []
    barrier = threading.Barrier(3)

    def claimer() -> None:
        dispatcher = _paced(db, clock, pacing)
        barrier.wait()
        delays.extend(j.delay for j in dispatcher.claim())

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Three claimers together take one second's worth at 20 a second: 21 slots, none shared.
    assert sorted(round(d, 3) for d in delays) == [n / 20 for n in range(21)]


def test_a_429_holds_back_the_sender_and_the_address(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "hello", channel="telegram", address="100")
    _queue(db, "other", channel="telegram", address="200")
    pacing = {"telegram": Pacing(key="telegram", per_second=1000)}
    dispatcher = _paced(db, clock, pacing)
    jobs = dispatcher.claim()
    throttled = next(j for j in jobs if j.text == "hello")
    sent = next(j for j in jobs if j.text == "other")
    dispatcher.record(
        [
            Outcome(throttled, error=errors.Throttled("429", retry_after=30)),
            Outcome(sent, receipt=SendReceipt("200:1")),
        ]
    )
    _queue(db, "later", channel="telegram", address="300")
    clock.now += timedelta(seconds=20)
    assert dispatcher.claim() == []  # the whole bot waits out Telegram's retry_after
    clock.now += timedelta(seconds=15)
    assert {j.text for j in dispatcher.claim()} == {"hello", "later"}


def test_a_twilio_style_429_holds_back_only_the_address(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "hello", address="+32470000001")
    pacing = {"sms": Pacing(key="sms:x", per_second=1000, throttle_holds_sender=False)}
    dispatcher = _paced(db, clock, pacing)
    (job,) = dispatcher.claim()
    dispatcher.record([Outcome(job, error=errors.Throttled("429", retry_after=30))])
    _queue(db, "other", address="+32470000002")
    assert [j.text for j in dispatcher.claim()] == ["other"]


# --- WhatsApp's 24-hour window -------------------------------------------------------------


def _last_wrote(db: sessionmaker[Session], address: str, at: datetime | None) -> None:
    with transaction(db) as s:
        row = s.scalars(select(Address).where(Address.value == address)).one()
        row.last_inbound_at = at


def test_outside_the_window_messages_are_held_and_an_invitation_goes_as_a_template(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    window = {"whatsapp": Pacing(key="wa", per_second=100, session_window=timedelta(hours=24))}
    recent, silent = "+32470000001", "+32470000002"
    _queue(db, "reply in the window", channel="whatsapp", address=recent)
    _last_wrote(db, recent, T0 - timedelta(hours=23))
    _queue(db, "stale reply", channel="whatsapp", address=silent)
    _last_wrote(db, silent, T0 - timedelta(hours=25))
    invitation_id = _queue(db, "invitation", kind="push", channel="whatsapp", address=silent)
    with transaction(db) as s:
        row = s.get(Message, invitation_id)
        assert row is not None
        row.payload = {"invitation": {"survey": "park", "language": "en"}}
    jobs = {j.text: j.template for j in _paced(db, clock, window).claim()}
    assert jobs == {"reply in the window": False, "invitation": True}
    assert _rows(db)["stale reply"].status == "held"


def test_a_window_refusal_holds_the_message_and_a_missing_template_fails_it(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    window = {"whatsapp": Pacing(key="wa", per_second=100, session_window=timedelta(hours=24))}
    _queue(db, "hello", channel="whatsapp", address="+32470000001")
    _last_wrote(db, "+32470000001", T0)
    dispatcher = _paced(db, clock, window)
    (job,) = dispatcher.claim()
    dispatcher.record([Outcome(job, error=errors.OutsideSessionWindow("63016", code="63016"))])
    row = _rows(db)["hello"]
    assert (row.status, row.attempts) == ("held", 0)  # never resent as free text on its own


# --- delivery reports that overtake the dispatcher -----------------------------------------


def test_a_report_arriving_before_the_provider_id_is_applied_when_it_is_recorded(
    db: sessionmaker[Session],
) -> None:
    from bot.service import Service
    from channels.base import StatusUpdate

    clock = Clock()
    _queue(db, "hello")
    dispatcher = _dispatcher(db, clock)
    (job,) = dispatcher.claim()
    service = Service(db, clock=clock)
    # Twilio called back while our record of its answer was still on its way.
    assert not service.record_status(StatusUpdate("sms", "SM-early", "sent"))
    assert not service.record_status(StatusUpdate("sms", "SM-early", "delivered"))
    dispatcher.record([Outcome(job, receipt=SendReceipt("SM-early"))])
    assert _rows(db)["hello"].status == "delivered"
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(StatusReport)).all() == []


def test_reports_that_never_find_their_message_are_pruned(db: sessionmaker[Session]) -> None:
    from bot.service import Service
    from channels.base import StatusUpdate

    clock = Clock()
    Service(db, clock=clock).record_status(StatusUpdate("sms", "SM-stranger", "delivered"))
    clock.now += timedelta(hours=2)
    _queue(db, "hello", at=clock.now)
    dispatcher = _dispatcher(db, clock)
    (job,) = dispatcher.claim()
    dispatcher.record([Outcome(job, receipt=SendReceipt("SM-mine"))])
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(StatusReport)).all() == []


# --- the pipeline: claims topping up, grouped records, one citizen's order -----------------


def test_a_claim_leaves_an_address_still_busy_here_for_later(db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "to the busy one", address="+32470000001")
    _queue(db, "to another", address="+32470000002")
    dispatcher = _dispatcher(db, clock)
    jobs = dispatcher.claim(busy={("sms", "+32470000001")})
    assert [j.text for j in jobs] == ["to another"]
    assert _rows(db)["to the busy one"].status == "queued"
    assert [j.text for j in dispatcher.claim()] == ["to the busy one"]


def test_lease_expired_rows_are_claimed_in_the_same_order_as_queued_ones(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    _queue(db, "push", kind="push", at=T0 - timedelta(minutes=9))
    _queue(db, "reply", at=T0 - timedelta(minutes=3), address="+32470000002")
    _queue(db, "abandoned reply", at=T0 - timedelta(minutes=5), address="+32470000003")
    dying = _dispatcher(db, clock)
    with transaction(db) as s:  # only the abandoned reply is claimed by a dispatcher that dies
        for row in s.scalars(select(Message).where(Message.text != "abandoned reply")):
            row.next_attempt_at = T0 + timedelta(minutes=1)
    assert [j.text for j in dying.claim()] == ["abandoned reply"]
    with transaction(db) as s:
        for row in s.scalars(select(Message).where(Message.text != "abandoned reply")):
            row.next_attempt_at = row.created_at
    clock.now += timedelta(minutes=2)  # its lease ran out
    jobs = _dispatcher(db, clock).claim()
    assert [(j.text, j.attempts) for j in jobs] == [
        ("abandoned reply", 2),
        ("reply", 1),
        ("push", 1),
    ]


class _Provider:
    """A Deliver that answers after a short wait, noting the order of the calls; the
    addresses in ``failing`` answer 503 to their first message."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, str]] = []
        self._failing = set(failing)

    async def __call__(self, job: Job) -> SendReceipt:
        self.calls.append((job.address, job.text))
        await asyncio.sleep(0.001)
        if job.address in self._failing:
            self._failing.discard(job.address)
            raise errors.Unreachable("503")
        return SendReceipt(f"SM{job.id}")


class _Counting(Dispatcher):
    """Counts the record transactions."""

    records: list[int]

    def record(self, outcomes: list[Outcome]) -> None:
        self.records = [*getattr(self, "records", []), len(outcomes)]
        super().record(outcomes)


def _run_until_sent(dispatcher: Dispatcher, db: sessionmaker[Session], total: int) -> None:
    """``dispatcher.run`` until ``total`` rows are no longer queued or sending."""

    async def main() -> None:
        stop, wake = asyncio.Event(), asyncio.Event()

        async def watch() -> None:
            while True:
                with transaction(db, read_only=True) as s:
                    done = s.scalar(
                        select(func.count()).where(Message.status.not_in(("queued", "sending")))
                    )
                if done == total:
                    stop.set()
                    return
                await asyncio.sleep(0.01)

        watcher = asyncio.ensure_future(watch())
        await asyncio.wait_for(dispatcher.run(stop, wake, idle_poll=0.01), 20)
        await watcher

    asyncio.run(main())


def test_run_records_in_groups_and_keeps_each_citizens_order(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(60):
        for part in ("intro", "question"):
            _queue(db, f"{part} {n}", address=f"+3247000{n:04d}")
    provider = _Provider(failing=frozenset({"+32470000007"}))
    settings = DispatchSettings(batch=25, concurrency=8, record_group=10)
    dispatcher = _Counting(db, {"sms": provider}, clock, settings, random.Random(7))
    _run_until_sent(dispatcher, db, 118)  # all but citizen 7's, queued for a retry
    rows = _rows(db)
    # Each citizen's question left after their intro had been answered and recorded.
    for n in range(60):
        address = f"+3247000{n:04d}"
        mine = [text for to, text in provider.calls if to == address]
        assert mine[0] == f"intro {n}"
    assert rows["intro 7"].status == "queued"
    # The failed intro's question was not tried in that round, and waits behind it.
    assert (rows["question 7"].status, rows["question 7"].attempts) == ("queued", 0)
    assert rows["question 7"].next_attempt_at > rows["intro 7"].next_attempt_at  # type: ignore[operator]
    assert {r.status for t, r in rows.items() if not t.endswith(" 7")} == {"sent"}
    # Far fewer transactions than messages, none larger than needed.
    assert len(dispatcher.records) < 60
    assert sum(dispatcher.records) == 120


def test_sends_wait_while_too_many_outcomes_wait_for_the_database(
    db: sessionmaker[Session],
) -> None:
    clock = Clock()
    for n in range(40):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    unrecorded: list[int] = []

    class Slow(Dispatcher):
        def record(self, outcomes: list[Outcome]) -> None:
            time.sleep(0.05)  # a database that lags
            super().record(outcomes)

    provider = _Provider()
    settings = DispatchSettings(concurrency=8, record_group=5)
    dispatcher = Slow(db, {"sms": provider}, clock, settings, random.Random(7))
    original = _Provider.__call__

    async def counting(self: _Provider, job: Job) -> SendReceipt:
        with transaction(db, read_only=True) as s:
            sent = s.scalar(select(func.count()).where(Message.status == "sent")) or 0
        unrecorded.append(len(self.calls) - sent)
        return await original(self, job)

    provider.__class__ = type("Counting", (_Provider,), {"__call__": counting})
    _run_until_sent(dispatcher, db, 40)
    # At most twice record_group finished and unrecorded, plus what was in flight. (On
    # SQLite the records run on the event loop, so the sends wait for them anyway; on
    # PostgreSQL they run beside the sends, and the limit is what holds them back.)
    assert max(unrecorded) <= 2 * settings.record_group + settings.concurrency


def test_a_group_the_database_refuses_is_recorded_citizen_by_citizen(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.delivery import pipeline as dispatch_pipeline

    monkeypatch.setattr(dispatch_pipeline.Pipeline, "RETRIES", (0.0,))
    clock = Clock()
    for n in range(6):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")

    async def same_id_twice(job: Job) -> SendReceipt:
        # m0 and m1 get the same provider id: the (direction, channel, provider_id) unique
        # constraint refuses any transaction holding both.
        return SendReceipt("SM-dup" if job.text in ("m0", "m1") else f"SM{job.id}")

    settings = DispatchSettings(record_group=100, record_interval=timedelta(seconds=1))
    dispatcher = Dispatcher(db, {"sms": same_id_twice}, clock, settings, random.Random(7))
    assert asyncio.run(dispatcher.run_once()) == 6
    rows = _rows(db)
    assert {rows[f"m{n}"].status for n in range(2, 6)} == {"sent"}
    # One of the pair is recorded; the other is left to its lease, as after a crash.
    assert sorted(rows[m].status for m in ("m0", "m1")) == ["sending", "sent"]


def test_on_stop_what_is_claimed_is_still_sent_and_recorded(db: sessionmaker[Session]) -> None:
    clock = Clock()
    for n in range(30):
        _queue(db, f"m{n}", address=f"+3247000{n:04d}")
    provider = _Provider()

    async def main() -> None:
        stop, wake = asyncio.Event(), asyncio.Event()
        dispatcher = Dispatcher(
            db, {"sms": provider}, clock, DispatchSettings(concurrency=4), random.Random(7)
        )
        task = asyncio.ensure_future(dispatcher.run(stop, wake))
        while not provider.calls:
            await asyncio.sleep(0.001)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    rows = _rows(db)
    assert len(provider.calls) == 30  # one claim took them all
    assert {r.status for r in rows.values()} == {"sent"}


def test_on_sqlite_a_claim_reads_due_rows_in_order_without_sorting_them(tmp_path: Path) -> None:
    # SQLite's planner, without statistics, used to take a range over every due row and
    # sort them all for each claim of a hundred (about 5 ms with 10,000 due).
    url = f"sqlite:///{tmp_path / 'voxpop.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for status in ("queued", "sending"):
                sql = str(CLAIM[status, False].compile(engine))
                plan = " / ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + sql,
                        ("out", "sms", status, "2026-11-27 00:00:00", 100, 0)
                        if status == "queued"
                        else ("out", "sms", status, "2026-11-27", "2026-11-27", 100, 0),
                    )
                )
                assert "ix_messages_claim" in plan
                assert "TEMP B-TREE" not in plan
    finally:
        engine.dispose()
