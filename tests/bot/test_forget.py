"""What FORGET erases, column by column, from the registry of personal columns
(:mod:`storage.personal`): every column of every table is classified, and every personal
column of a citizen's rows is erased as the registry says, on both engines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversation import router as conv
from bot.service import Service
from messages import Address, InboundMessage
from storage import repo
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import (
    AuditEntry,
    Base,
    Contact,
    ContactImport,
    Message,
    PushRecipient,
    PushRow,
)
from storage.personal import NOT_PERSONAL, PERSONAL, Erasure
from tests.bot.conftest import Clock

DOCS = Path(__file__).parents[2] / "docs"
PHONE = "+32470123456"
CHAT = "7319826405"
FREE_TEXT = "My neighbour Jan Peeters drives it"
Row = Mapping[str, Any]
EMPTY: tuple[Any, ...] = (None, {}, [], "")


def test_every_column_of_every_table_is_classified_once() -> None:
    tables = {
        table.name: {c.name for c in table.columns} for table in Base.metadata.tables.values()
    }
    classified = {
        name: set(PERSONAL.get(name, {})) | set(NOT_PERSONAL.get(name, {}))
        for name in set(PERSONAL) | set(NOT_PERSONAL)
    }
    assert classified == tables
    for name in PERSONAL:
        assert not set(PERSONAL[name]) & set(NOT_PERSONAL.get(name, {})), name


def test_the_docs_list_every_personal_column() -> None:
    text = (DOCS / "conversation.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([a-z_]+\.[a-z_*]+)`", text))
    # A table whose rows are deleted is listed as a whole: `addresses.*`.
    wanted = {
        f"{table}.*" if erasure is Erasure.DELETED else f"{table}.{column}"
        for table, columns in PERSONAL.items()
        for column, erasure in columns.items()
    }
    assert wanted - listed == set()


# --- every personal column, erased ------------------------------------------------------------


def _say(service: Service, clock: Clock, text: str, n: list[int]) -> None:
    n[0] += 1
    service.receive(InboundMessage(Address("sms", PHONE), text, f"SM{n[0]:032x}", clock()))


def _citizen(db: sessionmaker[Session], service: Service, clock: Clock) -> int:
    """A citizen with a value in every personal column; their contact id."""
    n = [0]
    for text in (
        "hello",
        "STOP",
        "START",
        "OTHER",
        "yes",
        "EVERY",
        "1",
        "1,2",
        "no",
        FREE_TEXT,
        "4",
        "44",
    ):
        _say(service, clock, text, n)
        clock.advance(timedelta(seconds=5))
    with transaction(db) as s:
        found = repo.find_contact(s, "sms", PHONE)
        assert found is not None
        contact = found[0]
        contact.language, contact.timezone = "nl", "Europe/Brussels"
        contact.attributes, contact.tags = {"name": "Jan Peeters"}, ["panel-2026"]
        contact.pending = {"kind": "switch", "survey": "other"}
        # A second address, and what the dispatcher records for a Telegram message.
        s.add(AddressRow(contact_id=contact.id, channel="telegram", value=CHAT, created_at=clock()))
        last = s.scalars(
            select(Message).where(Message.direction == "out").order_by(Message.id.desc())
        ).first()
        assert last is not None
        last.provider_id, last.error = f"{CHAT}:17", f"21211 The number {PHONE} is not valid"
        push = PushRow(
            survey_slug="every-type",
            kind="invitation",
            status="sending",
            scheduled_at=clock(),
            created_at=clock(),
            created_by="staff",
            audience={},
            channels=["sms"],
            timezone="Europe/Brussels",
            rate_per_second=1.0,
        )
        s.add(push)
        s.flush()
        s.add(
            PushRecipient(
                push_id=push.id,
                contact_id=contact.id,
                channel="sms",
                address=PHONE,
                language="en",
                status="invited",
                due_at=clock(),
            )
        )
        data = f"address,district\n{PHONE},north\n".encode()
        s.add(
            ContactImport(
                status="checked",
                created_by="staff:ana@city.example",
                created_at=clock(),
                updated_at=clock(),
                data=data,
                digest=hashlib.sha256(data).hexdigest(),
                lines=2,
                line=2,
                problems=[],
                problem_count=0,
            )
        )
        return contact.id


def _rows_of(s: Session, service: Service, contact_id: int) -> dict[str, dict[int, Row]]:
    """Every row of the citizen, by table and id."""
    tables: Mapping[str, Table] = Base.metadata.tables
    sessions = tables["sessions"]
    session_ids = list(s.scalars(select(sessions.c.id).where(sessions.c.contact_id == contact_id)))
    where = {
        "contacts": tables["contacts"].c.id == contact_id,
        "addresses": tables["addresses"].c.contact_id == contact_id,
        "sessions": sessions.c.contact_id == contact_id,
        "answers": tables["answers"].c.session_id.in_(session_ids),
        "messages": tables["messages"].c.contact_id == contact_id,
        "push_recipients": tables["push_recipients"].c.contact_id == contact_id,
        "audit_log": tables["audit_log"].c.subject == service.pseudonym(s, contact_id),
        # A contacts file waiting in the console holds them (and others): it goes whole.
        "contact_imports": tables["contact_imports"].c.data.is_not(None),
    }
    assert set(where) == set(PERSONAL), "a new table with personal columns: select its rows"
    return {
        name: {
            row["id"]: dict(row) for row in s.execute(select(tables[name]).where(cond)).mappings()
        }
        for name, cond in where.items()
    }


def _reload(s: Session, before: dict[str, dict[int, Row]]) -> dict[str, dict[int, Row]]:
    tables = Base.metadata.tables
    return {
        name: {
            row["id"]: dict(row)
            for row in s.execute(
                select(tables[name]).where(tables[name].c.id.in_(list(rows)))
            ).mappings()
        }
        for name, rows in before.items()
    }


def _free_text_removed(table: str, row: Row, value: Any, free: set[str]) -> Any:
    """What a FREE_TEXT column should hold after FORGET."""
    if table == "answers":
        return None if row["question_id"] in free else value
    assert table == "sessions"
    answers = {q: None if q in free else v for q, v in value["answers"].items()}
    return {**value, "answers": answers}


def _check(erasure: Erasure, table: str, column: str, row: Row, after: Row | None) -> bool:
    """Whether ``row``'s ``column`` is erased as ``erasure`` says; whether it changed."""
    before = row[column]
    if erasure is Erasure.DELETED:
        assert after is None, (table, row["id"])
        return True
    assert after is not None, (table, row["id"])
    value = after[column]
    checks: dict[Erasure, Callable[[], Any]] = {
        Erasure.CLEARED: lambda: value in (*EMPTY, repo.FORGOTTEN),
        Erasure.UNLINKED: lambda: value is None,
        Erasure.REPLACED: lambda: value not in EMPTY and value != before,
        Erasure.FREE_TEXT: lambda: (
            value == _free_text_removed(table, row, before, {"why_unhappy", "remark"})
        ),
        Erasure.IF_NAMING: lambda: (
            value == (None if before and (CHAT in before or PHONE[1:] in before) else before)
        ),
    }
    assert checks[erasure](), (table, column, before, value)
    return bool(value != before)


@pytest.mark.parametrize(
    ("table", "column", "erasure"),
    [(t, c, e) for t, columns in PERSONAL.items() for c, e in columns.items()],
)
def test_forget_erases_every_personal_column(
    db: sessionmaker[Session],
    service: Service,
    clock: Clock,
    table: str,
    column: str,
    erasure: Erasure,
) -> None:
    contact_id = _citizen(db, service, clock)
    with transaction(db, read_only=True) as s:
        before = _rows_of(s, service, contact_id)[table]
    values = [row[column] for row in before.values()]
    # The citizen has something in this column, or the test would prove nothing.
    assert erasure is Erasure.DELETED or any(v not in EMPTY for v in values), values
    assert before
    with transaction(db) as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None
        service.forget(s, contact, clock())
    with transaction(db, read_only=True) as s:
        after = _reload(s, {table: before})[table]
    changed = [_check(erasure, table, column, row, after.get(i)) for i, row in before.items()]
    assert any(changed)  # the column held the person, and FORGET took it
    if erasure in (Erasure.FREE_TEXT, Erasure.IF_NAMING):
        assert not all(changed)  # ... and kept what is not theirs to take


def test_forget_leaves_no_audit_entry_under_the_old_pseudonym(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    contact_id = _citizen(db, service, clock)
    with transaction(db) as s:
        pseudonym = service.pseudonym(s, contact_id)
        contact = s.get(Contact, contact_id)
        assert contact is not None
        service.forget(s, contact, clock())
    with transaction(db, read_only=True) as s:
        entries = s.execute(select(AuditEntry.action, AuditEntry.subject).order_by(AuditEntry.id))
        seen = [(action, subject) for action, subject in entries if action != "consultation loaded"]
    # Still readable as one story, under the tombstone's name.
    assert seen == [
        ("opted out", f"contact:{contact_id}"),
        ("opted in", f"contact:{contact_id}"),
        ("contact erased", f"contact:{contact_id}"),
    ]
    assert pseudonym not in {subject for _, subject in seen}


def test_a_message_read_before_forget_and_written_after_is_not_stored_under_the_erased(
    db: sessionmaker[Session], service: Service, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    contact_id = _citizen(db, service, clock)
    decide = conv.handle

    def erased_meanwhile(ctx: conv.Context, text: str, payload: str | None) -> Any:
        # The message is read and decided; FORGET (from staff, or the citizen's YES handled
        # by another worker) commits before it is written.
        monkeypatch.setattr(conv, "handle", decide)
        with transaction(db) as s:
            contact = s.get(Contact, contact_id)
            assert contact is not None
            service.forget(s, contact, clock())
        return decide(ctx, text, payload)

    monkeypatch.setattr(conv, "handle", erased_meanwhile)
    _say(service, clock, "HELP", [100])
    with transaction(db, read_only=True) as s:
        rows = s.execute(
            select(Message.contact_id).where(Message.address == PHONE).distinct()
        ).all()
        contact = s.get(Contact, contact_id)
        assert contact is not None
        assert contact.forgotten_at is not None
    # Stored, and answered, as coming from someone new: never under the erased contact.
    assert rows
    assert contact_id not in {row.contact_id for row in rows}
