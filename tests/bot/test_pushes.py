"""Pushes on both engines, with a clock the test moves: audiences and consent, planning,
quiet hours across timezones and DST, one conversation at a time, reminders, expiry,
closing, misfires, the double fire, cancelling, variants."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.pushes.audience import Audience
from bot.pushes.service import Pushes, PushSpec, Reminders, Variant
from bot.service import Service
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import AnswerRow, Contact, Message, PushRecipient, PushRow, SessionRow
from tests.bot.conftest import FIXTURES, T0, Clock, push_config

_ids = itertools.count(1)


def add_contact(
    db: sessionmaker[Session],
    value: str,
    *,
    channel: str = "sms",
    consent: bool = True,
    language: str | None = "en",
    timezone: str | None = None,
    attributes: dict[str, str] | None = None,
    tags: Sequence[str] = (),
    opted_out: bool = False,
) -> int:
    with transaction(db) as s:
        contact = Contact(
            language=language,
            timezone=timezone,
            attributes=attributes or {},
            tags=list(tags),
            created_at=T0,
            updated_at=T0,
        )
        s.add(contact)
        s.flush()
        s.add(
            AddressRow(
                contact_id=contact.id,
                channel=channel,
                value=value,
                created_at=T0,
                consent_at=T0 if consent else None,
                consent_source="paper form" if consent else None,
                opted_out_at=T0 if opted_out else None,
            )
        )
        return contact.id


def recipients(db: sessionmaker[Session]) -> list[PushRecipient]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(PushRecipient).order_by(PushRecipient.id)))


def outbox(db: sessionmaker[Session], address: str | None = None) -> list[Message]:
    with transaction(db, read_only=True) as s:
        stmt = select(Message).where(Message.direction == "out").order_by(Message.id)
        if address is not None:
            stmt = stmt.where(Message.address == address)
        return list(s.scalars(stmt))


def push_row(db: sessionmaker[Session], push_id: int) -> PushRow:
    with transaction(db, read_only=True) as s:
        row = s.get(PushRow, push_id)
        assert row is not None
        return row


def reply(service: Service, clock: Clock, value: str, text: str) -> list[str]:
    msg = InboundMessage(Address("sms", value), text, f"in-{next(_ids)}", clock.now)
    return [o.text for o in service.receive(msg).outgoing]


def spec(**changes: Any) -> PushSpec:
    return replace(PushSpec(survey="every-type", at=T0), **changes)


# --- audiences and consent --------------------------------------------------------------------


def test_only_consented_reachable_contacts_in_the_audience_are_planned(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    north = add_contact(db, "+32470000001", attributes={"district": "north"})
    add_contact(db, "+32470000002", attributes={"district": "south"})
    add_contact(db, "+32470000003", attributes={"district": "north"}, consent=False)
    add_contact(db, "+32470000004", attributes={"district": "north"}, opted_out=True)
    tagged = add_contact(db, "4242", channel="telegram", attributes={"district": "east"})
    audience = Audience(where={"district": ("north", "east")})
    preview = pushes.preview(spec(audience=audience))
    assert preview.recipients == 2
    assert preview.left_out == {"opted out": 1, "no consent": 1}
    assert preview.by_channel == {"sms": 1, "telegram": 1}
    push_id = pushes.create(spec(audience=audience))
    assert pushes.fire(push_id).planned == 2
    assert {r.contact_id for r in recipients(db)} == {north, tagged}


def test_languages_tags_and_earlier_consultations_narrow_the_audience(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    dutch = add_contact(db, "+32470000001", language="nl", tags=("panel",))
    add_contact(db, "+32470000002", language="en", tags=("panel",))
    answered = add_contact(db, "+32470000003", language="nl", tags=("panel",))
    reply(service, clock, "+32470000003", "OTHER")
    reply(service, clock, "+32470000003", "yes")  # answered "other" completely
    audience = Audience(languages=("nl",), tags=("panel",), not_answered=("other",))
    assert pushes.preview(spec(audience=audience)).recipients == 1
    took_part = Audience(took_part=("other",))
    push_id = pushes.create(spec(audience=took_part))
    pushes.fire(push_id)
    assert [r.contact_id for r in recipients(db)] == [answered]
    assert dutch != answered


def test_someone_who_completed_the_consultation_is_not_invited_again(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    reply(service, clock, "+32470000002", "OTHER")
    reply(service, clock, "+32470000002", "yes")
    preview = pushes.preview(spec(survey="other"))
    assert (preview.recipients, preview.left_out) == (1, {"completed it already": 1})


def test_the_preview_prices_the_sms(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    for n in range(3):
        add_contact(db, f"+3247000000{n}")
    priced = Pushes(db, service, push_config(sms_price_per_segment=0.05), clock=clock)
    preview = priced.preview(spec())
    # every-type: the intro and the first question, one segment each, for three people.
    assert (preview.sms_segments, preview.cost, preview.currency) == (6, 0.3, "EUR")


# --- planning: spreading, quiet hours, misfires, double fires ---------------------------------


def test_a_push_is_spread_at_its_rate(db: sessionmaker[Session], pushes: Pushes) -> None:
    for n in range(5):
        add_contact(db, f"+3247000000{n}")
    push_id = pushes.create(spec(rate_per_second=2.0))
    pushes.fire(push_id)
    assert [r.due_at - T0 for r in recipients(db)] == [timedelta(seconds=n / 2) for n in range(5)]


@pytest.mark.parametrize(
    ("at", "zone", "due"),
    [
        # 21:30 in Brussels: the morning, 09:00 CET = 08:00 UTC.
        (datetime(2026, 12, 1, 20, 30, tzinfo=UTC), "Europe/Brussels", "2026-12-02 08:00"),
        # The same moment is 15:30 in New York: now.
        (datetime(2026, 12, 1, 20, 30, tzinfo=UTC), "America/New_York", "2026-12-01 20:30"),
        # And 05:30 the next day in Tokyo: 09:00 JST.
        (datetime(2026, 12, 1, 20, 30, tzinfo=UTC), "Asia/Tokyo", "2026-12-02 00:00"),
        # The night the clocks go forward in Brussels: 09:00 is already summer time (CEST).
        (datetime(2026, 3, 28, 21, 30, tzinfo=UTC), "Europe/Brussels", "2026-03-29 07:00"),
        # The night they go back: 09:00 is winter time again (CET).
        (datetime(2026, 10, 24, 21, 30, tzinfo=UTC), "Europe/Brussels", "2026-10-25 08:00"),
        # Just after midnight local time, still quiet until 09:00 the same day.
        (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "Europe/Brussels", "2026-12-02 08:00"),
    ],
)
def test_quiet_hours_are_the_contacts_own_night(
    db: sessionmaker[Session],
    service: Service,
    clock: Clock,
    at: datetime,
    zone: str,
    due: str,
) -> None:
    clock.now = at
    add_contact(db, "+32470000001", timezone=zone)
    pushes = Pushes(db, service, push_config(quiet_hours="21:00-09:00"), clock=clock)
    push_id = pushes.create(spec(at=at))
    pushes.fire(push_id)
    (planned,) = recipients(db)
    assert planned.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") == due
    # Staff see why it waits.
    waiting = planned.due_at > at
    assert pushes.report(push_id).reasons == ({"quiet hours": 1} if waiting else {})


def test_a_contact_without_a_timezone_has_the_push_s(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    clock.now = at = datetime(2026, 12, 1, 20, 30, tzinfo=UTC)
    add_contact(db, "+32470000001", timezone=None)
    pushes = Pushes(db, service, push_config(quiet_hours="21:00-09:00"), clock=clock)
    pushes.fire(pushes.create(spec(at=at, timezone="America/New_York")))
    assert recipients(db)[0].due_at == at


def test_firing_twice_plans_nobody_twice(db: sessionmaker[Session], pushes: Pushes) -> None:
    for n in range(4):
        add_contact(db, f"+3247000000{n}")
    push_id = pushes.create(spec())
    first, second = pushes.fire(push_id), pushes.fire(push_id)
    assert (first.outcome, first.planned) == ("fired", 4)
    assert (second.outcome, second.planned) == ("already fired", 4)
    assert len(recipients(db)) == 4


def test_two_schedulers_firing_at_once_plan_once(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    for n in range(30):
        add_contact(db, f"+324700000{n:02d}")
    push_id = Pushes(db, service, push_config(), clock=clock).create(spec())
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def fire() -> None:
        mine = Pushes(db, service, push_config(), clock=clock)
        barrier.wait()
        outcomes.append(mine.fire(push_id).outcome)

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already fired", "fired"]
    assert len(recipients(db)) == 30


def test_a_replanned_push_keeps_what_was_planned(db: sessionmaker[Session], pushes: Pushes) -> None:
    # A restart mid-fire: some recipients exist already; firing again adds only the others.
    first = add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    push_id = pushes.create(spec())
    with transaction(pushes._sessions) as s:  # the state a crash leaves
        s.add(
            PushRecipient(
                push_id=push_id,
                contact_id=first,
                channel="sms",
                address="+32470000001",
                language="en",
                status="invited",
                due_at=T0,
                reminders_sent=0,
            )
        )
    pushes.fire(push_id)
    assert [r.status for r in recipients(db)] == ["invited", "planned"]


def test_a_push_late_after_downtime_goes_within_the_grace_and_is_missed_after(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    pushes = Pushes(db, service, push_config(misfire_grace_hours=6), clock=clock)
    late, too_late = pushes.create(spec()), pushes.create(spec())
    clock.now = T0 + timedelta(hours=5)
    result = pushes.fire(late)
    assert result.outcome == "fired"
    assert recipients(db)[0].due_at == clock.now  # spread from now, not in the past
    clock.now = T0 + timedelta(hours=7)
    assert pushes.fire(too_late).outcome == "missed"
    row = push_row(db, too_late)
    assert row.status == "missed"
    assert "more than 6 h late" in (row.note or "")


def test_a_push_is_not_fired_before_its_time(db: sessionmaker[Session], pushes: Pushes) -> None:
    push_id = pushes.create(spec(at=T0 + timedelta(minutes=1)))
    assert pushes.fire(push_id).outcome == "not yet"
    assert push_row(db, push_id).status == "scheduled"


# --- the tick: invitations ----------------------------------------------------------------


def test_due_invitations_begin_the_consultation_and_queue_its_first_messages(
    db: sessionmaker[Session], pushes: Pushes, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    push_id = pushes.create(spec(rate_per_second=1.0))
    pushes.fire(push_id)
    assert pushes.tick().invited == 1  # the second is due a second later
    clock.now += timedelta(seconds=1)
    assert pushes.tick().invited == 1
    messages = outbox(db, "+32470000001")
    assert [(m.kind, m.text) for m in messages] == [
        ("push", "Seven short questions."),
        ("push", "Favourite colour?"),
    ]
    assert messages[0].payload["invitation"]["survey"] == "every-type"
    assert all(m.recipient_id is not None for m in messages)
    assert {r.status for r in recipients(db)} == {"invited"}
    assert push_row(db, push_id).status == "done"


def test_someone_in_another_consultation_is_invited_when_it_ends(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    reply(service, clock, "+32470000001", "OTHER")  # "other" has one question: in progress
    pushes.fire(pushes.create(spec()))
    assert pushes.tick().postponed == 1
    assert recipients(db)[0].reason == "in another consultation"
    reply(service, clock, "+32470000001", "yes")  # done with it
    clock.now += timedelta(minutes=16)
    assert pushes.tick().invited == 1
    assert outbox(db, "+32470000001")[-1].text == "Favourite colour?"


def test_someone_who_opted_out_after_planning_is_skipped(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    pushes.fire(pushes.create(spec()))
    reply(service, clock, "+32470000001", "STOP")
    assert pushes.tick().skipped == 1
    assert (recipients(db)[0].status, recipients(db)[0].reason) == ("skipped", "opted out")
    assert [m.text for m in outbox(db)] == [
        "You will get no more messages from us. Send START to join again."
    ]


def test_an_invitation_due_at_night_after_a_wait_waits_for_the_morning(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 1, 19, 50, tzinfo=UTC)  # 20:50 in Brussels
    add_contact(db, "+32470000001", timezone="Europe/Brussels")
    reply(service, clock, "+32470000001", "OTHER")
    pushes = Pushes(db, service, push_config(quiet_hours="21:00-09:00"), clock=clock)
    pushes.fire(pushes.create(spec(at=clock.now)))
    pushes.tick()  # busy until 21:05
    reply(service, clock, "+32470000001", "yes")
    clock.now += timedelta(minutes=16)  # 21:06: quiet hours
    report = pushes.tick()
    assert (report.invited, report.postponed) == (0, 1)
    assert recipients(db)[0].due_at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


# --- reminders, expiry, closing -------------------------------------------------------------


def test_reminders_re_invite_the_silent_and_nudge_the_halfway(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    done = add_contact(db, "+32470000003")
    pushes = Pushes(db, service, push_config(), clock=clock)
    reminders = Reminders(after=timedelta(hours=24), most=2)
    push_id = pushes.create(spec(survey="other", reminders=reminders))
    pushes.fire(push_id)
    clock.now += timedelta(seconds=1)  # all three are due
    assert pushes.tick().invited == 3
    assert push_row(db, push_id).status == "sending"  # reminders are still to come
    reply(service, clock, "+32470000003", "yes")  # completes "other" at once
    clock.now += timedelta(hours=24)
    assert pushes.tick().reminded == 2
    assert [m.text for m in outbox(db, "+32470000001")][-2:] == [
        "A reminder: Other is waiting for your answers.",
        "Is it OK?",
    ]
    clock.now += timedelta(hours=24)
    assert pushes.tick().reminded == 2
    clock.now += timedelta(hours=24)
    assert pushes.tick().reminded == 0  # at most two
    assert push_row(db, push_id).status == "done"
    assert pushes.report(push_id).total.reminders == 4
    assert {r.contact_id: r.reminders_sent for r in recipients(db)}[done] == 0
    assert [r.reminders_sent for r in recipients(db)] == [2, 2, 0]


def test_a_halfway_contact_is_nudged_with_the_question_they_stopped_at(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    pushes.fire(pushes.create(spec(reminders=Reminders(timedelta(hours=12)))))
    pushes.tick()
    reply(service, clock, "+32470000001", "red")
    clock.now += timedelta(hours=12)
    assert pushes.tick().reminded == 1
    assert [m.text for m in outbox(db, "+32470000001")][-2:] == [
        "You are halfway through Every type. Reply to go on.",
        "How do you travel? (one or more, e.g. 1,4)",
    ]


@pytest.mark.parametrize(
    ("answered_after", "nudged_after"),
    [
        (timedelta(0), timedelta(hours=12)),  # answered at once: 12 h after the invitation
        (timedelta(hours=11), timedelta(hours=23)),  # 12 h after their answer, not 1 h
        (timedelta(hours=11, minutes=59), timedelta(hours=23, minutes=59)),
    ],
)
def test_the_wait_for_a_nudge_runs_from_the_last_answer(
    db: sessionmaker[Session],
    pushes: Pushes,
    service: Service,
    clock: Clock,
    answered_after: timedelta,
    nudged_after: timedelta,
) -> None:
    """Someone who answered a moment ago is not told to go on: the README's push tour."""
    add_contact(db, "+32470000001")
    invited = clock.now
    pushes.fire(pushes.create(spec(reminders=Reminders(timedelta(hours=12)))))
    pushes.tick()
    clock.now = invited + answered_after
    reply(service, clock, "+32470000001", "red")
    clock.now = invited + nudged_after - timedelta(seconds=1)
    assert pushes.tick().reminded == 0
    clock.now = invited + nudged_after
    assert pushes.tick().reminded == 1
    assert outbox(db, "+32470000001")[-2].text == (
        "You are halfway through Every type. Reply to go on."
    )


def test_no_reminder_after_stop(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    pushes.fire(pushes.create(spec(reminders=Reminders(timedelta(hours=12)))))
    pushes.tick()
    reply(service, clock, "+32470000001", "STOP")
    clock.now += timedelta(hours=12)
    assert pushes.tick().reminded == 0
    assert outbox(db)[-1].text.startswith("You will get no more messages")


def test_a_reminder_due_at_night_waits_for_the_morning(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)  # 09:30 in Brussels
    add_contact(db, "+32470000001", timezone="Europe/Brussels")
    pushes = Pushes(db, service, push_config(quiet_hours="21:00-09:00"), clock=clock)
    pushes.fire(pushes.create(spec(at=clock.now, reminders=Reminders(timedelta(hours=13)))))
    pushes.tick()
    clock.now += timedelta(hours=13)  # 22:30 in Brussels
    assert pushes.tick().reminded == 0
    assert recipients(db)[0].next_reminder_at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_an_idle_consultation_expires_as_abandoned_with_its_answers(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    reply(service, clock, "+32470000001", "EVERY")
    reply(service, clock, "+32470000001", "red")
    clock.now += timedelta(hours=71)
    assert pushes.tick().expired == 0
    clock.now += timedelta(hours=2)
    assert pushes.tick().expired == 1
    with transaction(db, read_only=True) as s:
        (session,) = s.scalars(select(SessionRow))
        assert session.status == "abandoned"
        assert [a.question_id for a in s.scalars(select(AnswerRow))] == ["colour"]


def test_a_closed_consultation_invites_nobody_more_and_late_replies_hear_it(
    db: sessionmaker[Session], service: Service, clock: Clock, tmp_path: Path
) -> None:
    closes = T0 + timedelta(hours=1)
    text = (
        (FIXTURES / "other.toml")
        .read_text()
        .replace('keywords = ["OTHER"]', f'keywords = ["OTHER"]\ncloses_at = {closes.isoformat()}')
    )
    service.load_surveys([("other.toml", text)])
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    pushes = Pushes(db, service, push_config(), clock=clock)
    push_id = pushes.create(spec(survey="other", rate_per_second=1 / 7200))  # 2 h apart
    pushes.fire(push_id)
    pushes.tick()
    clock.now = closes
    pushes.tick()
    assert [(r.status, r.reason) for r in recipients(db)] == [
        ("invited", None),
        ("skipped", "closed"),
    ]
    assert push_row(db, push_id).status == "done"
    assert reply(service, clock, "+32470000001", "yes") == [
        "Sorry, this consultation is closed. Thank you for your interest."
    ]


def test_closing_a_survey_reaches_every_process_and_every_version(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    scheduler_side = Service(db, clock=clock)  # another process: its own caches
    pushes = Pushes(db, scheduler_side, push_config(), clock=clock)
    pushes.fire(pushes.create(spec(rate_per_second=1 / 3600)))  # an hour apart
    pushes.tick()
    reply(service, clock, "+32470000001", "red")  # answering, on this process
    service.close_survey("every-type", clock.now)
    clock.now += timedelta(hours=1)
    pushes.tick()
    assert [(r.status, r.reason) for r in recipients(db)] == [
        ("invited", None),
        ("skipped", "closed"),
    ]
    # The conversation in progress ended with the consultation; its answer is kept.
    with transaction(db, read_only=True) as s:
        assert [r.status for r in s.scalars(select(SessionRow))] == ["abandoned"]
        assert [a.question_id for a in s.scalars(select(AnswerRow))] == ["colour"]
    assert reply(service, clock, "+32470000001", "bus") == [
        "Sorry, this consultation is closed. Thank you for your interest."
    ]
    assert reply(service, clock, "+32470000009", "EVERY") == [
        "Sorry, this consultation is closed. Thank you for your interest."
    ]


# --- cancelling and variants ----------------------------------------------------------------


def test_cancelling_stops_what_was_not_sent(
    db: sessionmaker[Session], pushes: Pushes, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    push_id = pushes.create(spec(rate_per_second=1 / 60))
    pushes.fire(push_id)
    pushes.tick()  # the first is invited; its messages wait in the outbox
    assert pushes.cancel(push_id) == 1
    assert [r.status for r in recipients(db)] == ["invited", "cancelled"]
    assert {(m.status, m.error) for m in outbox(db)} == {("failed", "push cancelled")}
    clock.now += timedelta(minutes=2)
    assert pushes.tick().invited == 0
    assert push_row(db, push_id).status == "cancelled"


def test_variants_are_assigned_reproducibly_and_replace_the_intro(
    db: sessionmaker[Session], pushes: Pushes, clock: Clock
) -> None:
    for n in range(40):
        add_contact(db, f"+324700000{n:02d}")
    variants = (
        Variant("A", {"*": "The city asks: 7 questions."}),
        Variant("B", {"*": "Help your street: 7 questions."}),
    )
    push_id = pushes.create(spec(variants=variants))
    pushes.fire(push_id)
    planned = {r.contact_id: r.variant for r in recipients(db)}
    assert set(planned.values()) == {"A", "B"}
    clock.now += timedelta(seconds=1)
    pushes.tick()
    for r in recipients(db):
        first = outbox(db, r.address)[0].text
        assert first == next(v.texts["*"] for v in variants if v.name == r.variant)
    report = pushes.report(push_id)
    assert sum(c.invited for c in report.by_variant.values()) == 40
    assert set(report.by_variant) == {"A", "B"}


def test_forget_leaves_no_number_in_a_push_plan(
    db: sessionmaker[Session], pushes: Pushes, service: Service, clock: Clock
) -> None:
    add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    pushes.fire(pushes.create(spec(rate_per_second=1 / 60)))
    pushes.tick()  # the first is invited, the second waits a minute
    for number in ("+32470000001", "+32470000002"):
        reply(service, clock, number, "FORGET")
        reply(service, clock, number, "YES")
    assert [(r.address, r.status, r.reason) for r in recipients(db)] == [
        (None, "invited", None),
        (None, "skipped", "forgotten"),
    ]
    clock.now += timedelta(minutes=2)
    assert pushes.tick().invited == 0
