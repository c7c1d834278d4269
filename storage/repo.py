"""Repository functions: small, typed queries over a :class:`~sqlalchemy.orm.Session`.

None of them commits: the caller owns the transaction (see :func:`storage.db.transaction`),
so one webhook is one short transaction however many of these it calls. Upserts use
``INSERT … ON CONFLICT`` so a duplicate never raises — on PostgreSQL an error would abort the
whole surrounding transaction.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from storage.models import (
    Address,
    AnswerRow,
    AuditEntry,
    Base,
    Contact,
    ContactImport,
    Message,
    PushRecipient,
    SendBudget,
    SessionRow,
    Setting,
    StatusReport,
    SurveyRow,
)

__all__ = [
    "ERASED",
    "FORGOTTEN",
    "SIMULATOR_SPACE",
    "STATUS_RANK",
    "UPLOAD_DROPPED",
    "add_outbound",
    "addresses_of",
    "answers_of",
    "apply_early_reports",
    "apply_status",
    "audit",
    "count_responses",
    "find_contact",
    "find_or_create_contact",
    "forget_contact",
    "get_active_session",
    "get_setting",
    "init_send_budget",
    "init_setting",
    "insert_inbound",
    "insert_session",
    "is_response",
    "iter_responses",
    "last_keyboard",
    "last_survey_of",
    "latest_survey",
    "latest_surveys",
    "lock_contact",
    "lock_provider_ids",
    "prune_status_reports",
    "release_held",
    "sessions_for_contact",
    "set_setting",
    "simulator_value",
    "store_early_report",
    "store_survey_version",
    "survey_by_id",
    "tombstone",
    "touch_address",
    "update_columns",
    "update_session",
    "upsert_answer",
]

_PHONE_NUMBER = re.compile(r"\+\d{6,}")

#: The simulators' own address space. A simulated conversation (the browser simulator,
#: ``voxpop chat``) is stored under this prefix and the number or chat id typed in, in
#: ``addresses.value`` and ``messages.address``. No citizen's address can start with it (every
#: channel's edge accepts only a phone number or a numeric chat id), so a lookup by
#: ``(channel, value)`` for a real message never finds a simulated contact, and a simulated
#: message never finds, creates or changes a citizen's contact, address, session or consent.
SIMULATOR_SPACE = "sim:"


def simulator_value(value: str) -> str:
    """Where the simulators keep the conversation of ``value``.

    >>> simulator_value("+15555550100")
    'sim:+15555550100'
    """
    return SIMULATOR_SPACE + value


def _insert(s: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/_update`` on both engines."""
    if s.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


# --- messages ---------------------------------------------------------------------------


@functools.cache
def _insert_inbound_stmt(dialect: str) -> Any:
    # Built once per dialect: constructing a statement costs more than running it.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(Message)
        .on_conflict_do_nothing(index_elements=["direction", "channel", "provider_id"])
        .returning(Message.id)
    )


def insert_inbound(
    s: Session,
    *,
    channel: str,
    address: str,
    provider_id: str,
    text: str,
    payload: Any,
    received_at: datetime,
    contact_id: int | None = None,
    session_id: int | None = None,
) -> int | None:
    """Record an inbound message: its id, or ``None`` if the provider already delivered it."""
    params = {
        "direction": "in",
        "channel": channel,
        "address": address,
        "contact_id": contact_id,
        "session_id": session_id,
        "kind": None,
        "text": text,
        "payload": payload,
        "provider_id": provider_id,
        "status": "received",
        "attempts": 0,
        "created_at": received_at,
    }
    # On the Connection: the ORM's INSERT path costs more than the statement itself.
    found: int | None = s.connection().execute(_insert_inbound_stmt(_dialect(s)), params).scalar()
    return found


def _dialect(s: Session) -> str:
    return s.get_bind().dialect.name


_INSERT_OUTBOUND = insert(Message).returning(Message.id)


def add_outbound(
    s: Session,
    *,
    channel: str,
    address: str | None,
    text: str,
    now: datetime,
    kind: str = "reply",
    payload: Any = None,
    contact_id: int | None = None,
    session_id: int | None = None,
    not_before: datetime | None = None,
    status: str = "queued",
    segments: int | None = None,
) -> int:
    """Queue an outbound message for the dispatcher, due at ``not_before`` (default ``now``);
    its id.

    ``status`` other than ``queued`` records a message that is never to be sent (the
    simulator's ``simulated``); it is then stamped as handled at ``now``.
    """
    params = {
        "direction": "out",
        "channel": channel,
        "address": address,
        "contact_id": contact_id,
        "session_id": session_id,
        "kind": kind,
        "text": text,
        "payload": payload,
        "status": status,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "segments": segments,
        "sent_at": None if status == "queued" else now,
        "created_at": now,
        "recipient_id": None,
    }
    message_id: int = s.connection().execute(_INSERT_OUTBOUND, params).scalar_one()
    return message_id


#: How far an outbound message has got. A delivery report only ever moves it up, so repeated
#: and out-of-order reports end in the same state. ``delivered`` outranks a failure: a
#: handset's receipt is proof. ``queued``/``sending``/``held``/``unknown`` are the
#: dispatcher's own states, which a report never sets (a ``queued`` row would be sent again).
STATUS_RANK: Mapping[str, int] = {
    "queued": 0,
    "sending": 0,
    "held": 0,
    "unknown": 0,
    "sent": 1,
    "undelivered": 2,
    "failed": 3,
    "delivered": 4,
    "read": 5,
}
_FAILURES = ("undelivered", "failed")


def apply_status(
    s: Session, channel: str, provider_id: str, status: str, error_code: str | None
) -> bool | None:
    """Move the outbound message with ``provider_id`` forward to ``status`` (never back).

    ``True`` if it moved, ``False`` if it was already as far, ``None`` if no message has
    that provider id (yet). Failures store the error code; delivery clears it, so any order
    of reports ends in the same state.
    """
    rank = STATUS_RANK.get(status, 0)
    if rank == 0:
        return False
    values: dict[str, Any] = {"status": status}
    if status in _FAILURES:
        values["error"] = error_code or f"{status} without an error code"
    elif rank > STATUS_RANK["sent"]:
        values["error"] = None
    below = [name for name, r in STATUS_RANK.items() if r < rank]
    mine = and_(
        Message.direction == "out",
        Message.channel == channel,
        Message.provider_id == provider_id,
    )
    # One conditional UPDATE: two reports racing for one row cannot move it back.
    moved = s.scalars(
        update(Message)
        .where(mine, Message.status.in_(below))
        .values(**values)
        .returning(Message.id),
        execution_options={"synchronize_session": False},
    ).first()
    if moved is not None:
        return True
    exists = s.scalar(select(Message.id).where(mine).limit(1))
    return False if exists is not None else None


#: First key of the advisory locks that pair delivery reports with provider ids.
_REPORT_LOCKS = 0x566F78  # "Vox"


def lock_provider_ids(s: Session, channel: str, provider_ids: Iterable[str]) -> None:
    """Serialise recording these provider ids with reports about them (PostgreSQL).

    A report that finds no message is kept for later, and the dispatcher looks for kept
    reports after recording ids: without this lock, both could miss each other's uncommitted
    write. Held until the transaction ends; SQLite's single writer needs none.
    """
    if s.get_bind().dialect.name != "postgresql":
        return
    keys = [f"{channel}:{provider_id}" for provider_id in sorted(set(provider_ids))]
    if keys:
        # One round trip for the whole group, locking in one order everywhere: no deadlock.
        s.execute(_LOCK_REPORTS, {"group": _REPORT_LOCKS, "keys": keys})


_LOCK_REPORTS = sql_text(
    "SELECT pg_advisory_xact_lock(:group, hashtext(key)) FROM unnest(CAST(:keys AS text[])) AS key"
)


def store_early_report(
    s: Session, channel: str, provider_id: str, status: str, error_code: str | None, now: datetime
) -> None:
    """Keep a report for a provider id not recorded yet (applied by
    :func:`apply_early_reports` when the dispatcher records it)."""
    s.execute(
        _insert(s, StatusReport)
        .values(
            channel=channel,
            provider_id=provider_id,
            status=status,
            error_code=error_code,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["channel", "provider_id", "status"])
    )


def apply_early_reports(s: Session, sent: Sequence[Message]) -> int:
    """Apply and delete the reports that arrived before these messages' provider ids were
    recorded; how many applied. Costs one query when there are none."""
    if not sent:
        return 0
    ids = {(m.channel, m.provider_id) for m in sent if m.provider_id}
    for channel in {channel for channel, _ in ids}:
        lock_provider_ids(s, channel, [pid for c, pid in ids if c == channel and pid])
    reports = list(
        s.scalars(
            select(StatusReport).where(
                StatusReport.provider_id.in_({provider_id for _, provider_id in ids})
            )
        )
    )
    applied = 0
    s.flush()
    for report in sorted(reports, key=lambda r: STATUS_RANK.get(r.status, 0)):
        if (report.channel, report.provider_id) in ids:
            apply_status(s, report.channel, report.provider_id, report.status, report.error_code)
            applied += 1
            s.delete(report)
    if applied:
        s.expire_all()
    return applied


def prune_status_reports(s: Session, before: datetime) -> None:
    """Forget early reports that never found their message (another deployment's, or lost)."""
    s.execute(delete(StatusReport).where(StatusReport.received_at < before))


def release_held(
    s: Session, channel: str, address: str, now: datetime, *, cancel: bool = False
) -> list[str]:
    """Queue again what waited for this citizen's message (WhatsApp's window), or with
    ``cancel`` mark it failed as superseded; the kinds of the rows."""
    values: dict[str, Any] = {"status": "queued", "next_attempt_at": now}
    if cancel:
        values = {"status": "failed", "error": "superseded: the citizen wrote first"}
    return list(
        s.scalars(
            update(Message)
            .where(
                Message.status == "held",
                Message.direction == "out",
                Message.channel == channel,
                Message.address == address,
            )
            .values(**values)
            .returning(Message.kind),
            execution_options={"synchronize_session": False},
        )
    )


def last_keyboard(s: Session, contact_id: int, channel: str) -> dict[str, str] | None:
    """The chat and message id of the last message sent to the contact, if it showed buttons
    (a Telegram provider id is ``<chat>:<message id>``)."""
    row = s.execute(
        select(Message.provider_id, Message.payload)
        .where(
            Message.contact_id == contact_id,
            Message.direction == "out",
            Message.channel == channel,
            Message.kind.in_(("reply", "push")),
            Message.provider_id.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if row is None or not isinstance(row.payload, Mapping) or not row.payload.get("options"):
        return None
    chat, _, message_id = str(row.provider_id).rpartition(":")
    return {"chat": chat, "message_id": message_id} if chat and message_id else None


def init_send_budget(s: Session, key: str, now: datetime) -> None:
    """Create a sender's budget row unless another dispatcher just did."""
    s.execute(
        _insert(s, SendBudget)
        .values(key=key, next_free_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )


# --- contacts ---------------------------------------------------------------------------


_CONTACT_AT = (
    select(Contact, Address)
    .join(Address, Address.contact_id == Contact.id)
    .where(Address.channel == bindparam("channel"), Address.value == bindparam("value"))
)


def _address_with_contact(s: Session, channel: str, value: str) -> tuple[Contact, Address] | None:
    row = s.execute(_CONTACT_AT, {"channel": channel, "value": value}).first()
    return None if row is None else (row[0], row[1])


def find_contact(s: Session, channel: str, value: str) -> tuple[Contact, Address] | None:
    """The contact reached at ``(channel, value)`` and that address, if known."""
    return _address_with_contact(s, channel, value)


def find_or_create_contact(
    s: Session, channel: str, value: str, now: datetime, language: str | None = None
) -> tuple[Contact, Address, bool]:
    """The contact reached at ``(channel, value)``, created if new; the flag says "created".

    Race-safe: two first messages from one number at once make one contact. The loser's
    INSERT waits for the winner's commit (PostgreSQL) and then does nothing.
    """
    found = _address_with_contact(s, channel, value)
    if found is not None:
        return found[0], found[1], False
    contact = Contact(language=language, attributes={}, created_at=now, updated_at=now)
    s.add(contact)
    s.flush()
    address = s.scalars(
        _insert(s, Address)
        .values(contact_id=contact.id, channel=channel, value=value, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "value"])
        .returning(Address)
    ).first()
    if address is not None:
        return contact, address, True
    # Lost the race: drop our empty contact and use the winner's.
    s.delete(contact)
    s.flush()
    found = _address_with_contact(s, channel, value)
    if found is None:  # pragma: no cover - the conflicting row was committed, so it exists
        raise RuntimeError(f"address vanished during insert ({channel})")
    return found[0], found[1], False


def addresses_of(s: Session, contact_id: int) -> list[Address]:
    """The contact's addresses, oldest first."""
    return list(
        s.scalars(select(Address).where(Address.contact_id == contact_id).order_by(Address.id))
    )


def tombstone(contact_id: int) -> str:
    """How the audit log names a contact once erased (and the erasure itself)."""
    return f"contact:{contact_id}"


def lock_contact(s: Session, contact_id: int) -> None:
    """Take the contact's row lock first in a write transaction (PostgreSQL): every writer
    for one citizen (a message, FORGET, a simulated start) then waits for the others in the
    same order instead of deadlocking halfway. SQLite has one writer at a time: nothing to do.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update())


def forget_contact(
    s: Session,
    contact_id: int,
    now: datetime,
    *,
    free_text: Mapping[int, Collection[str]] | None = None,
    pseudonym: str | None = None,
) -> None:
    """Erase a contact's personal data (FORGET); their answers remain, anonymous. What each
    column gets is listed in :data:`storage.personal.PERSONAL`.

    Deletes the addresses; blanks the address, text, payload and error of every message to
    or from them, and a provider id that names their address (a Telegram ``chat:message``
    id; opaque ids stay, so a redelivery or a late delivery report still finds its row and
    creates nothing); cancels what was not sent yet; unlinks messages, push plans and
    sessions (ending an active one); clears every reply's ``raw`` text and, for the
    questions in ``free_text`` (session id -> question ids), the answer itself; renames
    the contact's ``pseudonym`` in the audit log to its :func:`tombstone`; and empties the
    contact row, which remains as a tombstone with ``forgotten_at``. The sessions' state
    and respondent are the caller's (the service knows the surveys).
    """
    contact = s.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    theirs: ColumnElement[bool] = Message.contact_id == contact_id
    naming: ColumnElement[bool] = false()
    for channel, value in s.execute(
        select(Address.channel, Address.value).where(Address.contact_id == contact_id)
    ):
        # Inbound rows are stored before the contact is resolved, so match on the address too.
        theirs = or_(theirs, and_(Message.channel == channel, Message.address == value))
        naming = or_(naming, Message.provider_id.contains(value.lstrip("+"), autoescape=True))
    unsent = and_(Message.direction == "out", Message.status.in_(("queued", "sending", "held")))
    s.execute(
        update(Message)
        .where(theirs)
        .values(
            # What was not sent yet can no longer be; provider errors may quote the number.
            status=case((unsent, "failed"), else_=Message.status),
            error=case((unsent, FORGOTTEN), else_=None),
            next_attempt_at=None,
            lease_until=None,
            address=None,
            text="",
            payload=None,
            provider_id=case((naming, None), else_=Message.provider_id),
            contact_id=None,
            session_id=None,
        ),
        execution_options={"synchronize_session": "fetch"},
    )
    # Push plans keep the counts, not the person; an invitation not sent yet never will be.
    planned = PushRecipient.status == "planned"
    s.execute(
        update(PushRecipient)
        .where(PushRecipient.contact_id == contact_id)
        .values(
            contact_id=None,
            address=None,
            next_reminder_at=None,
            status=case((planned, "skipped"), else_=PushRecipient.status),
            reason=case((planned, "forgotten"), else_=PushRecipient.reason),
        ),
        execution_options={"synchronize_session": False},
    )
    for address in addresses_of(s, contact_id):
        s.delete(address)
    session_ids = list(s.scalars(select(SessionRow.id).where(SessionRow.contact_id == contact_id)))
    _forget_answers(s, session_ids, free_text or {})
    s.execute(
        update(SessionRow)
        .where(SessionRow.contact_id == contact_id, SessionRow.status == "active")
        .values(status="abandoned", updated_at=now),
        execution_options={"synchronize_session": "fetch"},
    )
    s.execute(
        update(SessionRow)
        .where(SessionRow.contact_id == contact_id)
        # Bump the lock too: a reply being processed concurrently must not resurrect it.
        .values(contact_id=None, state_version=SessionRow.state_version + 1),
        execution_options={"synchronize_session": "fetch"},
    )
    _drop_waiting_uploads(s, now)
    if pseudonym is not None:
        # Exports made before carry the pseudonym: it must no longer lead to this contact.
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.subject == pseudonym)
            .values(subject=tombstone(contact_id)),
            execution_options={"synchronize_session": False},
        )
    contact.language = None
    contact.timezone = None
    contact.attributes = {}
    contact.tags = []
    contact.pending = None
    contact.last_help_at = None
    contact.forgotten_at = now
    contact.updated_at = now
    s.flush()


#: ``answers.how`` of a free-text answer erased by FORGET.
ERASED = "erased"
#: ``messages.error`` of a message FORGET stopped before it was sent.
FORGOTTEN = "contact forgotten"
#: Why a contacts file waiting in the console was dropped (see :func:`_drop_waiting_uploads`).
UPLOAD_DROPPED = (
    "someone was erased while this file waited, and it may hold their number: "
    "upload it again (rows imported already stay)"
)


def _drop_waiting_uploads(s: Session, now: datetime) -> None:
    """Drop every contacts file still held for the console: one may hold the person, and a
    file cannot lose one line. An import in progress stops at its next chunk."""
    s.execute(
        update(ContactImport)
        .where(ContactImport.data.is_not(None))
        .values(
            data=None,
            status=case((ContactImport.status == "importing", "failed"), else_="discarded"),
            error=UPLOAD_DROPPED,
            lease_until=None,
            finished_at=now,
            updated_at=now,
        ),
        execution_options={"synchronize_session": False},
    )


def _forget_answers(
    s: Session, session_ids: Sequence[int], free_text: Mapping[int, Collection[str]]
) -> None:
    """Every reply's raw text goes; a free-text answer's value too (``how`` says so)."""
    if not session_ids:
        return
    s.execute(
        update(AnswerRow).where(AnswerRow.session_id.in_(session_ids)).values(raw=None),
        execution_options={"synchronize_session": False},
    )
    for session_id in session_ids:
        questions = list(free_text.get(session_id, ()))
        if questions:
            s.execute(
                update(AnswerRow)
                .where(AnswerRow.session_id == session_id, AnswerRow.question_id.in_(questions))
                .values(value=None, how=ERASED),
                execution_options={"synchronize_session": False},
            )


# --- sessions and answers ---------------------------------------------------------------


def get_active_session(s: Session, contact_id: int) -> SessionRow | None:
    """The contact's active session, if any (the database allows at most one)."""
    return s.scalars(
        select(SessionRow).where(SessionRow.contact_id == contact_id, SessionRow.status == "active")
    ).one_or_none()


_UPDATE_SESSION = (
    update(SessionRow)
    .where(
        SessionRow.id == bindparam("row_id"),
        SessionRow.state_version == bindparam("version"),
    )
    .values(
        state=bindparam("state"),
        status=bindparam("status"),
        language=bindparam("language"),
        updated_at=bindparam("updated_at"),
        completed_at=func.coalesce(bindparam("completed_at"), SessionRow.completed_at),
        state_version=SessionRow.state_version + 1,
    )
)


def update_session(
    s: Session,
    row: SessionRow,
    *,
    state: dict[str, Any],
    status: str,
    language: str,
    now: datetime,
    completed_at: datetime | None = None,
) -> None:
    """Store a session's new state, if nobody else did since ``row`` was read (the optimistic
    lock): otherwise :class:`~sqlalchemy.orm.exc.StaleDataError`, and the caller tries again.
    ``row`` is updated in memory too, without becoming dirty."""
    params = {
        "row_id": row.id,
        "version": row.state_version,
        "state": state,
        "status": status,
        "language": language,
        "updated_at": now,
        "completed_at": completed_at,
    }
    # The Core UPDATE on the Connection skips the ORM's unit of work: the hot path's cost.
    if s.connection().execute(_UPDATE_SESSION, params).rowcount != 1:
        raise StaleDataError(f"session {row.id} changed while this message was handled")
    for name, value in (
        ("state", state),
        ("status", status),
        ("language", language),
        ("updated_at", now),
        ("state_version", row.state_version + 1),
        ("completed_at", completed_at or row.completed_at),
    ):
        set_committed_value(row, name, value)


_INSERT_SESSION = insert(SessionRow).returning(SessionRow.id)


def insert_session(s: Session, **values: Any) -> int:
    """A new session row; its id."""
    session_id: int = (
        s.connection().execute(_INSERT_SESSION, {"state_version": 1} | values).scalar_one()
    )
    return session_id


_TOUCH_ADDRESS = (
    update(Address)
    .where(Address.id == bindparam("address_id"))
    .values(last_inbound_at=bindparam("at"))
)


def touch_address(s: Session, address: Address, at: datetime) -> None:
    """The citizen wrote from ``address`` at ``at`` (WhatsApp's window opens): on every
    inbound message, so the statement is built once.

    :class:`~sqlalchemy.orm.exc.StaleDataError` if the address is gone: FORGET erased it
    after this message was read and before it was written, and the message must not be
    stored under the erased contact (the caller tries again: it comes from someone new).
    """
    touched = s.connection().execute(_TOUCH_ADDRESS, {"address_id": address.id, "at": at})
    if touched.rowcount != 1:
        raise StaleDataError(f"address {address.id} was erased while this message was handled")
    set_committed_value(address, "last_inbound_at", at)


def update_columns(s: Session, obj: Contact | Address, **values: Any) -> None:
    """Write a few columns of a loaded contact or address at once (a Core UPDATE), and keep the
    object in memory in step without making it dirty."""
    model = type(obj)
    s.connection().execute(update(model).where(model.id == obj.id).values(**values))
    for name, value in values.items():
        set_committed_value(obj, name, value)


_SESSIONS_OF = (
    select(SessionRow)
    .where(SessionRow.contact_id == bindparam("contact_id"))
    .order_by(SessionRow.started_at, SessionRow.id)
)


def sessions_for_contact(s: Session, contact_id: int) -> list[SessionRow]:
    """All of the contact's sessions, oldest first."""
    return list(s.scalars(_SESSIONS_OF, {"contact_id": contact_id}))


def last_survey_of(s: Session, contact_id: int) -> str | None:
    """The survey id of the contact's most recent session."""
    return s.scalar(
        select(SurveyRow.slug)
        .join(SessionRow, SessionRow.survey_id == SurveyRow.id)
        .where(SessionRow.contact_id == contact_id)
        .order_by(SessionRow.updated_at.desc(), SessionRow.id.desc())
        .limit(1)
    )


@functools.cache
def _upsert_answer_stmt(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(AnswerRow)
    return stmt.on_conflict_do_update(
        index_elements=["session_id", "question_id"],
        set_={
            "value": stmt.excluded.value,
            "raw": stmt.excluded.raw,
            "how": stmt.excluded.how,
            "answered_at": stmt.excluded.answered_at,
        },
    )


def upsert_answer(
    s: Session,
    session_id: int,
    question_id: str,
    value: Any,
    raw: str | None,
    how: str,
    at: datetime,
) -> None:
    """Store the answer to ``question_id``, replacing an earlier one (a corrected answer)."""
    params = {
        "session_id": session_id,
        "question_id": question_id,
        "value": value,
        "raw": raw,
        "how": how,
        "answered_at": at,
    }
    s.connection().execute(_upsert_answer_stmt(_dialect(s)), params)


def answers_of(s: Session, session_id: int) -> list[AnswerRow]:
    """The session's answers in the order they were first given."""
    return list(
        s.scalars(
            select(AnswerRow).where(AnswerRow.session_id == session_id).order_by(AnswerRow.id)
        )
    )


def is_response() -> ColumnElement[bool]:
    """A session is a response once a question is answered (an invitation nobody answered
    is not one) or it is completed."""
    return or_(
        SessionRow.status == "completed",
        select(AnswerRow.id).where(AnswerRow.session_id == SessionRow.id).exists(),
    )


def _responses(
    slug: str, include_partial: bool, include_simulated: bool = False
) -> Sequence[ColumnElement[bool]]:
    where = [SurveyRow.slug == slug]
    where.append(is_response() if include_partial else SessionRow.status == "completed")
    if not include_simulated:
        where.append(SessionRow.simulated.is_(False))
    return where


def count_responses(s: Session, survey_slug: str, *, include_partial: bool = False) -> int:
    """Citizens' completed sessions (all of them with ``include_partial``) over every
    version; :func:`count_by_origin` counts the simulator's too."""
    stmt = (
        select(func.count(SessionRow.id))
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*_responses(survey_slug, include_partial))
    )
    return s.scalar(stmt) or 0


def count_by_origin(s: Session, survey_slug: str) -> tuple[int, int]:
    """Responses to a survey over every version (sessions with an answer, or completed):
    (citizens', the simulator's)."""
    stmt = (
        select(SessionRow.simulated, func.count(SessionRow.id))
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(SurveyRow.slug == survey_slug, is_response())
        .group_by(SessionRow.simulated)
    )
    counts = {bool(simulated): int(n) for simulated, n in s.execute(stmt)}
    return counts.get(False, 0), counts.get(True, 0)


def iter_responses(
    s: Session,
    slug: str,
    *,
    include_partial: bool = False,
    include_simulated: bool = False,
    batch_size: int = 500,
) -> Iterator[tuple[SessionRow, list[AnswerRow]]]:
    """Stream responses with their answers: one answers query per batch, flat memory."""
    stmt = (
        select(SessionRow)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*_responses(slug, include_partial, include_simulated))
        .order_by(SessionRow.id)
        .execution_options(yield_per=batch_size)
    )
    result = s.scalars(stmt)
    try:
        for batch in result.partitions():
            by_session: defaultdict[int, list[AnswerRow]] = defaultdict(list)
            for answer in s.scalars(
                select(AnswerRow)
                .where(AnswerRow.session_id.in_([row.id for row in batch]))
                .order_by(AnswerRow.id)
            ):
                by_session[answer.session_id].append(answer)
            for row in batch:
                yield row, by_session[row.id]
    finally:
        # A consumer that stops early must not leave a server-side cursor open.
        result.close()


# --- surveys ----------------------------------------------------------------------------


def store_survey_version(
    s: Session,
    slug: str,
    digest: str,
    source: str,
    title: Mapping[str, str],
    keywords: Sequence[str],
    closes_at: datetime | None,
    now: datetime,
) -> tuple[SurveyRow, bool]:
    """The row for this exact source (same digest), else a new one with the next version.

    Two processes loading *different* new sources of one slug at once: the second gets an
    ``IntegrityError`` on ``(slug, version)`` and should retry in a new transaction.
    """

    def by_digest() -> SurveyRow | None:
        return s.scalars(
            select(SurveyRow).where(SurveyRow.slug == slug, SurveyRow.digest == digest)
        ).one_or_none()

    existing = by_digest()
    if existing is not None:
        current = latest_survey(s, slug)
        if current is not None and current.id != existing.id:
            # The file went back to an earlier text: that version becomes current again.
            existing.loaded_at = now
        return existing, False
    version = (s.scalar(select(func.max(SurveyRow.version)).where(SurveyRow.slug == slug)) or 0) + 1
    row = s.scalars(
        _insert(s, SurveyRow)
        .values(
            slug=slug,
            version=version,
            digest=digest,
            source=source,
            title=dict(title),
            keywords=list(keywords),
            closes_at=closes_at,
            loaded_at=now,
        )
        .on_conflict_do_nothing(index_elements=["slug", "digest"])
        .returning(SurveyRow)
    ).first()
    if row is not None:
        return row, True
    existing = by_digest()  # another process stored the same source meanwhile
    if existing is None:  # pragma: no cover - the conflicting row was committed
        raise RuntimeError(f"survey {slug} vanished during insert")
    return existing, False


#: The current version of a survey is the one loaded last (a reverted file restores an old one).
_CURRENT_FIRST = (SurveyRow.loaded_at.desc(), SurveyRow.version.desc())


def latest_surveys(s: Session) -> list[SurveyRow]:
    """The current version of every survey, by slug."""
    ranked = select(
        SurveyRow.id,
        func.row_number().over(partition_by=SurveyRow.slug, order_by=_CURRENT_FIRST).label("rank"),
    ).subquery()
    return list(
        s.scalars(
            select(SurveyRow)
            .join(ranked, ranked.c.id == SurveyRow.id)
            .where(ranked.c.rank == 1)
            .order_by(SurveyRow.slug)
        )
    )


def latest_survey(s: Session, slug: str) -> SurveyRow | None:
    """The current version of ``slug``."""
    return s.scalars(
        select(SurveyRow).where(SurveyRow.slug == slug).order_by(*_CURRENT_FIRST).limit(1)
    ).first()


def all_versions(s: Session, slug: str) -> list[SurveyRow]:
    """Every stored version of ``slug``, oldest first."""
    return list(
        s.scalars(select(SurveyRow).where(SurveyRow.slug == slug).order_by(SurveyRow.version))
    )


def survey_by_id(s: Session, survey_id: int) -> SurveyRow | None:
    """One survey version by primary key (cached in the session's identity map)."""
    return s.get(SurveyRow, survey_id)


# --- settings and audit -----------------------------------------------------------------


def get_setting(s: Session, key: str) -> str | None:
    """The stored value of ``key``."""
    return s.scalar(select(Setting.value).where(Setting.key == key))


def set_setting(s: Session, key: str, value: str) -> None:
    """Store ``value`` under ``key``, replacing any earlier value."""
    stmt = _insert(s, Setting).values(key=key, value=value)
    s.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value})
    )


def settings_with_prefix(s: Session, prefix: str) -> list[tuple[str, str]]:
    """Every ``(key, value)`` whose key starts with ``prefix``."""
    stmt = (
        select(Setting.key, Setting.value)
        .where(Setting.key.startswith(prefix, autoescape=True))
        .order_by(Setting.key)
    )
    return [(key, value) for key, value in s.execute(stmt)]


def delete_settings(s: Session, keys: Collection[str]) -> None:
    """Remove the settings ``keys`` (those present)."""
    if keys:
        s.execute(delete(Setting).where(Setting.key.in_(sorted(keys))))


def init_setting(s: Session, key: str, value: str) -> str:
    """Store ``value`` under ``key`` unless set; return what is stored (first writer wins).

    For generated secrets such as the pseudonym key: two processes starting at once must
    end up with the same key.
    """
    s.execute(_insert(s, Setting).values(key=key, value=value).on_conflict_do_nothing())
    stored = get_setting(s, key)
    if stored is None:  # pragma: no cover - just inserted or already there
        raise RuntimeError(f"setting {key} vanished")
    return stored


def audit(
    s: Session,
    actor: str,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """Append to the audit log. ``subject`` must be a pseudonym, never a phone number."""
    if subject is not None and _PHONE_NUMBER.search(subject):
        raise ValueError("audit subject looks like a phone number; use a pseudonym")
    entry = AuditEntry(at=at, actor=actor, action=action, subject=subject, details=dict(details))
    s.add(entry)
    return entry
