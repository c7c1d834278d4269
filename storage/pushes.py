"""Repository functions for pushes: the audience's candidates, planning recipients in bulk,
what is due, and a push's counts. None of them commits; the caller owns the transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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

#: Rows per INSERT when planning: large enough to be fast, small enough for any driver.
PLAN_BATCH = 2000


class CandidateRow(NamedTuple):
    contact_id: int
    language: str | None
    timezone: str | None
    attributes: Mapping[str, Any]
    tags: Sequence[str]
    channel: str
    value: str
    consent_at: datetime | None
    opted_out_at: datetime | None
    invalid_at: datetime | None


def candidate_rows(
    s: Session, channels: Sequence[str], *, attributes: bool = True, tags: bool = True
) -> Iterator[CandidateRow]:
    """Every address on ``channels`` of every contact not forgotten, ordered by contact: the
    caller groups them and applies the audience (streamed, so memory stays flat). Attributes
    and tags are read only when asked for: decoding them is most of the cost."""
    stmt = (
        select(
            Contact.id,
            Contact.language,
            Contact.timezone,
            Contact.attributes if attributes else literal(None),
            Contact.tags if tags else literal(None),
            Address.channel,
            Address.value,
            Address.consent_at,
            Address.opted_out_at,
            Address.invalid_at,
        )
        .join(Address, Address.contact_id == Contact.id)
        .where(Contact.forgotten_at.is_(None), Address.channel.in_(channels))
        .order_by(Contact.id, Address.id)
        .execution_options(yield_per=5000)
    )
    for row in s.execute(stmt):
        yield CandidateRow(*row)


def contacts_who(s: Session, slugs: Iterable[str], *, completed: bool) -> dict[str, set[int]]:
    """Per survey id, the contacts with a citizen's (not simulated) session of any version
    that is completed (``completed``) or has at least one answer."""
    found: dict[str, set[int]] = {slug: set() for slug in slugs}
    if not found:
        return found
    stmt = (
        select(SurveyRow.slug, SessionRow.contact_id)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(
            SurveyRow.slug.in_(found),
            SessionRow.simulated.is_(False),
            SessionRow.contact_id.is_not(None),
        )
        .distinct()
    )
    if completed:
        stmt = stmt.where(SessionRow.status == "completed")
    else:
        answered = select(AnswerRow.id).where(AnswerRow.session_id == SessionRow.id).exists()
        stmt = stmt.where(answered)
    for slug, contact_id in s.execute(stmt):
        if contact_id is not None:
            found[slug].add(contact_id)
    return found


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
