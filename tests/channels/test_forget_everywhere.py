"""FORGET forgets, everywhere: after FORGET on each channel (through the real webhooks, the
real dispatcher and the loopback fake providers) and after ``voxpop contacts erase``, nothing
in the database can name the person. On SQLite the raw bytes of the database file and its
write-ahead log are searched; on PostgreSQL every row of every table, cast to text. The
goodbye still reaches each channel's provider."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.sending import DispatchSettings
from bot.web.app import create_app
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import AnswerRow, Message, StatusReport
from tests.channels.test_end_to_end import Clock, _config, _dispatch, _service
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import voxpop
from tests.web.test_webhooks import post_telegram, post_twilio, telegram_update, twilio_form

GOODBYE = "Your data has been erased. Goodbye."


@dataclass(frozen=True)
class Person:
    """One citizen: where they write from, and what they typed that could name them."""

    channel: str
    address: str
    where: str

    @property
    def needles(self) -> tuple[str, ...]:
        """What must not be found after their erasure: the address (digits only, which
        catches ``+32…``, ``whatsapp:+32…`` and ``<chat>:<message>`` alike) and their text."""
        return (self.address.lstrip("+"), self.where)


# Distinctive values, with letters outside ASCII so that every encoding is tried.
SMS = Person("sms", "+32470918273", "Zoë Vanderstraeten, Kerkstraat 17")
WHATSAPP = Person("whatsapp", "+32471564738", "bij Jozefien Überlaan 9")
TELEGRAM = Person("telegram", "7319826405", "Reinhilde Claeskens woont in de Ramstraat")
ERASED = Person("sms", "+32472837465", "Godelieve Pauwels, Lindenlaan 3")
EVERYONE = (SMS, WHATSAPP, TELEGRAM, ERASED)


def encodings(needle: str) -> tuple[bytes, ...]:
    """The byte forms a text can take in a database file: UTF-8 (SQLite's and PostgreSQL's
    encoding), UTF-16 (a SQLite file created as such), JSON's ASCII escapes."""
    escaped = json.dumps(needle)[1:-1]
    forms = {needle.encode(), needle.encode("utf-16-le"), needle.encode("utf-16-be")}
    forms.add(escaped.encode())
    return tuple(forms)


# --- the conversation, through the webhooks ---------------------------------------------------


class Channels:
    """The Flask app and the dispatcher of one deployment with all three channels."""

    def __init__(
        self, db: sessionmaker[Session], config: Config, telegram: FakeTelegram, twilio: FakeTwilio
    ) -> None:
        self.db, self.config, self.telegram, self.twilio = db, config, telegram, twilio
        self.clock = Clock()
        self.client: FlaskClient = create_app(
            _service(db, self.clock), config, clock=self.clock
        ).test_client()

    def say(self, who: Person, text_: str) -> None:
        """``who`` writes ``text_``; the replies are sent."""
        if who.channel == "telegram":
            update = telegram_update("text_message", text=text_)
            update["message"]["chat"]["id"] = update["message"]["from"]["id"] = int(who.address)
            response = post_telegram(self.client, update)
        else:
            sender = f"whatsapp:{who.address}" if who.channel == "whatsapp" else who.address
            form = twilio_form(f"{who.channel}_inbound", Body=text_, From=sender)
            response = post_twilio(self.client, who.channel, form, token=self.twilio.auth_token)
        assert response.status_code == 200, response.get_data(as_text=True)
        self.deliver()

    def tap(self, who: Person, data: str) -> None:
        """``who`` taps the button ``data`` on the last keyboard Voxpop sent them."""
        message_id = self._last_keyboard(who)
        update = telegram_update("callback_query", data=data, id=f"cb-{data}")
        body = update["callback_query"]
        body["from"]["id"] = body["message"]["chat"]["id"] = int(who.address)
        body["message"]["message_id"] = message_id
        assert post_telegram(self.client, update).status_code == 200
        self.deliver()

    def deliver(self) -> None:
        """Run the real dispatcher, paced (WhatsApp's window, Telegram's second per chat),
        until the outbox is empty."""
        idle = 0
        while idle < 2:
            idle = 0 if _dispatch(self.config, self.db, self.clock, paced=True) else idle + 1
            self.clock.now += timedelta(seconds=2)

    def _last_keyboard(self, who: Person) -> int:
        for call in reversed(self.telegram.calls_to("sendMessage")):
            if str(call.params["chat_id"]) == who.address and call.params.get("reply_markup"):
                return self._message_id(who, call.params["text"])
        raise AssertionError("no keyboard was sent")

    def _message_id(self, who: Person, shown: str) -> int:
        with transaction(self.db, read_only=True) as s:
            provider_id = s.scalars(
                select(Message.provider_id)
                .where(Message.direction == "out", Message.text == shown)
                .order_by(Message.id.desc())
            ).first()
        assert provider_id is not None
        assert provider_id.startswith(f"{who.address}:")
        return int(provider_id.rpartition(":")[2])

    def goodbyes(self, who: Person) -> list[str]:
        """The goodbyes the provider received for ``who``."""
        if who.channel == "telegram":
            return [
                str(c.params["text"])
                for c in self.telegram.calls_to("sendMessage")
                if str(c.params["chat_id"]) == who.address and c.params["text"] == GOODBYE
            ]
        to = f"whatsapp:{who.address}" if who.channel == "whatsapp" else who.address
        return [m["body"] for m in self.twilio.messages if m["to"] == to and m["body"] == GOODBYE]

    def report(self, sid: str, status: str) -> None:
        """Twilio's delivery report for ``sid`` comes back."""
        form, headers = self.twilio.signed_status_callback(
            f"{self.config.server.public_url}/webhooks/twilio/status", sid, status
        )
        assert (
            self.client.post("/webhooks/twilio/status", data=form, headers=headers).status_code
            == 200
        )


def take_part(channels: Channels, who: Person) -> None:
    """Street lighting: yes, there is a dark street, and where (free text); then a scale."""
    channels.say(who, "LIGHTS")
    if who.channel == "telegram":
        channels.tap(who, "too_dark:yes")
    else:
        channels.say(who, "yes")
    channels.say(who, who.where)
    channels.say(who, "4")


def forget(channels: Channels, who: Person) -> None:
    channels.say(who, "FORGET")
    channels.say(who, "YES")


# --- scanning ---------------------------------------------------------------------------------


def database_files(engine: Engine) -> list[Path]:
    """The SQLite database and every file next to it that SQLite writes (WAL, its index, a
    rollback journal)."""
    path = Path(str(make_url(engine.url).database))
    suffixes = ("", "-wal", "-shm", "-journal")
    return [Path(f"{path}{s}") for s in suffixes if Path(f"{path}{s}").exists()]


def found_in_files(engine: Engine, needles: Iterable[str]) -> dict[str, list[str]]:
    """Which needles occur in the raw bytes of which database file."""
    files = {f.name: f.read_bytes() for f in database_files(engine)}
    hits: dict[str, list[str]] = {}
    for needle in needles:
        for name, data in files.items():
            if any(form in data for form in encodings(needle)):
                hits.setdefault(needle, []).append(name)
    return hits


def found_in_rows(engine: Engine, needles: Iterable[str]) -> dict[str, list[str]]:
    """Which needles occur in which table, with every row cast to text (and to JSON's
    escapes, as ``jsonb`` prints them)."""
    wanted = list(needles)
    hits: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" AS t')).scalars()
            for row in rows:
                for needle in wanted:
                    if needle in row or json.dumps(needle)[1:-1] in row:
                        hits.setdefault(needle, []).append(table)
    return hits


def found(engine: Engine, needles: Iterable[str]) -> dict[str, list[str]]:
    if engine.dialect.name == "sqlite":
        return found_in_files(engine, needles)
    return found_in_rows(engine, needles)


def needles_of(people: Iterable[Person]) -> list[str]:
    return [needle for who in people for needle in who.needles]


# --- the proof --------------------------------------------------------------------------------


@pytest.fixture
def channels(db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio) -> Channels:
    return Channels(db, _config(telegram, twilio), telegram, twilio)


def test_after_forget_on_every_channel_and_erase_nothing_names_anyone(
    channels: Channels, engine: Engine, db_url: str
) -> None:
    for who in EVERYONE:
        take_part(channels, who)
    # The scan sees every value while the people are known (else it could not fail).
    assert sorted(found(engine, needles_of(EVERYONE))) == sorted(needles_of(EVERYONE))

    sms_sids = [m["sid"] for m in channels.twilio.messages if m["to"] == SMS.address]
    for who in (SMS, WHATSAPP, TELEGRAM):
        forget(channels, who)
        assert channels.goodbyes(who) == [GOODBYE], who.channel
    erased = voxpop(db_url, "contacts", "erase", ERASED.address, "--yes")
    assert erased.exit_code == 0, erased.output
    # Delivery reports that come back after the erasure, for a message from before and for
    # the goodbye: they find their rows, and bring nothing back.
    goodbye_sid = next(m["sid"] for m in channels.twilio.messages if m["body"] == GOODBYE)
    channels.report(sms_sids[0], "delivered")
    channels.report(goodbye_sid, "delivered")

    assert found(engine, needles_of(EVERYONE)) == {}
    with transaction(channels.db, read_only=True) as s:
        goodbyes = s.scalars(select(Message).where(Message.text == GOODBYE)).all()
        reports = s.scalars(select(StatusReport)).all()
        answers = {(a.question_id, a.how): a.value for a in s.scalars(select(AnswerRow))}
    assert sorted((m.channel, m.status, m.address, m.contact_id) for m in goodbyes) == [
        ("sms", "delivered", None, None),
        ("telegram", "sent", None, None),
        ("whatsapp", "sent", None, None),
    ]
    assert reports == []  # no report was kept for want of its message
    # The closed questions' answers stay for the results; the free text went.
    assert answers == {("too_dark", "yesno"): True, ("too_dark", "payload"): True} | {
        ("where", "erased"): None,
        ("safe", "number"): 4,
    }
    engine.dispose()  # a clean stop: SQLite checkpoints what was left
    assert found(engine, needles_of(EVERYONE)) == {}


# PostgreSQL has no write-ahead log file of ours to scrub.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_reader_holding_old_copies_delays_the_scrub_until_the_dispatcher_runs(
    channels: Channels, engine: Engine
) -> None:
    take_part(channels, SMS)
    # Another program reads the database (an export, a backup) since before the erasure.
    reader = sqlite3.connect(str(make_url(engine.url).database), isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()
        forget(channels, SMS)
        assert SMS.where in found_in_files(engine, [SMS.where])  # the reader's snapshot
    finally:
        reader.execute("COMMIT")
        reader.close()
    settings = DispatchSettings(scrub_interval=timedelta(0))
    dispatcher = Dispatcher(channels.db, {}, channels.clock, settings)
    assert dispatcher.scrub(periodic=True)
    assert found(engine, SMS.needles) == {}


def test_a_goodbye_the_provider_refuses_for_the_window_fails_and_keeps_nothing(
    channels: Channels, engine: Engine
) -> None:
    take_part(channels, WHATSAPP)
    # Twilio counts the window its own way: the goodbye is refused (63016). Nobody is left
    # to write again, so it is not held: it fails, and its address goes.
    channels.twilio.refuse(f"whatsapp:{WHATSAPP.address}", "63016")
    forget(channels, WHATSAPP)
    with transaction(channels.db, read_only=True) as s:
        (goodbye,) = s.scalars(select(Message).where(Message.text == GOODBYE)).all()
    assert (goodbye.status, goodbye.address, goodbye.error) == (
        "failed",
        None,
        "OutsideSessionWindow: 63016",
    )
    assert found(engine, WHATSAPP.needles) == {}


def test_a_goodbye_not_sent_within_a_day_is_dropped(
    db: sessionmaker[Session], engine: Engine, telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    service = _service(db, clock)
    for n, line in enumerate(("LIGHTS", "yes", SMS.where, "FORGET", "YES")):
        service.receive(InboundMessage(Address("sms", SMS.address), line, f"SM{n}", clock()))
    # No dispatcher ran (the SMS channel was down): a day later the goodbye is pointless.
    clock.now += timedelta(days=1, minutes=1)
    config = _config(telegram, twilio)
    assert _dispatch(config, db, clock) == 0
    assert twilio.messages == []
    with transaction(db, read_only=True) as s:
        (goodbye,) = s.scalars(select(Message).where(Message.text == GOODBYE)).all()
    assert (goodbye.status, goodbye.error, goodbye.address) == ("failed", "not sent in time", None)
    assert found(engine, SMS.needles) == {}
