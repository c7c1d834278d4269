"""End to end with the real SDKs: a signed webhook goes in, the service answers through the
outbox, the dispatcher sends the reply to the loopback fake provider, and (Twilio) the
provider's status callback comes back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, DispatchConfig, ServerConfig, TelegramConfig, TwilioConfig
from bot.dispatch import Dispatcher, DispatcherThread, DispatchSettings
from bot.service import Service, read_survey_sources
from bot.transports import Transports, dispatch_forever
from bot.web import create_app
from storage.db import transaction
from storage.models import Message
from surveys.loader import example_paths
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.web.test_webhooks import SECRET, post_telegram, post_twilio, text_update, twilio_form

PUBLIC_URL = "https://voxpop.example.city"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def _config(telegram: FakeTelegram, twilio: FakeTwilio) -> Config:
    return Config(
        server=ServerConfig(public_url=PUBLIC_URL),
        telegram=TelegramConfig(
            token=telegram.token, webhook_secret=SECRET, api_base_url=telegram.url
        ),
        twilio=TwilioConfig(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.url,
            sms_from="+15555550199",
            whatsapp_from="+15555550188",
        ),
    )


def _service(db: sessionmaker[Session], clock: Clock) -> Service:
    service = Service(db, clock=clock)
    service.load_surveys(read_survey_sources([str(p) for p in example_paths()]))
    return service


def _dispatch(config: Config, db: sessionmaker[Session], clock: Clock, rounds: int = 1) -> int:
    async def work() -> int:
        sent = 0
        async with Transports(config) as transports:
            dispatcher = Dispatcher(
                db, transports.delivers(), clock, DispatchSettings(concurrency=8)
            )
            for _ in range(rounds):
                sent += await dispatcher.run_once()
        return sent

    return asyncio.run(work())


def _outbox(db: sessionmaker[Session]) -> list[Message]:
    with transaction(db, read_only=True) as s:
        return list(
            s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
        )


def test_telegram_update_in_buttons_out(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client: FlaskClient = create_app(_service(db, clock), config, clock=clock).test_client()
    assert post_telegram(client, text_update("PARK", chat="4242")).status_code == 200
    assert _dispatch(config, db, clock) == 2  # the intro, then the first question
    sent = telegram.calls_to("sendMessage")
    assert [c.params["chat_id"] for c in sent] == ["4242", "4242"]
    assert sent[1].params["text"] == "How often do you visit the park?"
    markup = sent[1].params["reply_markup"]
    rows = json.loads(markup) if isinstance(markup, str) else markup
    assert [row[0]["callback_data"] for row in rows["inline_keyboard"]] == [
        "visits:weekly",
        "visits:monthly",
        "visits:rarely",
        "visits:never",
    ]
    assert [(m.status, (m.provider_id or "").split(":")[0]) for m in _outbox(db)] == [
        ("sent", "4242"),
        ("sent", "4242"),
    ]


def test_sms_in_numbered_list_out_and_the_status_comes_back(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    inbound = twilio_form("sms_inbound", Body="LIGHTS")
    assert post_twilio(client, "sms", inbound, token=twilio.auth_token).status_code == 200
    assert _dispatch(config, db, clock) == 2
    created = twilio.messages
    assert [(m["to"], m["from"]) for m in created] == [(inbound["From"], "+15555550199")] * 2
    assert (
        created[1]["body"] == "Is there a street near you that is too dark at night?\n1 Yes\n2 No"
    )
    question = _outbox(db)[1]
    assert (question.status, question.segments) == ("sent", 1)
    # Twilio reports delivery to <public_url>/webhooks/twilio/status.
    form, headers = twilio.signed_status_callback(
        f"{PUBLIC_URL}/webhooks/twilio/status", created[1]["sid"], "delivered"
    )
    answer = client.post("/webhooks/twilio/status", data=form, headers=headers)
    assert answer.status_code == 200
    assert _outbox(db)[1].status == "delivered"


def test_whatsapp_goes_out_with_whatsapp_addresses(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    form = twilio_form("whatsapp_inbound", Body="PARK")
    assert post_twilio(client, "whatsapp", form, token=twilio.auth_token).status_code == 200
    assert _dispatch(config, db, clock) == 2
    assert {(m["to"], m["from"]) for m in twilio.messages} == {
        (form["From"], "whatsapp:+15555550188")
    }


def test_a_provider_failing_one_send_in_five_loses_nothing(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    for n in range(40):
        form = twilio_form("sms_inbound", Body="LIGHTS", From=f"+3247000{n:04d}")
        assert post_twilio(client, "sms", form, token=twilio.auth_token).status_code == 200
    twilio.set_failure_rate(0.2, seed=11, kinds=("5xx", "429"))
    for _ in range(30):
        _dispatch(config, db, clock)
        clock.now += timedelta(minutes=20)  # past any backoff or Retry-After
    rows = _outbox(db)
    assert len(rows) == 80
    assert {m.status for m in rows} == {"sent"}
    # 5xx and 429 are refusals before acceptance: each row reached Twilio exactly once.
    accepted = [m["sid"] for m in twilio.messages]
    assert sorted(accepted) == sorted(m.provider_id for m in rows if m.provider_id)
    assert any(c.fault for c in twilio.calls)  # the faults really happened


def test_one_citizens_messages_arrive_in_order_even_after_a_failure(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    clock = Clock()
    config = _config(telegram, twilio)
    client = create_app(_service(db, clock), config, clock=clock).test_client()
    form = twilio_form("sms_inbound", Body="LIGHTS")
    assert post_twilio(client, "sms", form, token=twilio.auth_token).status_code == 200
    twilio.fail_next(1, "5xx")  # the intro fails once; the question must not overtake it
    assert _dispatch(config, db, clock) == 2
    assert [m.status for m in _outbox(db)] == ["queued", "queued"]
    assert twilio.messages == []
    clock.now += timedelta(minutes=1)
    _dispatch(config, db, clock)
    assert [m["body"].split("\n")[0] for m in twilio.messages] == [
        "The city is checking its street lights. 4 quick questions.",
        "Is there a street near you that is too dark at night?",
    ]
    assert [(m.status, m.attempts) for m in _outbox(db)] == [("sent", 2), ("sent", 1)]


def test_a_reply_reaches_the_provider_within_a_second_of_the_commit(
    db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio
) -> None:
    # The idle poll is 30 s: only the wake-up after the commit can make this fast.
    config = replace(_config(telegram, twilio), dispatch=DispatchConfig(idle_poll_seconds=30.0))
    thread: DispatcherThread | None = None
    service = Service(db, on_outbox=lambda: thread.wake() if thread else None)
    service.load_surveys(read_survey_sources([str(p) for p in example_paths()]))
    thread = DispatcherThread(partial(dispatch_forever, config, db))
    thread.start()
    try:
        time.sleep(0.5)  # let it open its connections and go idle
        client = create_app(service, config).test_client()
        committed = time.monotonic()
        assert post_telegram(client, text_update("PARK", chat="777")).status_code == 200
        while len(telegram.calls_to("sendMessage")) < 2 and time.monotonic() - committed < 5:
            time.sleep(0.01)
        latency = time.monotonic() - committed
    finally:
        thread.stop()
    assert len(telegram.calls_to("sendMessage")) == 2
    assert latency < 1.0
