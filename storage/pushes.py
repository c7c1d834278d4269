"""Repository functions for pushes: the audience (who a push reaches, and why the others are
left out), planning recipients in bulk, what is due, and a push's counts. None of them
commits; the caller owns the transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, case, func, null, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.contacts import attribute_equals, has_tag
from storage.models import (
    Address,
    AnswerRow,
    Contact,
    Message,
    PushRecipient,
    PushRow,
    SessionRow,
    SurveyRow,
)
from storage.repo import SIMULATOR_SPACE

#: Rows per INSERT when planning: large enough to be fast, small enough for any driver.
PLAN_BATCH = 2000


@dataclass(frozen=True)
class AudienceQuery:
    """Who a push reaches, as plain values (the service fills it in from the push)."""

    survey: str
    #: The push's channels, in order of preference.
    channels: Sequence[str]
    #: The consultation's languages, and the one a contact without a choice (or with a
    #: language it lacks) gets.
    survey_languages: Sequence[str]
    default_language: str
    languages: Sequence[str] = ()
    where: Mapping[str, Sequence[str]] = field(default_factory=dict)
    tags: Sequence[str] = ()
    not_answered: Sequence[str] = ()
    took_part: Sequence[str] = ()
    #: An address needs a consent record (an invitation); an outcome goes without.
    consent: bool = True
    #: Leave out who completed the consultation already (an invitation).
    skip_completed: bool = True


class AudienceRow(NamedTuple):
    """One contact of a push's audience: the address chosen, or why they are left out."""

    contact_id: int
    #: The language the consultation speaks to them.
    language: str
    timezone: str | None
    channel: str | None
    value: str | None
    #: ``None`` when reached; else one of :data:`LEFT_OUT`.
    left_out: str | None


#: Why a contact of the audience gets no invitation, in the order staff read them.
LEFT_OUT = (
    "no address on the chosen channels",
    "opted out",
    "invalid number",
    "no consent",
    "completed it already",
)
#: Of those reached, who is in a conversation now: ``answering`` this consultation (counted as
#: invited, sent nothing new), ``busy`` in another (invited when it ends).
BUSY = ("answering", "busy")


def _audience_select(s: Session, q: AudienceQuery, *, busy: bool = False) -> Select[Any]:
    """The one rule of who a push reaches, as one statement: a row per contact in the
    audience (not forgotten, not a simulator's test phone) with the address it is reached on
    (the first channel of ``q.channels`` with an address that has consent, is not opted out
    and is not invalid) or why it is left out. The database does the work: the preview
    counts it with GROUP BY, and planning streams it, so both read the same rule."""
    channels = list(q.channels)
    default = q.default_language
    reach = and_(
        true() if not q.consent else Address.consent_at.is_not(None),
        Address.opted_out_at.is_(None),
        Address.invalid_at.is_(None),
    )
    reach_flag = case((reach, 1), else_=0)
    priority = case({c: i for i, c in enumerate(channels)}, value=Address.channel, else_=99)
    by_contact = Address.contact_id
    ranked = (
        select(
            Address.contact_id.label("contact_id"),
            Address.channel.label("channel"),
            Address.value.label("value"),
            reach_flag.label("reach"),
            func.max(case((Address.opted_out_at.is_not(None), 1), else_=0))
            .over(partition_by=by_contact)
            .label("opted_out"),
            func.max(case((Address.invalid_at.is_not(None), 1), else_=0))
            .over(partition_by=by_contact)
            .label("invalid"),
            func.row_number()
            .over(partition_by=by_contact, order_by=(reach_flag.desc(), priority, Address.id))
            .label("rank"),
        )
        .where(
            Address.channel.in_(channels),
            Address.value.not_like(SIMULATOR_SPACE + "%"),
        )
        .subquery("ranked")
    )
    chosen = ranked
    raw = func.coalesce(Contact.language, default)
    language = case(
        (Contact.language.in_(list(q.survey_languages)), Contact.language), else_=default
    )
    completed = _sessions_of(q.survey, completed=True) if q.skip_completed else None
    reached = chosen.c.reach == 1
    left_out = case(
        (chosen.c.contact_id.is_(None), LEFT_OUT[0]),
        (and_(~reached, chosen.c.opted_out == 1), LEFT_OUT[1]),
        (and_(~reached, chosen.c.invalid == 1), LEFT_OUT[2]),
        (~reached, LEFT_OUT[3]),
        *([(Contact.id.in_(completed), LEFT_OUT[4])] if completed is not None else []),
        else_=null(),
    )
    columns: list[Any] = [
        Contact.id,
        language.label("language"),
        Contact.timezone,
        case((reached, chosen.c.channel), else_=null()).label("channel"),
        case((reached, chosen.c.value), else_=null()).label("value"),
        left_out.label("left_out"),
    ]
    if busy:
        mine = (
            select(SessionRow.contact_id)
            .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
            .where(SessionRow.status == "active", SurveyRow.slug == q.survey)
        )
        active = select(SessionRow.contact_id).where(SessionRow.status == "active")
        columns.append(
            case(
                (Contact.id.in_(mine), BUSY[0]), (Contact.id.in_(active), BUSY[1]), else_=null()
            ).label("busy")
        )
    ours = select(Address.id).where(
        Address.contact_id == Contact.id, Address.value.not_like(SIMULATOR_SPACE + "%")
    )
    conditions: list[ColumnElement[bool]] = [Contact.forgotten_at.is_(None), ours.exists()]
    if q.languages:
        conditions.append(raw.in_(list(q.languages)))
    for name, values in q.where.items():
        conditions.append(or_(*(attribute_equals(s, name, v) for v in values)))
    conditions += [has_tag(s, tag) for tag in q.tags]
    for slug in q.not_answered:
        conditions.append(Contact.id.not_in(_sessions_of(slug, completed=True)))
    for slug in q.took_part:
        conditions.append(Contact.id.in_(_sessions_of(slug, completed=False)))
    return (
        select(*columns)
        .outerjoin(chosen, and_(chosen.c.contact_id == Contact.id, chosen.c.rank == 1))
        .where(*conditions)
    )


def _sessions_of(slug: str, *, completed: bool) -> Select[Any]:
    """The contacts with a citizen's (not simulated) session of any version of ``slug`` that
    is completed (``completed``) or has at least one answer."""
    stmt = (
        select(SessionRow.contact_id)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(
            SurveyRow.slug == slug,
            SessionRow.simulated.is_(False),
            SessionRow.contact_id.is_not(None),
        )
    )
    if completed:
        return stmt.where(SessionRow.status == "completed")
    answered = select(AnswerRow.id).where(AnswerRow.session_id == SessionRow.id).exists()
    return stmt.where(answered)


def audience(s: Session, q: AudienceQuery) -> Iterator[AudienceRow]:
    """The contacts a push reaches, by contact id, streamed (memory stays flat)."""
    stmt = _audience_select(s, q).order_by(Contact.id).execution_options(yield_per=5000)
    for row in s.execute(stmt):
        if row.left_out is None:
            yield AudienceRow(*row)


class AudienceCount(NamedTuple):
    channel: str | None
    language: str
    left_out: str | None
    busy: str | None
    contacts: int


def audience_counts(s: Session, q: AudienceQuery) -> list[AudienceCount]:
    """The audience counted in the database: contacts per channel, language, reason left out
    and conversation in progress."""
    inner = _audience_select(s, q, busy=True).subquery("audience")
    stmt = select(
        inner.c.channel,
        inner.c.language,
        inner.c.left_out,
        inner.c.busy,
        func.count(),
    ).group_by(inner.c.channel, inner.c.language, inner.c.left_out, inner.c.busy)
    return [AudienceCount(*row) for row in s.execute(stmt)]


def insert_recipients(s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plan recipients in bulk; one already planned for the push is left as it is."""
    if not rows:
        return
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(PushRecipient).on_conflict_do_nothing(index_elements=["push_id", "contact_id"])
    for start in range(0, len(rows), PLAN_BATCH):
        s.execute(stmt, list(rows[start : start + PLAN_BATCH]))


def due_recipients(s: Session, now: datetime, limit: int) -> list[int]:
    """Planned recipients whose invitation is due, of pushes that are sending, soonest first."""
    stmt = (
        select(PushRecipient.id)
        .join(PushRow, PushRow.id == PushRecipient.push_id)
        .where(
            PushRecipient.status == "planned",
            PushRecipient.due_at <= now,
            PushRow.status == "sending",
        )
        .order_by(PushRecipient.due_at, PushRecipient.id)
        .limit(limit)
    )
    return list(s.scalars(stmt))


def due_reminders(s: Session, now: datetime, limit: int) -> list[int]:
    stmt = (
        select(PushRecipient.id)
        .where(PushRecipient.status == "invited", PushRecipient.next_reminder_at <= now)
        .order_by(PushRecipient.next_reminder_at, PushRecipient.id)
        .limit(limit)
    )
    return list(s.scalars(stmt))


class PushCounts(NamedTuple):
    """How one push is doing, overall or for one channel or variant."""

    planned: int
    invited: int
    skipped: int
    waiting: int
    sent: int
    delivered: int
    failed: int
    started: int
    completed: int
    #: Reminders sent, in all.
    reminders: int = 0


def push_counts(s: Session, push_id: int, *, by: str | None = None) -> dict[str, PushCounts]:
    """Counts per channel (``by="channel"``), per variant (``by="variant"``), or for all
    (``""``). ``sent``/``delivered``/``failed`` count recipients by their invitation's first
    message; ``started`` have answered a question, ``completed`` finished."""
    group = {
        None: None,
        "channel": PushRecipient.channel,
        "variant": PushRecipient.variant,
    }[by]
    recipients: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    columns: list[Any] = [
        PushRecipient.status,
        func.count(PushRecipient.id),
        func.coalesce(func.sum(PushRecipient.reminders_sent), 0),
    ]
    stmt = select(*columns, *([group] if group is not None else [])).where(
        PushRecipient.push_id == push_id
    )
    stmt = stmt.group_by(PushRecipient.status, *([group] if group is not None else []))
    for row in s.execute(stmt):
        status, n = row[0], int(row[1])
        key = _key(row, group is not None)
        slot = {"invited": 1, "skipped": 2, "cancelled": 2, "planned": 3}[status]
        recipients[key][0] += n
        recipients[key][slot] += n
        recipients[key][4] += int(row[2])

    # A recipient's invitation is its first message; reminders come later.
    first = (
        select(func.min(Message.id))
        .join(PushRecipient, PushRecipient.id == Message.recipient_id)
        .where(PushRecipient.push_id == push_id, Message.direction == "out")
        .group_by(Message.recipient_id)
    )
    delivery: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    stmt2 = (
        select(Message.status, func.count(Message.id), *([group] if group is not None else []))
        .join(PushRecipient, PushRecipient.id == Message.recipient_id)
        .where(Message.id.in_(first))
        .group_by(Message.status, *([group] if group is not None else []))
    )
    for row in s.execute(stmt2):
        status, n = row[0], int(row[1])
        key = _key(row, group is not None)
        if status in ("sent", "delivered", "read", "undelivered", "failed", "unknown"):
            delivery[key][0] += n
        if status in ("delivered", "read"):
            delivery[key][1] += n
        if status in ("failed", "undelivered"):
            delivery[key][2] += n

    answered = select(AnswerRow.id).where(AnswerRow.session_id == SessionRow.id).exists()
    outcome: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    stmt3 = (
        select(
            func.count(SessionRow.id).filter(answered),
            func.count(SessionRow.id).filter(SessionRow.status == "completed"),
            *([group] if group is not None else []),
        )
        .join(PushRecipient, PushRecipient.session_id == SessionRow.id)
        .where(PushRecipient.push_id == push_id)
    )
    if group is not None:
        stmt3 = stmt3.group_by(group)
    for row in s.execute(stmt3):
        key = _key(row, group is not None)
        outcome[key][0] += int(row[0] or 0)
        outcome[key][1] += int(row[1] or 0)

    keys = sorted(set(recipients) | set(delivery) | set(outcome))
    return {
        key: PushCounts(
            planned=recipients[key][0],
            invited=recipients[key][1],
            skipped=recipients[key][2],
            waiting=recipients[key][3],
            sent=delivery[key][0],
            delivered=delivery[key][1],
            failed=delivery[key][2],
            started=outcome[key][0],
            completed=outcome[key][1],
            reminders=recipients[key][4],
        )
        for key in keys
    }


def reasons(s: Session, push_id: int) -> dict[str, int]:
    """Why recipients were skipped or cancelled, or why the waiting ones wait."""
    stmt = (
        select(PushRecipient.reason, func.count(PushRecipient.id))
        .where(
            PushRecipient.push_id == push_id,
            PushRecipient.reason.is_not(None),
            PushRecipient.status != "invited",
        )
        .group_by(PushRecipient.reason)
    )
    return {str(reason): int(n) for reason, n in s.execute(stmt)}


def _key(row: Any, grouped: bool) -> str:
    """The group a counting row belongs to: its last column when grouped, else ``""``."""
    return str(row[-1] or "") if grouped else ""
