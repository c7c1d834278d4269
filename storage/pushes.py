"""Repository functions for pushes: the audience (who a push reaches, and why the others are
left out), planning recipients in bulk, what is due, and a push's counts. None of them
commits; the caller owns the transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    case,
    func,
    literal,
    null,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

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
from storage.repo import SIMULATOR_SPACE, is_response

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


#: An address's rank for a contact, one number per address so that the database chooses with
#: one ``min()`` per contact: ``place * _PLACE + id`` for an address the push can use
#: (``place``, its channel's place in the push's preference: the oldest address on the first
#: channel wins; ids stay far below ``_PLACE``), else ``(_REASONS + k) * _PLACE`` for
#: ``LEFT_OUT[1 + k]`` (opted out, invalid, no consent: the first reason that any address
#: has wins, in that order). No address on the push's channels ranks NULL: ``LEFT_OUT[0]``.
_PLACE = 1_000_000_000_000
_REASONS = 100
#: ``left_out`` as the statement gives it: an index into :data:`LEFT_OUT`.
_COMPLETED = LEFT_OUT.index("completed it already")


def _audience_select(s: Session, q: AudienceQuery, *, preview: bool = False) -> Select[Any]:
    """The one rule of who a push reaches, as one statement: a row per contact in the
    audience (not forgotten, not a simulator's test phone) with the address it is reached on
    (the first channel of ``q.channels`` with an address that has consent, is not opted out
    and is not invalid; the oldest such address on it) or why it is left out (``left_out``,
    an index into :data:`LEFT_OUT`). The database does the work, in one pass over the
    contacts grouped with their addresses, ranking each address with one number
    (:data:`_PLACE`) so that a contact's choice is one ``min()``: the preview counts the rows
    with GROUP BY (``preview``: the chosen channel's place and who is in a conversation now,
    without the address itself) and planning streams them, so both read the same rule."""
    channels = list(q.channels)
    big = literal(_PLACE, BigInteger)
    place = case({c: i for i, c in enumerate(channels)}, value=Address.channel, else_=0)
    rank = case(
        (Address.opted_out_at.is_not(None), literal(_REASONS * _PLACE, BigInteger)),
        (Address.invalid_at.is_not(None), literal((_REASONS + 1) * _PLACE, BigInteger)),
        *(
            [(Address.consent_at.is_(None), literal((_REASONS + 2) * _PLACE, BigInteger))]
            if q.consent
            else []
        ),
        else_=place * big + Address.id,
    )
    raw = func.coalesce(Contact.language, q.default_language)
    conditions: list[ColumnElement[bool]] = [
        Contact.forgotten_at.is_(None),
        ~Address.value.startswith(SIMULATOR_SPACE, autoescape=True),
    ]
    if q.languages:
        conditions.append(raw.in_(list(q.languages)))
    for name, values in q.where.items():
        conditions.append(or_(*(attribute_equals(s, name, v) for v in values)))
    conditions += [has_tag(s, tag) for tag in q.tags]
    for slug in q.not_answered:
        conditions.append(Contact.id.not_in(participants(slug, completed=True)))
    for slug in q.took_part:
        conditions.append(Contact.id.in_(participants(slug, completed=False)))
    grouped = (
        select(
            Contact.id.label("contact_id"),
            Contact.language.label("language"),
            Contact.timezone.label("timezone"),
            func.min(case((Address.channel.in_(channels), rank), else_=null())).label("pick"),
        )
        # Every contact with an address of their own: simulator's test phones are no one's.
        .select_from(Contact)
        .join(Address, Address.contact_id == Contact.id)
        .where(*conditions)
        # By the primary key alone (the other columns depend on it): one comparison a row.
        .group_by(Contact.id)
        .subquery("grouped")
    )
    language = case(
        (grouped.c.language.in_(list(q.survey_languages)), grouped.c.language),
        else_=q.default_language,
    )
    contact = grouped.c.contact_id
    chosen_place = grouped.c.pick // big
    reasons = [
        (grouped.c.pick.is_(None), 0),
        (chosen_place >= _REASONS, chosen_place - (_REASONS - 1)),
    ]
    if q.skip_completed:
        reasons.append((contact.in_(participants(q.survey, completed=True)), _COMPLETED))
    left_out = case(*reasons, else_=null())
    if preview:
        mine = (
            select(SessionRow.contact_id)
            .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
            .where(SessionRow.status == "active", SurveyRow.slug == q.survey)
        )
        active = select(SessionRow.contact_id).where(SessionRow.status == "active")
        return select(
            contact,
            language.label("language"),
            # The chosen channel's place in the preference: no need to read the address.
            chosen_place.label("place"),
            left_out.label("left_out"),
            case((contact.in_(mine), 0), (contact.in_(active), 1), else_=null()).label("busy"),
        )
    chosen = aliased(Address, name="chosen")
    return select(
        contact,
        language.label("language"),
        grouped.c.timezone,
        chosen.channel.label("channel"),
        chosen.value.label("value"),
        left_out.label("left_out"),
    ).outerjoin(chosen, chosen.id == grouped.c.pick % big)


def participants(slug: str, *, completed: bool) -> Select[Any]:
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
    stmt = _audience_select(s, q).order_by("contact_id").execution_options(yield_per=5000)
    for row in s.connection().execute(stmt):
        if row.left_out is None:
            yield AudienceRow(row[0], row[1], row[2], row[3], row[4], None)


def _counted(s: Session, q: AudienceQuery) -> Select[Any]:
    inner = _audience_select(s, q, preview=True).subquery("audience")
    columns = (inner.c.place, inner.c.language, inner.c.left_out, inner.c.busy)
    return select(*columns, func.count()).group_by(*columns)


class AudienceCount(NamedTuple):
    channel: str | None
    language: str
    left_out: str | None
    busy: str | None
    contacts: int


def audience_counts(s: Session, q: AudienceQuery) -> list[AudienceCount]:
    """The audience counted in the database: contacts per channel, language, reason left out
    and conversation in progress (grouped by small numbers, named here)."""
    counts: dict[tuple[str | None, str, str | None, str | None], int] = {}
    for place, language, left_out, busy, n in s.connection().execute(_counted(s, q)):
        key = (
            q.channels[int(place)] if left_out is None else None,
            language,
            None if left_out is None else LEFT_OUT[int(left_out)],
            None if busy is None else BUSY[int(busy)],
        )
        counts[key] = counts.get(key, 0) + int(n)
    return [AudienceCount(*key, n) for key, n in counts.items()]


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


#: The one definition of "invited", for a push's page, ``voxpop push show`` and the Results
#: funnel alike: a recipient the push's message reached (or who was answering already when
#: it came, and so was sent nothing new). Planned, skipped and cancelled ones were not.
INVITED = "invited"


def was_invited() -> ColumnElement[bool]:
    """A push recipient who was invited (:data:`INVITED`)."""
    return PushRecipient.status == INVITED


def invited_session() -> ColumnElement[bool]:
    """A session (``sessions`` in the query) that a push invited someone to: what the Results
    funnel counts as invited, the same people a push's page counts (:func:`push_counts`)."""
    return (
        select(PushRecipient.id)
        .where(PushRecipient.session_id == SessionRow.id, was_invited())
        .exists()
    )


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
        slot = {INVITED: 1, "skipped": 2, "cancelled": 2, "planned": 3}[status]
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

    # Started and completed as the Results pages count them: a response (a question
    # answered, or completed) of a session the push invited someone to.
    answered = is_response()
    outcome: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    stmt3 = (
        select(
            func.count(SessionRow.id).filter(answered),
            func.count(SessionRow.id).filter(SessionRow.status == "completed"),
            *([group] if group is not None else []),
        )
        .join(PushRecipient, PushRecipient.session_id == SessionRow.id)
        .where(PushRecipient.push_id == push_id, was_invited())
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


class PushTotals(NamedTuple):
    invited: int
    completed: int


def push_totals(s: Session, push_ids: Sequence[int]) -> dict[int, PushTotals]:
    """Invited and completed recipients of each push, two grouped statements in all."""
    if not push_ids:
        return {}
    invited: dict[int, int] = {
        push_id: n
        for push_id, n in s.execute(
            select(PushRecipient.push_id, func.count(PushRecipient.id))
            .where(PushRecipient.push_id.in_(push_ids), was_invited())
            .group_by(PushRecipient.push_id)
        )
    }
    completed: dict[int, int] = {
        push_id: n
        for push_id, n in s.execute(
            select(PushRecipient.push_id, func.count(PushRecipient.id))
            .join(SessionRow, SessionRow.id == PushRecipient.session_id)
            .where(
                PushRecipient.push_id.in_(push_ids), was_invited(), SessionRow.status == "completed"
            )
            .group_by(PushRecipient.push_id)
        )
    }
    return {i: PushTotals(invited.get(i, 0), completed.get(i, 0)) for i in push_ids}


def reasons(s: Session, push_id: int) -> dict[str, int]:
    """Why recipients were skipped or cancelled, or why the waiting ones wait."""
    stmt = (
        select(PushRecipient.reason, func.count(PushRecipient.id))
        .where(
            PushRecipient.push_id == push_id,
            PushRecipient.reason.is_not(None),
            ~was_invited(),
        )
        .group_by(PushRecipient.reason)
    )
    return {str(reason): int(n) for reason, n in s.execute(stmt)}


def _key(row: Any, grouped: bool) -> str:
    """The group a counting row belongs to: its last column when grouped, else ``""``."""
    return str(row[-1] or "") if grouped else ""
