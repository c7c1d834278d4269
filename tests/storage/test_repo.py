"""Repository functions on both engines."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from storage import repo
from storage.db import transaction
from storage.models import (
    Address,
    AnswerRow,
    AuditEntry,
    Base,
    Contact,
    Message,
    SessionRow,
    SurveyRow,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
PHONE = "+32470123456"


# --- helpers ----------------------------------------------------------------------------


def add_survey(s: Session, slug: str = "parks", digest: str = "a" * 64) -> SurveyRow:
    row, _ = repo.store_survey_version(
        s,
        slug=slug,
        digest=digest,
        source=f'id = "{slug}"\n# {digest}\n',
        title={"en": slug.title()},
        keywords=[slug.upper()],
        closes_at=None,
        now=NOW,
    )
    return row


def add_contact(s: Session, value: str = PHONE, channel: str = "sms") -> Contact:
    contact, _, _ = repo.find_or_create_contact(s, channel, value, NOW, language="nl")
    return contact


def add_session(
    s: Session, contact_id: int | None, survey_id: int, status: str = "active"
) -> SessionRow:
    row = SessionRow(
        contact_id=contact_id,
        survey_id=survey_id,
        respondent=f"resp-{contact_id}",
        channel="sms",
        language="nl",
        status=status,
        state={"at": "q1"},
        started_at=NOW,
        updated_at=NOW,
        completed_at=NOW if status == "completed" else None,
    )
    s.add(row)
    s.flush()
    return row


def inbound(
    s: Session, provider_id: str, text: str = "2", payload: Any = None, **extra: Any
) -> Message | None:
    message_id = repo.insert_inbound(
        s,
        channel="sms",
        address=PHONE,
        provider_id=provider_id,
        text=text,
        payload=payload,
        received_at=NOW,
        **extra,
    )
    return None if message_id is None else s.get(Message, message_id)


# --- messages ---------------------------------------------------------------------------


def test_redelivered_inbound_is_a_noop_and_the_transaction_survives(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as s:
        first = inbound(s, "SM1")
        assert first is not None
        assert (first.direction, first.status, first.kind, first.created_at) == (
            "in",
            "received",
            None,
            NOW,
        )
    with transaction(db) as s:
        assert inbound(s, "SM1", text="again") is None
        # Still usable: on PostgreSQL a raised IntegrityError would have aborted it.
        assert inbound(s, "SM2") is not None
        assert s.scalar(select(func.count(Message.id))) == 2
    with transaction(db) as s:
        texts = s.scalars(select(Message.text).order_by(Message.id)).all()
    assert texts == ["2", "2"]


def test_same_provider_id_on_another_channel_is_another_message(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as s:
        assert inbound(s, "42") is not None
        other = repo.insert_inbound(
            s,
            channel="telegram",
            address="81234",
            provider_id="42",
            text="hi",
            payload={"data": "q1:2"},
            received_at=NOW,
        )
        assert other is not None
        stored = s.get(Message, other)
        assert stored is not None
        assert stored.payload == {"data": "q1:2"}


def test_add_outbound_is_queued_and_due_now(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        contact = add_contact(s)
        message_id = repo.add_outbound(
            s,
            channel="sms",
            address=PHONE,
            text="Vraag 1",
            now=NOW,
            payload=[{"key": "1", "label": "Ja"}],
            contact_id=contact.id,
        )
        assert message_id > 0
    with transaction(db) as s:
        due = s.scalars(
            select(Message).where(Message.status == "queued", Message.next_attempt_at <= NOW)
        ).one()
    assert (due.direction, due.kind, due.attempts) == ("out", "reply", 0)
    assert due.payload == [{"key": "1", "label": "Ja"}]


# --- contacts ---------------------------------------------------------------------------


def test_find_or_create_contact(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        contact, address, created = repo.find_or_create_contact(s, "sms", PHONE, NOW, "fr")
        assert created
        assert (contact.language, contact.attributes, address.value) == ("fr", {}, PHONE)
    with transaction(db) as s:
        again, address_again, created_again = repo.find_or_create_contact(s, "sms", PHONE, NOW)
    assert not created_again
    assert (again.id, address_again.id) == (contact.id, address.id)


def test_concurrent_first_messages_make_one_contact(
    db: sessionmaker[Session], engine: Engine
) -> None:
    outcome: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with transaction(db) as s:
                contact, _, created = repo.find_or_create_contact(s, "sms", PHONE, NOW)
                outcome.append((contact.id, created))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with transaction(db) as s:
        first, _, created = repo.find_or_create_contact(s, "sms", PHONE, NOW)
        assert created
        thread = threading.Thread(target=second)
        thread.start()
        _wait_until_blocked(engine)
    thread.join(timeout=30)
    assert errors == []
    assert outcome == [(first.id, False)]
    with transaction(db) as s:
        assert s.scalar(select(func.count(Contact.id))) == 1


def _wait_until_blocked(engine: Engine) -> None:
    """Give the other thread time to run into our uncommitted row."""
    if engine.dialect.name != "postgresql":
        # SQLite: it waits in BEGIN IMMEDIATE (busy timeout); nothing to observe.
        time.sleep(0.2)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # A fresh transaction each time: pg_stat_activity is a per-transaction snapshot.
        with engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database() "
                    "AND query LIKE 'INSERT INTO addresses%'"
                )
            )
        if waiting:
            return
        time.sleep(0.01)
    pytest.fail("the second transaction never blocked on the address row")


# --- sessions ---------------------------------------------------------------------------


def test_at_most_one_active_session_per_contact(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        survey = add_survey(s)
        contact = add_contact(s)
        other = add_contact(s, "+32470999999")
        active = add_session(s, contact.id, survey.id)
        add_session(s, contact.id, survey.id, "completed")
        add_session(s, contact.id, survey.id, "abandoned")
        add_session(s, other.id, survey.id)
    with pytest.raises(IntegrityError), transaction(db) as s:
        add_session(s, contact.id, survey.id)
    with transaction(db) as s:
        found = repo.get_active_session(s, contact.id)
        assert found is not None
        assert found.id == active.id
        found.status = "completed"
    with transaction(db) as s:
        assert repo.get_active_session(s, contact.id) is None
        add_session(s, contact.id, survey.id)
        statuses = [row.status for row in repo.sessions_for_contact(s, contact.id)]
    assert sorted(statuses) == ["abandoned", "active", "completed", "completed"]


def test_concurrent_state_update_raises_stale_data(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        row = add_session(s, add_contact(s).id, add_survey(s).id)
        assert row.state_version == 1
    # Sessions keep their objects across commits (expire_on_commit=False): the engine's
    # state is read in one transaction and written in a later one, as a slow reply would.
    with db() as one, db() as two:
        mine = one.get(SessionRow, row.id)
        assert mine is not None
        one.commit()
        theirs = two.get(SessionRow, row.id)
        assert theirs is not None
        theirs.state = {"at": "q2"}
        two.commit()
        assert theirs.state_version == 2
        mine.state = {"at": "q3"}
        with pytest.raises(StaleDataError):
            one.commit()
    with transaction(db) as s:
        stored = s.get(SessionRow, row.id)
        assert stored is not None
        assert (stored.state, stored.state_version) == ({"at": "q2"}, 2)


def test_upsert_answer_replaces_a_corrected_answer(db: sessionmaker[Session]) -> None:
    later = NOW + timedelta(minutes=1)
    with transaction(db) as s:
        session = add_session(s, add_contact(s).id, add_survey(s).id)
        repo.upsert_answer(s, session.id, "q1", "bike", "2", "number", NOW)
        repo.upsert_answer(s, session.id, "q1", ["bus", "car"], "bus car", "label", later)
        repo.upsert_answer(s, session.id, "q2", None, None, "skip", later)
    with transaction(db) as s:
        answers = repo.answers_of(s, session.id)
        null_values = s.scalar(select(func.count()).where(AnswerRow.value.is_(None)))
    # One row per question: the corrected answer replaced the first.
    assert [(a.question_id, a.value, a.raw, a.how, a.answered_at) for a in answers] == [
        ("q1", ["bus", "car"], "bus car", "label", later),
        ("q2", None, None, "skip", later),
    ]
    assert null_values == 1  # a skipped answer is SQL NULL, not JSON null


# --- surveys ----------------------------------------------------------------------------


def test_survey_versions(db: sessionmaker[Session]) -> None:
    def store(slug: str, digest: str) -> tuple[SurveyRow, bool]:
        return repo.store_survey_version(
            s, slug, digest, f"# {digest}", {"en": slug}, ["K"], None, NOW
        )

    with transaction(db) as s:
        v1, created = store("parks", "a" * 64)
        assert (v1.version, created) == (1, True)
        same, created = store("parks", "a" * 64)
        assert (same.id, created) == (v1.id, False)
        v2, created = store("parks", "b" * 64)
        assert (v2.version, created) == (2, True)
        other, _ = store("bins", "a" * 64)
        assert other.version == 1
    with transaction(db) as s:
        latest = repo.latest_surveys(s)
        assert [(r.slug, r.version) for r in latest] == [("bins", 1), ("parks", 2)]
        newest = repo.latest_survey(s, "parks")
        assert newest is not None
        assert newest.id == v2.id
        by_id = repo.survey_by_id(s, v1.id)
        assert by_id is not None
        assert (by_id.title, by_id.keywords, by_id.loaded_at) == ({"en": "parks"}, ["K"], NOW)
        assert repo.latest_survey(s, "nope") is None


def test_count_and_iter_responses_batch_their_queries(
    db: sessionmaker[Session], engine: Engine
) -> None:
    with transaction(db) as s:
        v1 = add_survey(s)
        v2 = add_survey(s, digest="b" * 64)
        other = add_survey(s, slug="bins")
        ids = []
        for i in range(5):
            contact = add_contact(s, f"+3247000000{i}")
            row = add_session(s, contact.id, (v1, v2)[i % 2].id, "completed")
            repo.upsert_answer(s, row.id, "q1", i, str(i), "number", NOW)
            repo.upsert_answer(s, row.id, "q2", "yes", "ja", "label", NOW)
            ids.append(row.id)
        answering = add_session(s, add_contact(s, "+32470999998").id, v1.id)
        repo.upsert_answer(s, answering.id, "q1", 1, "1", "number", NOW)  # still answering
        add_session(s, add_contact(s, "+32470999996").id, v1.id)  # invited, never answered
        add_session(s, add_contact(s, "+32470999997").id, other.id, "completed")

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with transaction(db) as s:
            assert repo.count_responses(s, "parks") == 5
            # An invitation nobody answered is not a response.
            assert repo.count_responses(s, "parks", include_partial=True) == 6
            assert len(list(repo.iter_responses(s, "parks", include_partial=True))) == 6
            statements.clear()
            responses = list(repo.iter_responses(s, "parks", batch_size=2))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert [row.id for row, _ in responses] == ids
    assert all([a.question_id for a in answers] == ["q1", "q2"] for _, answers in responses)
    assert [answers[0].value for _, answers in responses] == [0, 1, 2, 3, 4]
    # One streaming query for the sessions, one answers query per batch of 2: no N+1.
    assert len(statements) == 1 + 3


# --- settings and audit -----------------------------------------------------------------


def test_settings(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        assert repo.get_setting(s, "pseudonym_key") is None
        assert repo.init_setting(s, "pseudonym_key", "first") == "first"
        assert repo.init_setting(s, "pseudonym_key", "second") == "first"
        repo.set_setting(s, "pseudonym_key", "rotated")
    with transaction(db) as s:
        assert repo.get_setting(s, "pseudonym_key") == "rotated"


def test_audit_refuses_phone_numbers(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        entry = repo.audit(s, "staff:ann", "export", "survey:parks", {"rows": 5}, NOW)
        with pytest.raises(ValueError, match="pseudonym"):
            repo.audit(s, "citizen", "forget", PHONE, {}, NOW)
    with transaction(db) as s:
        stored = s.get(AuditEntry, entry.id)
        assert stored is not None
        assert (stored.actor, stored.details, stored.at) == ("staff:ann", {"rows": 5}, NOW)


# --- FORGET -----------------------------------------------------------------------------


def _every_value(s: Session) -> list[str]:
    """Every cell of every table, as text (JSON serialized)."""
    cells = []
    for table in Base.metadata.sorted_tables:
        for row in s.execute(select(table)):
            for value in row:
                cells.append(json.dumps(value) if isinstance(value, dict | list) else str(value))
    return cells


def test_forget_contact_leaves_anonymous_answers_and_no_address(
    db: sessionmaker[Session],
) -> None:
    later = NOW + timedelta(hours=1)
    with transaction(db) as s:
        survey = add_survey(s)
        contact = add_contact(s)
        contact.attributes = {"district": "north"}
        contact.pending = {"kind": "forget"}
        bystander = add_contact(s, "+32470999999")
        done = add_session(s, contact.id, survey.id, "completed")
        active = add_session(s, contact.id, survey.id)
        repo.upsert_answer(s, done.id, "q1", "bike", "2", "number", NOW)
        repo.upsert_answer(s, active.id, "q1", "bus", "1", "number", NOW)
        # Stored before the contact is known, and quoting the number: must still go.
        inbound(s, "SM1", text=f"my number is {PHONE}", payload="btn")
        inbound(s, "SM2", text="FORGET", contact_id=contact.id)
        sent = s.get(
            Message,
            repo.add_outbound(
                s, channel="sms", address=PHONE, text="Q1", now=NOW, contact_id=contact.id
            ),
        )
        assert sent is not None
        sent.status = "failed"
        sent.error = f"The 'To' number {PHONE} is not a valid phone number."
        queued = repo.add_outbound(
            s, channel="sms", address=PHONE, text="Q2", now=NOW, contact_id=contact.id
        )
        repo.add_outbound(
            s, channel="sms", address="+32470999999", text="hi", now=NOW, contact_id=bystander.id
        )
        repo.audit(s, "citizen", "forget", done.respondent, {"survey": "parks"}, NOW)
        assert any(PHONE in cell for cell in _every_value(s))

    with transaction(db) as s:
        repo.forget_contact(s, contact.id, later)
        # The forgetting transaction keeps working with what it had loaded.
        assert s.get(SessionRow, active.id) is not None

    with transaction(db) as s:
        assert not any(PHONE in cell for cell in _every_value(s))
        tombstone = s.get(Contact, contact.id)
        assert tombstone is not None
        assert (tombstone.forgotten_at, tombstone.attributes, tombstone.pending) == (
            later,
            {},
            None,
        )
        assert tombstone.language is None
        assert s.scalars(select(Address.contact_id)).all() == [bystander.id]
        sessions = s.scalars(select(SessionRow).order_by(SessionRow.id)).all()
        assert [(r.contact_id, r.status) for r in sessions] == [
            (None, "completed"),
            (None, "abandoned"),
        ]
        assert sessions[0].respondent == done.respondent  # exports still group by respondent
        assert len(s.scalars(select(AnswerRow)).all()) == 2
        assert repo.count_responses(s, "parks") == 1
        cancelled = s.get(Message, queued)
        assert cancelled is not None
        assert (cancelled.status, cancelled.next_attempt_at) == ("failed", None)
        assert s.scalar(select(func.count()).where(Message.address.is_not(None))) == 1
        # A provider redelivering the old message is still recognised.
        assert inbound(s, "SM1") is None
        # Writing from the number again starts afresh.
        fresh, _, created = repo.find_or_create_contact(s, "sms", PHONE, later)
        assert created
        assert fresh.id != contact.id
