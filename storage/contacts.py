"""Repository functions for contacts as staff manage them: bulk upsert, consent, lookups.

Like :mod:`storage.repo`, nothing here commits: the caller owns the transaction, so a whole
import is one transaction. Bulk functions issue a few statements per batch of rows, never
one per row. Consent lives on the address (``consent_at``, ``consent_source``); an opt-out
(``opted_out_at``, set by STOP) is never cleared here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    Address,
    AnswerRow,
    AuditEntry,
    Base,
    Contact,
    PushRecipient,
    PushRow,
    SessionRow,
    SurveyRow,
)
from storage.repo import SIMULATOR_SPACE

__all__ = [
    "CONSENT_FILTERS",
    "DECLINED_PREFIX",
    "ContactFields",
    "ContactSummary",
    "UpsertCounts",
    "addresses_by_contact",
    "answers_of",
    "attribute_equals",
    "audit_of",
    "contact_ids_at",
    "count_answers",
    "declined",
    "has_tag",
    "invitations_of",
    "list_contacts",
    "pushable",
    "record_consent",
    "sessions_of",
    "upsert_contacts",
]

#: ``consent_source`` of a consent withdrawn in a survey (``consent_at`` is then NULL). An
#: import never restores such a consent: what citizens say themselves wins over a list.
DECLINED_PREFIX = "declined in "
#: Longest ``consent_source`` the column holds.
_SOURCE_LENGTH = 64


class ContactFields(Protocol):
    """What an imported row brings (``bot.contacts.csv_file.ContactRow`` has these)."""

    @property
    def channel(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def consent_at(self) -> datetime | None: ...
    @property
    def consent_source(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


@dataclass
class UpsertCounts:
    """What an upsert did, row by row: each row is created, updated or unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Rows whose address is opted out (STOP): they stay opted out.
    opted_out: int = 0
    #: Rows whose consent was withdrawn in a survey: the file's consent was not applied.
    declined: int = 0

    def add(self, other: UpsertCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.opted_out += other.opted_out
        self.declined += other.declined


def pushable() -> ColumnElement[bool]:
    """An address a push may go to: consent recorded, not opted out, not known invalid."""
    return and_(
        Address.consent_at.is_not(None),
        Address.opted_out_at.is_(None),
        Address.invalid_at.is_(None),
    )


def declined(consent_at: datetime | None, consent_source: str | None) -> bool:
    """Whether an address's consent was withdrawn by the citizen in a survey.

    >>> declined(None, "declined in survey central-park"), declined(None, None)
    (True, False)
    """
    return consent_at is None and (consent_source or "").startswith(DECLINED_PREFIX)


def upsert_contacts(s: Session, rows: Sequence[ContactFields], now: datetime) -> UpsertCounts:
    """Create or update one contact per row, by address (unique in ``rows``).

    A known address updates its contact: language and timezone when the row has them,
    attributes merged (the row's values win, other keys stay), tags added, and consent
    recorded unless the address holds a newer one or the citizen declined in a survey. An
    opt-out is never cleared. Costs a handful of statements per call, whatever its size.
    """
    counts = UpsertCounts()
    if not rows:
        return counts
    if s.get_bind().dialect.name == "postgresql":
        # psycopg prepares statements it sees often, and PostgreSQL may then keep a generic
        # plan made while the tables were small: a sequential scan, per batch, of a table
        # this very transaction keeps growing. Plan each look-up for its own values.
        s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    found = _addresses_at(s, [(r.channel, r.value) for r in rows])
    known = [r for r in rows if (r.channel, r.value) in found]
    new = [r for r in rows if (r.channel, r.value) not in found]
    counts.add(_update(s, known, found, now))
    lost = _insert(s, new, now, counts)
    if lost:
        # Someone wrote to us from these addresses meanwhile (PostgreSQL, concurrent
        # webhooks): they exist now, so they are updates.
        counts.created -= len(lost)
        counts.add(_update(s, lost, _addresses_at(s, [(r.channel, r.value) for r in lost]), now))
    return counts


@dataclass(frozen=True)
class _Known:
    address_id: int
    contact_id: int
    consent_at: datetime | None
    consent_source: str | None
    opted_out_at: datetime | None


def _addresses_at(s: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], _Known]:
    found: dict[tuple[str, str], _Known] = {}
    for channel in sorted({channel for channel, _ in keys}):
        values = [value for c, value in keys if c == channel]
        # channel = ? AND value IN (...): the (channel, value) unique index serves it.
        for row in s.execute(
            select(
                Address.id,
                Address.contact_id,
                Address.value,
                Address.consent_at,
                Address.consent_source,
                Address.opted_out_at,
            ).where(Address.channel == channel, Address.value.in_(values))
        ):
            found[(channel, row.value)] = _Known(
                row.id, row.contact_id, row.consent_at, row.consent_source, row.opted_out_at
            )
    return found


def _consent(
    row: ContactFields, known: _Known | None, now: datetime
) -> tuple[datetime | None, str | None] | None:
    """The consent to store for ``row``, or ``None`` to leave the address's as it is."""
    if row.consent_source is None:
        return None
    at = row.consent_at or now
    if known is not None:
        if declined(known.consent_at, known.consent_source):
            return None
        if known.consent_at is not None and (
            known.consent_source == row.consent_source or known.consent_at >= at
        ):
            return None  # the same record again, or a newer one (a survey answer)
    return at, row.consent_source[:_SOURCE_LENGTH]


def _update(
    s: Session,
    rows: Sequence[ContactFields],
    found: Mapping[tuple[str, str], _Known],
    now: datetime,
) -> UpsertCounts:
    counts = UpsertCounts()
    if not rows:
        return counts
    ids = {found[(r.channel, r.value)].contact_id for r in rows}
    current = {
        row.id: row
        for row in s.execute(
            select(
                Contact.id, Contact.language, Contact.timezone, Contact.attributes, Contact.tags
            ).where(Contact.id.in_(ids))
        )
    }
    contact_changes: dict[int, dict[str, Any]] = {}
    address_changes: list[dict[str, Any]] = []
    for row in rows:
        known = found[(row.channel, row.value)]
        if known.opted_out_at is not None:
            counts.opted_out += 1
        if row.consent_source is not None and declined(known.consent_at, known.consent_source):
            counts.declined += 1
        # Two rows for one contact (two addresses) merge into what the first one made.
        before = contact_changes.get(known.contact_id) or current[known.contact_id]._asdict()
        after = {
            "id": known.contact_id,
            "language": row.language or before["language"],
            "timezone": row.timezone or before["timezone"],
            "attributes": {**(before["attributes"] or {}), **row.attributes},
            "tags": list(dict.fromkeys([*(before["tags"] or []), *row.tags])),
        }
        contact_changed = any(after[k] != before[k] for k in after)
        consent = _consent(row, known, now)
        if consent is not None:
            address_changes.append(
                {"id": known.address_id, "consent_at": consent[0], "consent_source": consent[1]}
            )
        if contact_changed:
            contact_changes[known.contact_id] = {**after, "updated_at": now}
        if contact_changed or consent is not None:
            counts.updated += 1
        else:
            counts.unchanged += 1
    if contact_changes:
        # ORM bulk UPDATE by primary key: one executemany, not a statement per row.
        s.execute(update(Contact), list(contact_changes.values()))
    if address_changes:
        s.execute(update(Address), address_changes)
    return counts


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


def _dialect_insert(s: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` on both engines."""
    if s.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _new_ids(s: Session, count: int) -> list[int]:
    """``count`` fresh contact ids, reserved up front so rows insert without RETURNING
    (which SQLAlchemy cannot batch while keeping the rows' order on SQLite)."""
    if s.get_bind().dialect.name == "postgresql":
        # Sequence values are never handed out twice, whatever else inserts meanwhile.
        reserve = text(
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1, :n)"
        )
        return list(s.scalars(reserve, {"n": count}))
    # SQLite: this transaction began IMMEDIATE and holds the only write lock.
    first = (s.scalar(select(func.max(Contact.id))) or 0) + 1
    return list(range(first, first + count))


def _insert(
    s: Session, rows: Sequence[ContactFields], now: datetime, counts: UpsertCounts
) -> list[ContactFields]:
    """Insert contacts and their addresses; the rows whose address appeared meanwhile."""
    if not rows:
        return []
    contact_ids = _new_ids(s, len(rows))
    # Core executemany: the ORM's bulk insert splits the batch wherever a row's NULLs differ.
    s.execute(
        _table(Contact).insert(),
        [
            {
                "id": contact_id,
                "language": r.language,
                "timezone": r.timezone,
                "attributes": dict(r.attributes),
                "tags": list(r.tags),
                "created_at": now,
                "updated_at": now,
            }
            for r, contact_id in zip(rows, contact_ids, strict=True)
        ],
    )
    values = []
    for row, contact_id in zip(rows, contact_ids, strict=True):
        consent = _consent(row, None, now) or (None, None)
        values.append(
            {
                "contact_id": contact_id,
                "channel": row.channel,
                "value": row.value,
                "consent_at": consent[0],
                "consent_source": consent[1],
                "created_at": now,
            }
        )
    stmt = _dialect_insert(s, _table(Address)).on_conflict_do_nothing(
        index_elements=["channel", "value"]
    )
    s.execute(stmt, values)
    counts.created += len(rows)
    # An address that went to another contact was created meanwhile (a first message).
    ours = dict(zip(((r.channel, r.value) for r in rows), contact_ids, strict=True))
    found = _addresses_at(s, list(ours))
    lost = [
        row
        for row in rows
        if found[(row.channel, row.value)].contact_id != ours[(row.channel, row.value)]
    ]
    if lost:
        orphans = [ours[(row.channel, row.value)] for row in lost]
        s.execute(delete(Contact).where(Contact.id.in_(orphans)))
    return lost


# --- consent from a conversation ------------------------------------------------------------


def record_consent(
    s: Session, channel: str, value: str, *, given: bool, source: str, now: datetime
) -> bool:
    """Record consent given (``consent_at = now``) or withdrawn (``NULL``) on an address,
    with where it came from; whether the address exists. The opt-out is left alone."""
    updated = s.execute(
        update(Address)
        .where(Address.channel == channel, Address.value == value)
        .values(consent_at=now if given else None, consent_source=source[:_SOURCE_LENGTH])
        .returning(Address.id),
        execution_options={"synchronize_session": "fetch"},
    ).first()
    return updated is not None


# --- lookups for staff ----------------------------------------------------------------------


def attribute_equals(s: Session, key: str, value: str) -> ColumnElement[bool]:
    """``contacts.attributes[key] = value`` on either engine (JSON text on SQLite)."""
    if s.get_bind().dialect.name == "postgresql":
        return Contact.attributes.op("->>", return_type=String)(key) == value
    if '"' in key or "\\" in key:
        raise ValueError(f"attribute names may not contain quotes or backslashes: {key!r}")
    return func.json_extract(Contact.attributes, f'$."{key}"') == value


def has_tag(s: Session, tag: str) -> ColumnElement[bool]:
    """The contact's tags include ``tag``."""
    if s.get_bind().dialect.name == "postgresql":
        return Contact.tags.op("@>", return_type=Boolean)(func.jsonb_build_array(tag))
    each = func.json_each(Contact.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


#: ``consent`` filters of :func:`list_contacts`: ``value -> what it means``, for staff.
CONSENT_FILTERS: Final[Mapping[str, str]] = {
    "reachable": "consent given and not opted out: a push reaches them",
    "given": "consent given",
    "none": "no consent recorded",
    "declined": "said no to future consultations in a survey",
    "opted_in": "not opted out",
    "opted_out": "opted out (STOP)",
}


def _consent_condition(consent: str) -> tuple[ColumnElement[bool], bool]:
    """The condition on one address for a ``consent`` filter, and whether the contact must
    have such an address (``True``) or have none (``False``)."""
    if consent == "reachable":
        return pushable(), True
    if consent == "given":
        return Address.consent_at.is_not(None), True
    if consent == "none":
        return Address.consent_at.is_not(None), False
    if consent == "declined":
        declined_here = and_(
            Address.consent_at.is_(None),
            Address.consent_source.startswith(DECLINED_PREFIX, autoescape=True),
        )
        return declined_here, True
    if consent == "opted_in":
        return Address.opted_out_at.is_(None), True
    if consent == "opted_out":
        return Address.opted_out_at.is_not(None), True
    raise ValueError(f"unknown consent filter {consent!r} (one of {', '.join(CONSENT_FILTERS)})")


@dataclass(frozen=True)
class ContactSummary:
    """A contact's own columns, as a list shows them (a Core row, not an ORM object)."""

    id: int
    language: str | None
    timezone: str | None
    attributes: Mapping[str, Any]
    tags: Sequence[str]
    created_at: datetime
    updated_at: datetime


def list_contacts(
    s: Session,
    *,
    channel: str | None = None,
    language: str | None = None,
    where: Mapping[str, str] | None = None,
    tags: Iterable[str] = (),
    consent: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[ContactSummary], int]:
    """Contacts (not erased) matching every filter, by id, from ``offset`` (at most
    ``limit``); and how many match in all. Two statements, filtered and counted by the
    database: a page of 50 costs the same with 100 or 100,000 contacts.

    ``channel`` and ``consent`` hold on the same address: ``channel="sms",
    consent="opted_out"`` is a contact whose SMS address is opted out.
    """
    conditions: list[ColumnElement[bool]] = [
        Contact.forgotten_at.is_(None),
        # A simulator's test phone is not a contact the city may invite (storage.repo).
        exists().where(
            Address.contact_id == Contact.id,
            Address.value.not_like(f"{SIMULATOR_SPACE}%"),
        ),
    ]
    on_address: list[ColumnElement[bool]] = [Address.contact_id == Contact.id]
    if channel is not None:
        on_address.append(Address.channel == channel)
    if consent is not None:
        condition, wanted = _consent_condition(consent)
        found = exists().where(*on_address, condition)
        conditions.append(found if wanted else ~found)
        if not wanted and channel is not None:
            conditions.append(exists().where(*on_address))
    elif channel is not None:
        conditions.append(exists().where(*on_address))
    if language is not None:
        conditions.append(Contact.language == language)
    for key, value in (where or {}).items():
        conditions.append(attribute_equals(s, key, value))
    for tag in tags:
        conditions.append(has_tag(s, tag))
    condition = and_(true(), *conditions)
    total = s.scalar(select(func.count(Contact.id)).where(condition)) or 0
    stmt = (
        select(
            Contact.id,
            Contact.language,
            Contact.timezone,
            Contact.attributes,
            Contact.tags,
            Contact.created_at,
            Contact.updated_at,
        )
        .where(condition)
        .order_by(Contact.id)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    found_rows = [
        ContactSummary(
            id=row.id,
            language=row.language,
            timezone=row.timezone,
            attributes=row.attributes or {},
            tags=tuple(row.tags or ()),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in s.execute(stmt)
    ]
    return found_rows, total


def addresses_by_contact(s: Session, contact_ids: Iterable[int]) -> dict[int, list[Address]]:
    """The addresses of these contacts, oldest first, in one query."""
    by_contact: dict[int, list[Address]] = {}
    ids = list(contact_ids)
    if not ids:
        return by_contact
    for address in s.scalars(
        select(Address).where(Address.contact_id.in_(ids)).order_by(Address.id)
    ):
        by_contact.setdefault(address.contact_id, []).append(address)
    return by_contact


def contact_ids_at(s: Session, value: str, channel: str | None = None) -> list[int]:
    """Contacts reached at ``value`` (on ``channel``, or on any channel)."""
    stmt = select(Address.contact_id).where(Address.value == value)
    if channel is not None:
        stmt = stmt.where(Address.channel == channel)
    return sorted(set(s.scalars(stmt)))


def sessions_of(s: Session, contact_id: int) -> list[tuple[SessionRow, str, int]]:
    """The contact's consultations, oldest first: the session, the survey id and version."""
    rows = s.execute(
        select(SessionRow, SurveyRow.slug, SurveyRow.version)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(SessionRow.contact_id == contact_id)
        .order_by(SessionRow.started_at, SessionRow.id)
    )
    return [(row, slug, version) for row, slug, version in rows]


def count_answers(s: Session, contact_id: int) -> int:
    """How many answers the contact gave, over all consultations."""
    return (
        s.scalar(
            select(func.count(AnswerRow.id))
            .join(SessionRow, SessionRow.id == AnswerRow.session_id)
            .where(SessionRow.contact_id == contact_id)
        )
        or 0
    )


def invitations_of(s: Session, contact_id: int) -> list[tuple[PushRecipient, PushRow]]:
    """The pushes that planned to reach the contact, oldest first."""
    rows = s.execute(
        select(PushRecipient, PushRow)
        .join(PushRow, PushRow.id == PushRecipient.push_id)
        .where(PushRecipient.contact_id == contact_id)
        .order_by(PushRecipient.id)
    )
    return [(recipient, push) for recipient, push in rows]


def answers_of(s: Session, session_ids: Sequence[int]) -> list[AnswerRow]:
    """The answers of these sessions, in the order they were given, in one query."""
    if not session_ids:
        return []
    return list(
        s.scalars(
            select(AnswerRow)
            .where(AnswerRow.session_id.in_(session_ids))
            .order_by(AnswerRow.session_id, AnswerRow.answered_at, AnswerRow.id)
        )
    )


def audit_of(s: Session, subject: str, actions: Iterable[str]) -> list[AuditEntry]:
    """The audit entries about ``subject`` (a pseudonym) with these actions, oldest first."""
    return list(
        s.scalars(
            select(AuditEntry)
            .where(AuditEntry.subject == subject, AuditEntry.action.in_(list(actions)))
            .order_by(AuditEntry.at, AuditEntry.id)
        )
    )
