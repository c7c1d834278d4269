"""The service on both engines: what one inbound message writes, privacy, opt-out, versions.

Every test drives :class:`bot.service.Service` with a fixed clock and ``InboundMessage``s,
then reads the rows back, the way a webhook and the staff's export would see them.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.service import PSEUDONYM_SETTING, Received, Service, read_survey_sources
from messages import Address, InboundMessage
from storage import repo
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import AnswerRow, AuditEntry, Contact, Message, SessionRow, Setting, SurveyRow
from tests.bot.conftest import Clock

FIXED = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
PHONE = "+32470123456"
OTHER_PHONE = "+32470999888"
FIXTURES = Path(__file__).parent / "fixtures"
SURVEYS = [str(FIXTURES / "every-type.toml"), str(FIXTURES / "other.toml")]
#: Provider ids are unique per test run; a redelivery reuses one on purpose.
_provider_ids = itertools.count(1)


@dataclass
class Citizen:
    """One address talking to one service; every message gets a fresh provider id."""

    service: Service
    clock: Clock
    address: Address

    def send(
        self,
        text: str,
        *,
        payload: str | None = None,
        provider_id: str | None = None,
        simulated: bool = False,
    ) -> Received:
        msg = InboundMessage(
            self.address,
            text,
            provider_id or f"in-{next(_provider_ids)}",
            self.clock(),
            payload,
        )
        return self.service.receive(msg, simulated=simulated)

    def texts(self, text: str, **kwargs: Any) -> list[str]:
        """Send ``text``; the replies' texts."""
        return [out.text for out in self.send(text, **kwargs).outgoing]

    def conversation(self, *lines: str) -> None:
        for line in lines:
            self.send(line)


@pytest.fixture
def clock() -> Clock:
    # The module's own moment; the service (tests/bot/conftest.py) runs on this clock.
    return Clock(FIXED)


@pytest.fixture
def citizen(service: Service, clock: Clock) -> Citizen:
    return Citizen(service, clock, Address("sms", PHONE))


def survey_text(
    *,
    slug: str = "poll",
    keyword: str = "POLL",
    closes_at: datetime | None = None,
    questions: tuple[tuple[str, str], ...] = (("first", "First?"), ("second", "Second?")),
    intro: str | None = None,
) -> str:
    """A small yes/no consultation as TOML."""
    lines = [
        f'id = "{slug}"',
        f'title = {{ en = "{slug.title()}" }}',
        'languages = ["en"]',
        f'keywords = ["{keyword}"]',
    ]
    if closes_at is not None:
        lines.append(f"closes_at = {closes_at.isoformat()}")
    if intro is not None:
        lines.append(f'intro = {{ en = "{intro}" }}')
    for qid, text in questions:
        lines += [
            "",
            "[[questions]]",
            f'id = "{qid}"',
            'type = "yesno"',
            f'text = {{ en = "{text}" }}',
        ]
    return "\n".join(lines) + "\n"


# --- reading rows back ----------------------------------------------------------------------


def message_counts(db: sessionmaker[Session]) -> dict[str, int]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(
            select(Message.direction, func.count(Message.id)).group_by(Message.direction)
        )
        counts = {"in": 0, "out": 0}
        counts.update({direction: count for direction, count in rows})
        return counts


def session_rows(db: sessionmaker[Session]) -> list[SessionRow]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(SessionRow).order_by(SessionRow.id)))


def answer_rows(db: sessionmaker[Session], session_id: int | None = None) -> list[AnswerRow]:
    with transaction(db, read_only=True) as s:
        stmt = select(AnswerRow).order_by(AnswerRow.id)
        if session_id is not None:
            stmt = stmt.where(AnswerRow.session_id == session_id)
        return list(s.scalars(stmt))


def outbound_rows(db: sessionmaker[Session]) -> list[Message]:
    with transaction(db, read_only=True) as s:
        return list(
            s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
        )


def address_rows(db: sessionmaker[Session]) -> list[AddressRow]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AddressRow).order_by(AddressRow.id)))


def contact_id_of(db: sessionmaker[Session], channel: str, value: str) -> int:
    with transaction(db, read_only=True) as s:
        found = s.scalar(
            select(AddressRow.contact_id).where(
                AddressRow.channel == channel, AddressRow.value == value
            )
        )
    assert found is not None, f"no contact for {channel}"
    return found


def cells_containing(engine: Engine, needle: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (table, column, row) of every table in the database whose value shows ``needle``.

    Reflected, not taken from the models: a table only the migrations know counts too.
    """
    metadata = MetaData()
    metadata.reflect(bind=engine)
    hits: list[tuple[str, str, dict[str, Any]]] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None and needle in (
                        value if isinstance(value, str) else repr(value)
                    ):
                        hits.append((table.name, column, dict(row)))
    return hits


# --- one inbound message, one transaction ----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "again"),
    [
        pytest.param("EVERY", "EVERY", id="keyword"),
        pytest.param("hello", "hello", id="unmatched"),
        pytest.param("INFO", "INFO", id="command"),
        # The provider id decides, not the text: a retry carries the same id.
        pytest.param("EVERY", "STOP", id="same-id-other-text"),
    ],
)
def test_a_redelivered_inbound_changes_nothing(
    citizen: Citizen, db: sessionmaker[Session], first: str, again: str
) -> None:
    received = citizen.send(first, provider_id="SM-1")
    assert not received.duplicate
    assert received.outgoing
    before = (message_counts(db), len(session_rows(db)), address_rows(db)[0].opted_out_at)

    redelivered = citizen.send(again, provider_id="SM-1")

    assert redelivered.duplicate
    assert redelivered.outgoing == ()
    after = (message_counts(db), len(session_rows(db)), address_rows(db)[0].opted_out_at)
    assert after == before
    assert after[0] == {"in": 1, "out": len(received.outgoing)}


def test_the_same_provider_id_on_another_channel_is_a_new_message(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    sms = Citizen(service, clock, Address("sms", PHONE))
    telegram = Citizen(service, clock, Address("telegram", "81234"))
    assert not sms.send("hello", provider_id="42").duplicate
    second = telegram.send("hello", provider_id="42")
    assert not second.duplicate
    assert second.outgoing
    assert message_counts(db)["in"] == 2


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(["EVERY", "green", "1,3", "yes", "4", "42", "12", "SKIP"], id="complete"),
        pytest.param(["hello", "hello", "EVERY", "purple", "REPEAT", "INFO"], id="mixed"),
        pytest.param(["EVERY", "red", "OTHER", "YES", "no"], id="switch"),
        pytest.param(["STOP", "hi", "EVERY", "START"], id="opted-out"),
    ],
)
def test_each_inbound_writes_its_replies_to_the_outbox(
    citizen: Citizen, db: sessionmaker[Session], lines: list[str]
) -> None:
    for line in lines:
        before = message_counts(db)
        received = citizen.send(line)
        after = message_counts(db)
        assert after == {"in": before["in"] + 1, "out": before["out"] + len(received.outgoing)}, (
            line
        )
    rows = outbound_rows(db)
    assert all(
        (r.status, r.channel, r.address, r.kind) == ("queued", "sms", PHONE, "reply") for r in rows
    )
    assert sorted(o.id for o in citizen.send("INFO").outgoing) == [
        r.id for r in outbound_rows(db)[len(rows) :]
    ]


def test_a_failure_mid_message_stores_neither_the_inbound_nor_its_replies(
    citizen: Citizen, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = repo.add_outbound
    calls: list[str] = []

    def fail_on_second(s: Session, **kwargs: Any) -> int:
        calls.append(kwargs["text"])
        if len(calls) == 2:
            raise RuntimeError("provider SDK exploded")
        return real(s, **kwargs)

    monkeypatch.setattr(repo, "add_outbound", fail_on_second)
    with pytest.raises(RuntimeError, match="exploded"):
        citizen.send("EVERY", provider_id="SM-9")  # intro + first question: two replies
    assert message_counts(db) == {"in": 0, "out": 0}
    assert session_rows(db) == []

    # The provider retries the same message; now it is handled, not taken for a duplicate.
    monkeypatch.setattr(repo, "add_outbound", real)
    retried = citizen.send("EVERY", provider_id="SM-9")
    assert not retried.duplicate
    assert [o.text for o in retried.outgoing] == ["Seven short questions.", "Favourite colour?"]
    assert message_counts(db) == {"in": 1, "out": 2}


# --- answers and completion -----------------------------------------------------------------


SMS_ANSWERS = [
    # (reply, question, value, raw, how)
    ("EVERY", None, None, None, None),
    ("green", "colour", "green", "green", "label"),
    ("car, 1", "transport", ["bus", "car"], "car, 1", "list"),
    ("2", "happy", False, "2", "number"),
    ("too late", "why_unhappy", "too late", "too late", "text"),
    ("4", "rating", 4, "4", "number"),
    ("42", "age", 42, "42", "number"),
    ("12,5", "km", 12.5, "12,5", "number"),
    ("SKIP", "remark", None, None, "skip"),
]

BUTTON_ANSWERS = [
    # (text, payload, question, value, raw, how): Telegram buttons carry the payload
    ("EVERY", None, None, None, None, None),
    ("Blue", "colour:blue", "colour", "blue", "colour:blue", "payload"),
    ("", "transport:foot,bike", "transport", ["bike", "foot"], "transport:foot,bike", "payload"),
    ("Yes", "happy:yes", "happy", True, "happy:yes", "payload"),
    ("5", "rating:5", "rating", 5, "rating:5", "payload"),
    ("seven", None, "age", 7, "seven", "word"),
    ("0.5 km", None, "km", 0.5, "0.5 km", "number"),
    ("Fine", None, "remark", "Fine", "Fine", "text"),
]


def test_answers_are_stored_with_value_raw_and_how(
    citizen: Citizen, db: sessionmaker[Session]
) -> None:
    for reply, *_ in SMS_ANSWERS:
        citizen.send(reply)
    stored = [(a.question_id, a.value, a.raw, a.how) for a in answer_rows(db)]
    assert stored == [(q, v, raw, how) for _, q, v, raw, how in SMS_ANSWERS if q is not None]
    by_question = {a.question_id: a.value for a in answer_rows(db)}
    assert type(by_question["age"]) is int
    assert type(by_question["km"]) is float
    assert type(by_question["happy"]) is bool


def test_button_answers_are_stored_with_their_payload(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    telegram = Citizen(service, clock, Address("telegram", "81234"))
    for text, payload, *_ in BUTTON_ANSWERS:
        telegram.send(text, payload=payload)
    stored = [(a.question_id, a.value, a.raw, a.how) for a in answer_rows(db)]
    assert stored == [(q, v, raw, how) for _, _, q, v, raw, how in BUTTON_ANSWERS if q is not None]
    assert session_rows(db)[0].status == "completed"


def test_a_completed_session(citizen: Citizen, clock: Clock, db: sessionmaker[Session]) -> None:
    citizen.send("EVERY")
    for reply in ["green", "1", "yes", "4", "42", "12"]:
        clock.advance(timedelta(minutes=1))
        citizen.send(reply)
        assert session_rows(db)[0].status == "active"
        assert session_rows(db)[0].completed_at is None
    clock.advance(timedelta(minutes=1))
    assert citizen.texts("SKIP") == ["Thanks!"]

    (row,) = session_rows(db)
    assert (row.status, row.channel, row.language) == ("completed", "sms", "en")
    assert (row.started_at, row.completed_at, row.updated_at) == (
        FIXED,
        FIXED + timedelta(minutes=7),
        FIXED + timedelta(minutes=7),
    )
    assert row.state["status"] == "completed"
    assert row.state["current"] is None
    # Taking part again is refused politely and starts nothing.
    assert citizen.texts("EVERY") == ["You already took part in Every type. Thank you!"]
    assert len(session_rows(db)) == 1


# --- pseudonyms -----------------------------------------------------------------------------

PSEUDONYM = re.compile(r"r-[0-9a-f]{16}")


def test_the_pseudonym_is_stable_per_contact_and_never_the_address(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    alice = Citizen(service, clock, Address("sms", PHONE))
    bob = Citizen(service, clock, Address("sms", OTHER_PHONE))
    alice.conversation("EVERY", "red", "OTHER", "YES")  # two sessions for alice
    bob.conversation("EVERY")
    first, second, third = session_rows(db)
    assert first.respondent == second.respondent
    assert third.respondent != first.respondent
    for row in (first, third):
        assert PSEUDONYM.fullmatch(row.respondent), row.respondent
        for phone in (PHONE, OTHER_PHONE):
            assert phone.lstrip("+")[-6:] not in row.respondent


def test_the_generated_pseudonym_key_is_stored_once_and_shared(
    db: sessionmaker[Session], clock: Clock
) -> None:
    first = Service(db, clock=clock)
    first.load_surveys(read_survey_sources(SURVEYS))
    Citizen(first, clock, Address("sms", PHONE)).conversation("EVERY", "red", "1", "yes")
    # A second process (a restart, another web worker) on the same database.
    second = Service(db, clock=clock)
    Citizen(second, clock, Address("sms", PHONE)).conversation("OTHER", "YES")
    Citizen(second, clock, Address("sms", OTHER_PHONE)).conversation("OTHER")

    alice_1, alice_2, bob = session_rows(db)
    assert alice_1.respondent == alice_2.respondent != bob.respondent
    with transaction(db, read_only=True) as s:
        settings = s.execute(select(Setting.key, Setting.value)).all()
        assert first.pseudonym(s, alice_1.contact_id or 0) == second.pseudonym(
            s, alice_1.contact_id or 0
        )
    assert [key for key, _ in settings] == [PSEUDONYM_SETTING]
    assert re.fullmatch(r"[0-9a-f]{64}", settings[0][1])


@pytest.mark.parametrize(
    ("key_a", "key_b", "same"),
    [
        ("city-secret", "city-secret", True),
        ("city-secret", "other-secret", False),
        ("city-secret", "", False),
    ],
)
def test_a_configured_pseudonym_key_is_deterministic(
    db: sessionmaker[Session], clock: Clock, key_a: str, key_b: str, same: bool
) -> None:
    a = Service(db, clock=clock, pseudonym_key=key_a)
    b = Service(db, clock=clock, pseudonym_key=key_b)
    a.load_surveys(read_survey_sources(SURVEYS))
    Citizen(a, clock, Address("sms", PHONE)).send("EVERY")
    (row,) = session_rows(db)
    with transaction(db) as s:
        assert a.pseudonym(s, row.contact_id or 0) == row.respondent
        assert a.pseudonym(s, row.contact_id or 0) == a.pseudonym(s, row.contact_id or 0)
        assert (b.pseudonym(s, row.contact_id or 0) == row.respondent) is same
    # A configured key is used as is: nothing is generated into the database for it.
    with transaction(db, read_only=True) as s:
        stored = s.scalars(select(Setting.key)).all()
    assert stored == ([] if key_b else [PSEUDONYM_SETTING])


# --- FORGET ---------------------------------------------------------------------------------


def _forgotten(citizen: Citizen) -> None:
    """Take part in two consultations (one left half-way), then FORGET + YES."""
    citizen.conversation("OTHER", "yes")  # completed
    citizen.conversation("EVERY", "green", "1,2")  # active, two answers
    assert citizen.texts("FORGET") == [
        "Erase your data? Your choices stay, without your number; what you typed goes. Reply "
        "YES to erase or NO to keep it."
    ]
    assert citizen.texts("YES") == ["Your data has been erased. Goodbye."]


def test_forget_keeps_the_answers_anonymous(citizen: Citizen, db: sessionmaker[Session]) -> None:
    _forgotten(citizen)
    sessions = session_rows(db)
    assert [(r.contact_id, r.status) for r in sessions] == [
        (None, "completed"),
        (None, "abandoned"),
    ]
    for row in sessions:
        assert row.respondent.startswith("anon-"), row.respondent
    assert [(a.question_id, a.value) for a in answer_rows(db)] == [
        ("ok", True),
        ("colour", "green"),
        ("transport", ["bus", "bike"]),
    ]
    assert address_rows(db) == []
    with transaction(db, read_only=True) as s:
        (contact,) = s.scalars(select(Contact)).all()
        subjects = s.scalars(select(AuditEntry.subject)).all()
    assert contact.forgotten_at == FIXED
    assert (contact.language, contact.pending, contact.attributes) == (None, None, {})
    assert all(PHONE.lstrip("+") not in (subject or "") for subject in subjects)


def test_forget_then_no_keeps_everything(citizen: Citizen, db: sessionmaker[Session]) -> None:
    citizen.conversation("EVERY", "green", "FORGET")
    assert citizen.texts("NO") == ["OK, nothing was erased."]
    (row,) = session_rows(db)
    assert row.contact_id is not None
    assert PSEUDONYM.fullmatch(row.respondent)
    assert [a.value for a in address_rows(db)] == [PHONE]


def _hits(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    # Digits only: catches "+32…" as well as a provider's "32…" or "whatsapp:+32…".
    return cells_containing(engine, PHONE.lstrip("+"))


def test_after_forget_only_an_unsent_goodbye_may_hold_the_number(
    citizen: Citizen, engine: Engine
) -> None:
    citizen.send("hello")
    assert _hits(engine)  # the scan does see the number before
    _forgotten(citizen)
    for table, column, row in _hits(engine):
        # The goodbye has to reach the citizen; at most its address, while it waits.
        assert (table, column) == ("messages", "address"), (table, column, row)
        assert (row["direction"], row["status"], row["contact_id"]) == ("out", "queued", None)
        assert row["text"] == "Your data has been erased. Goodbye."


def test_after_forget_in_the_simulator_the_number_is_in_no_column_of_any_table(
    citizen: Citizen, engine: Engine
) -> None:
    # The simulator shows the goodbye instead of sending it, so nothing needs the address.
    for line in ("OTHER", "yes", "FORGET"):
        citizen.send(line, simulated=True)
    assert citizen.texts("YES", simulated=True) == ["Your data has been erased. Goodbye."]
    assert _hits(engine) == []


def test_after_forget_the_same_number_is_a_new_contact(
    citizen: Citizen, db: sessionmaker[Session]
) -> None:
    _forgotten(citizen)
    # Nothing links them to the old rows: the consultation starts afresh, not "already took part".
    assert citizen.texts("OTHER") == ["Is it OK?"]
    with transaction(db, read_only=True) as s:
        contacts = s.scalars(select(Contact).order_by(Contact.id)).all()
    assert [c.forgotten_at is None for c in contacts] == [False, True]
    sessions = session_rows(db)
    assert sessions[-1].contact_id == contacts[-1].id
    assert PSEUDONYM.fullmatch(sessions[-1].respondent)
    assert not any(r.respondent == sessions[-1].respondent for r in sessions[:-1])


# --- STOP and START -------------------------------------------------------------------------


def _add_address(db: sessionmaker[Session], contact_id: int, channel: str, value: str) -> None:
    """Link a second address to the contact, as a future account merge would."""
    with transaction(db) as s:
        s.add(AddressRow(contact_id=contact_id, channel=channel, value=value, created_at=FIXED))


@pytest.mark.parametrize("before_stop", [[], ["EVERY", "red"]], ids=["idle", "mid-survey"])
def test_stop_silences_every_address_until_start(
    citizen: Citizen,
    service: Service,
    clock: Clock,
    db: sessionmaker[Session],
    before_stop: list[str],
) -> None:
    citizen.conversation("hello", *before_stop)
    contact_id = contact_id_of(db, "sms", PHONE)
    _add_address(db, contact_id, "whatsapp", PHONE)
    whatsapp = Citizen(service, clock, Address("whatsapp", PHONE))

    clock.advance(timedelta(hours=1))
    assert citizen.texts("STOP") == [
        "You will get no more messages from us. Send START to join again."
    ]
    assert [a.opted_out_at for a in address_rows(db)] == [clock.now, clock.now]
    assert all(r.status != "active" for r in session_rows(db))

    clock.advance(timedelta(days=2))  # long enough for the daily help, which must not come
    for who, text in [(citizen, "hi"), (whatsapp, "1"), (citizen, "yes"), (whatsapp, "maybe")]:
        before = message_counts(db)
        assert who.send(text).outgoing == ()
        assert message_counts(db) == {"in": before["in"] + 1, "out": before["out"]}

    assert whatsapp.texts("START") == ["Welcome back! Send HELP for help."]
    assert [a.opted_out_at for a in address_rows(db)] == [None, None]
    assert citizen.texts("OTHER") == ["Is it OK?"]
    with transaction(db, read_only=True) as s:
        audit = s.execute(
            select(AuditEntry.action, AuditEntry.subject).order_by(AuditEntry.id)
        ).all()
        pseudonym = service.pseudonym(s, contact_id)
    citizen_actions = [
        (action, subject) for action, subject in audit if action != "consultation loaded"
    ]
    assert citizen_actions == [("opted out", pseudonym), ("opted in", pseudonym)]


def test_a_keyword_after_stop_asks_to_take_part_and_opts_in_again(
    citizen: Citizen, db: sessionmaker[Session]
) -> None:
    # A Telegram link t.me/<bot>?start=EVERY arrives as the keyword too: the citizen asked.
    citizen.conversation("STOP")
    replies = citizen.texts("EVERY")
    assert replies[0] == "Seven short questions."
    assert [a.opted_out_at for a in address_rows(db)] == [None]
    assert [r.status for r in session_rows(db)] == ["active"]


def test_stop_mid_survey_abandons_it_and_keeps_the_answers(
    citizen: Citizen, db: sessionmaker[Session]
) -> None:
    citizen.conversation("EVERY", "red", "bus", "STOP")
    (row,) = session_rows(db)
    assert (row.status, row.completed_at) == ("abandoned", None)
    assert [a.question_id for a in answer_rows(db)] == ["colour", "transport"]


# --- the unprompted help, once a day ---------------------------------------------------------

HELP = (
    "Reply with the number of your answer. REPEAT: ask again, SKIP: skip, LANG: language, "
    "INFO: your data, STOP: no more messages."
)


@pytest.mark.parametrize(
    ("after", "helped"),
    [
        (timedelta(0), False),
        (timedelta(minutes=5), False),
        (timedelta(hours=23), False),
        (timedelta(hours=23, minutes=59), False),
        (timedelta(hours=25), True),
        (timedelta(days=30), True),
    ],
)
def test_the_help_for_an_unmatched_message_comes_once_a_day(
    citizen: Citizen, clock: Clock, db: sessionmaker[Session], after: timedelta, helped: bool
) -> None:
    # One short message: it may well be going to an auto-responder.
    assert citizen.texts("hello") == ["To take part, send: EVERY, OTHER"]
    clock.advance(after)
    before = message_counts(db)["out"]
    replies = citizen.texts("hello?")
    assert replies == (["To take part, send: EVERY, OTHER"] if helped else [])
    assert message_counts(db)["out"] == before + len(replies)


def test_asking_for_help_always_answers(citizen: Citizen, clock: Clock) -> None:
    assert citizen.texts("hello") == ["To take part, send: EVERY, OTHER"]
    clock.advance(timedelta(minutes=1))
    assert citizen.texts("HELP") == [HELP, "To take part, send: EVERY, OTHER"]
    assert citizen.texts("HELP") == [HELP, "To take part, send: EVERY, OTHER"]


# --- a consultation that closes mid-session -------------------------------------------------


def test_a_survey_closing_mid_session_abandons_it_and_keeps_the_answers(
    service: Service, citizen: Citizen, clock: Clock, db: sessionmaker[Session]
) -> None:
    service.load_surveys([("poll.toml", survey_text(closes_at=FIXED + timedelta(days=1)))])
    assert citizen.texts("POLL") == ["First?"]
    assert citizen.texts("yes") == ["Second?"]

    clock.advance(timedelta(days=1, seconds=1))
    assert citizen.texts("no") == [
        "Sorry, this consultation is closed. Thank you for your interest."
    ]
    (row,) = session_rows(db)
    assert (row.status, row.completed_at, row.state["status"]) == ("abandoned", None, "abandoned")
    assert [(a.question_id, a.value) for a in answer_rows(db)] == [("first", True)]
    # The closed survey is not resumed and cannot be restarted.
    assert citizen.texts("POLL") == [
        "Sorry, this consultation is closed. Thank you for your interest."
    ]
    assert len(session_rows(db)) == 1
    assert len(answer_rows(db)) == 1


# --- survey versions ------------------------------------------------------------------------

V1 = survey_text(questions=(("first", "First?"), ("second", "Second (v1)?")))
V2 = survey_text(
    questions=(("first", "First?"), ("second", "Second (v2)?"), ("third", "Third (v2)?"))
)


def _versions(db: sessionmaker[Session]) -> list[tuple[int, str]]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(
            select(SurveyRow.version, SurveyRow.digest)
            .where(SurveyRow.slug == "poll")
            .order_by(SurveyRow.version)
        )
        return [(version, digest) for version, digest in rows]


def test_a_changed_survey_is_a_new_version_and_old_sessions_keep_theirs(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    (loaded,) = service.load_surveys([("poll.toml", V1)])
    assert loaded.version == 1
    early = Citizen(service, clock, Address("sms", PHONE))
    late = Citizen(service, clock, Address("sms", OTHER_PHONE))
    assert early.texts("POLL") == ["First?"]

    (loaded,) = service.load_surveys([("poll.toml", V2)])
    assert loaded.version == 2
    assert [v for v, _ in _versions(db)] == [1, 2]
    # Started on version 1: goes on with version 1's questions, and ends where it ends.
    assert early.texts("yes") == ["Second (v1)?"]
    assert early.texts("no") == ["Thank you for taking part!"]
    # New sessions use version 2.
    assert late.texts("POLL") == ["First?"]
    assert late.texts("yes") == ["Second (v2)?"]
    assert late.texts("yes") == ["Third (v2)?"]

    with transaction(db, read_only=True) as s:
        version_of = {
            session_id: version
            for session_id, version in s.execute(
                select(SessionRow.id, SurveyRow.version).join(
                    SurveyRow, SurveyRow.id == SessionRow.survey_id
                )
            )
        }
    early_row, late_row = session_rows(db)
    assert (version_of[early_row.id], early_row.status) == (1, "completed")
    assert (version_of[late_row.id], late_row.status) == (2, "active")


@pytest.mark.parametrize(
    "reload",
    [
        pytest.param(V1, id="identical"),
        pytest.param(V1 + "\n", id="trailing-newline-is-a-change"),
    ],
)
def test_loading_a_file_again(service: Service, db: sessionmaker[Session], reload: str) -> None:
    service.load_surveys([("poll.toml", V1)])
    (again,) = service.load_surveys([("poll.toml", reload)])
    changed = reload != V1
    assert again.version == (2 if changed else 1)
    assert [v for v, _ in _versions(db)] == ([1, 2] if changed else [1])


def test_reverting_a_survey_file_makes_the_reverted_text_live(
    service: Service, clock: Clock
) -> None:
    service.load_surveys([("poll.toml", V1)])
    clock.advance(timedelta(minutes=5))
    service.load_surveys([("poll.toml", V2)])
    clock.advance(timedelta(minutes=5))
    (restored,) = service.load_surveys([("poll.toml", V1)])  # staff undo the change
    assert restored.version == 1
    citizen = Citizen(service, clock, Address("sms", PHONE))
    citizen.conversation("POLL", "yes")
    assert citizen.texts("yes") == ["Thank you for taking part!"]  # v1 has two questions


# --- simulated replies ----------------------------------------------------------------------

LONG_INTRO = " ".join(["A long introduction."] * 10)  # 209 GSM-7 characters: 2 segments


@pytest.mark.parametrize(
    ("channel", "value", "simulated", "status", "segments"),
    [
        ("sms", PHONE, True, "simulated", [2, 1]),
        ("whatsapp", PHONE, True, "simulated", [None, None]),
        ("telegram", "81234", True, "simulated", [None, None]),
        ("sms", PHONE, False, "queued", [None, None]),
    ],
)
def test_simulated_replies_are_shown_never_sent(
    service: Service,
    clock: Clock,
    db: sessionmaker[Session],
    channel: str,
    value: str,
    simulated: bool,
    status: str,
    segments: list[int | None],
) -> None:
    service.load_surveys(
        [("long.toml", survey_text(slug="long", keyword="LONG", intro=LONG_INTRO))]
    )
    citizen = Citizen(service, clock, Address(channel, value))
    received = citizen.send("LONG", simulated=simulated)
    rows = outbound_rows(db)
    assert [r.id for r in rows] == [o.id for o in received.outgoing]
    assert [r.text for r in rows] == [LONG_INTRO, "First?"]
    assert [(r.status, r.segments) for r in rows] == [(status, n) for n in segments]


def test_simulated_and_real_replies_do_not_mix(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    citizen = Citizen(service, clock, Address("sms", PHONE))
    citizen.send("EVERY", simulated=True)
    citizen.send("red")
    assert [r.status for r in outbound_rows(db)] == ["simulated", "simulated", "queued"]


def test_logs_never_carry_the_number(citizen: Citizen, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    citizen.conversation("hello", "OTHER", "yes", "INFO", "STOP", "START", "FORGET", "YES")
    citizen.send("again", provider_id="same")
    citizen.send("again", provider_id="same")  # a redelivery is logged too
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "inbound on sms for contact" in logged
    digits = PHONE.lstrip("+")
    assert digits[-4:] not in logged  # not even the tail of it


# --- Telegram keyboards, WhatsApp templates, races -------------------------------------------


def _mark_sent(db: sessionmaker[Session], provider_ids: dict[str, str]) -> None:
    """Record sends as the dispatcher would: ``text`` -> provider id."""
    with transaction(db) as s:
        for row in s.scalars(select(Message).where(Message.direction == "out")):
            if row.text in provider_ids:
                row.status, row.provider_id = "sent", provider_ids[row.text]


def test_a_typed_answer_removes_the_buttons_of_the_question_it_answers(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    chat = Citizen(service, clock, Address("telegram", "4242"))
    chat.conversation("EVERY")
    _mark_sent(db, {"Seven short questions.": "4242:10", "Favourite colour?": "4242:11"})
    chat.conversation("hmm")  # a re-ask: the buttons stay, the question is still open
    assert [m.kind for m in outbound_rows(db)].count("keyboard_remove") == 0
    chat.conversation("red")
    removals = [m.payload for m in outbound_rows(db) if m.kind == "keyboard_remove"]
    assert removals == [{"chat": "4242", "message_id": "11"}]
    chat.conversation("bus")  # the next question's message was not sent yet: nothing to do
    assert [m.kind for m in outbound_rows(db)].count("keyboard_remove") == 1


def _invite_on_whatsapp(service: Service, clock: Clock, db: sessionmaker[Session]) -> Citizen:
    """An invitation sent as a template: the dispatcher holds its first question."""
    service.start_survey(Address("whatsapp", PHONE), "every-type")
    with transaction(db) as s:
        intro, question = s.scalars(select(Message).order_by(Message.id))
        assert (intro.kind, question.kind) == ("push", "push")
        assert intro.payload["invitation"]["survey"] == "every-type"
        intro.status, intro.provider_id = "sent", "SM-template"
        question.status = "held"
    return Citizen(service, clock, Address("whatsapp", PHONE))


def test_a_reply_to_an_invitation_template_releases_the_question_and_is_no_answer(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    citizen = _invite_on_whatsapp(service, clock, db)
    assert citizen.send("OK").outgoing == ()
    question = outbound_rows(db)[1]
    assert (question.text, question.status) == ("Favourite colour?", "queued")
    assert answer_rows(db) == []
    citizen.conversation("red")
    assert [(a.question_id, a.value) for a in answer_rows(db)] == [("colour", "red")]


def test_a_command_instead_of_a_reply_supersedes_what_was_held(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    citizen = _invite_on_whatsapp(service, clock, db)
    assert citizen.texts("STOP") == [
        "You will get no more messages from us. Send START to join again."
    ]
    question = outbound_rows(db)[1]
    assert (question.status, question.error) == ("failed", "superseded: the citizen wrote first")


def test_an_invitation_to_the_staff_test_phone_is_never_a_template(
    service: Service, db: sessionmaker[Session]
) -> None:
    service.start_survey(Address("whatsapp", PHONE), "every-type", simulated=True)
    rows = outbound_rows(db)
    assert rows
    assert [m.kind for m in rows] == ["reply"] * len(rows)
    assert not any("invitation" in (m.payload or {}) for m in rows)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_messages_from_one_citizen_at_once_are_both_handled(
    service: Service, clock: Clock, db: sessionmaker[Session]
) -> None:
    # Without the retry, the later commit loses the optimistic lock or the one-active-session
    # index and the webhook answers 500 (the provider would retry, late and out of order).
    import threading

    errors: list[BaseException] = []
    for round_ in range(8):
        citizen = Citizen(service, clock, Address("sms", f"+3247055{round_:04d}"))
        citizen.conversation("EVERY")
        barrier = threading.Barrier(2)

        def send(text: str, who: Citizen = citizen, gate: threading.Barrier = barrier) -> None:
            gate.wait()
            try:
                who.send(text)
            except BaseException as exc:  # the test reports any failure
                errors.append(exc)

        # Both answer the same question of the same session.
        threads = [threading.Thread(target=send, args=(t,)) for t in ("red", "blue")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert message_counts(db)["in"] == 24
    # One of the two answered the colour; the other answered the next question (or was
    # re-asked): nothing was lost and nothing answered twice.
    assert len([a for a in answer_rows(db) if a.question_id == "colour"]) == 8
