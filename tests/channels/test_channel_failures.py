"""One channel's failure never stops the others, and readiness says which part fails.

The real SDKs send to the loopback fakes: Telegram refuses the configured token (as after a
typo or a revoked token), Twilio's credentials are right. SMS replies still go out, ``GET
/readyz`` answers 503 naming Telegram, and once Telegram accepts the token the dispatcher
opens it again by itself and every part is ready.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, SchedulerConfig, ServerConfig, TelegramConfig, TwilioConfig
from bot.delivery.dispatcher import DispatcherThread
from bot.delivery.transports import dispatch_forever
from bot.pushes.scheduler import Scheduler
from bot.pushes.service import Pushes
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Message
from surveys.loader import EXAMPLES_DIR
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

WRONG_TOKEN = "987654321:AAWrongTokenWrongTokenWrongToken_x"
SECRET = "webhook-secret-for-tests"
CITIZENS = ("+32470000011", "+32470000012", "+32470000013", "+32470000014")
CHAT = "918273645"
#: Generous: a busy machine is slow; a passing run never waits this long.
PATIENCE = 30.0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _config(db_url: str, telegram: FakeTelegram, twilio: FakeTwilio) -> Config:
    return Config(
        server=ServerConfig(public_url="https://voxpop.example.org"),
        telegram=TelegramConfig(
            token=WRONG_TOKEN,
            webhook_secret=SECRET,
            api_base_url=telegram.url,
            per_chat_per_second=50,
        ),
        twilio=TwilioConfig(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.url,
            sms_from="+15555550199",
        ),
        scheduler=SchedulerConfig(tick_seconds=1.0, standby_retry_seconds=0.5),
    )


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTelegram, FakeTwilio]]:
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        yield telegram, twilio


def _text(service: Service, channel: str, address: str, text: str) -> None:
    msg = InboundMessage(Address(channel, address), text, uuid.uuid4().hex, datetime.now(UTC))
    service.receive(msg)


def _readyz(client: FlaskClient) -> tuple[int, dict[str, str]]:
    response = client.get("/readyz")
    body = response.get_json()
    assert body["status"] == ("ready" if response.status_code == 200 else "not ready")
    parts: dict[str, str] = body["parts"]
    return response.status_code, parts


def test_sms_goes_out_while_telegram_refuses_the_token(
    db_url: str,
    engine: Engine,
    db: sessionmaker[Session],
    fakes: tuple[FakeTelegram, FakeTwilio],
) -> None:
    telegram, twilio = fakes
    config = _config(db_url, telegram, twilio)
    thread: DispatcherThread | None = None
    service = Service(db, on_outbox=lambda: thread.wake() if thread else None)
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    client = create_app(service, config).test_client()
    scheduler = Scheduler(engine, Pushes(db, service, config), config.scheduler)
    work = partial(dispatch_forever, config, db, restart_after=0.05)
    thread = DispatcherThread(work)
    scheduler.start()
    thread.start()
    try:
        for number in CITIZENS:
            _text(service, "sms", number, "LIGHTS")
        _text(service, "telegram", CHAT, "LIGHTS")

        # Every SMS reply leaves (the intro and the first question to each citizen) ...
        _until(lambda: len(twilio.messages) == 2 * len(CITIZENS), "the SMS replies")
        assert {m["to"] for m in twilio.messages} == set(CITIZENS)
        # ... and readiness names the part that fails, and why.
        _until(lambda: _readyz(client)[1]["dispatcher"] == "ok", "the dispatcher's heartbeat")
        _until(lambda: _readyz(client)[1]["scheduler"] == "ok", "the scheduler's heartbeat")
        status, parts = _readyz(client)
        assert status == 503
        assert parts == {
            "database": "ok",
            "dispatcher": "ok",
            "scheduler": "ok",
            "telegram": "the token was rejected by Telegram",
            "sms": "ok",
        }
        assert telegram.calls_to("sendMessage") == []
        with transaction(db, read_only=True) as s:
            waiting = s.scalars(
                select(Message.status).where(
                    Message.direction == "out", Message.channel == "telegram"
                )
            ).all()
        assert waiting
        assert set(waiting) == {"queued"}  # kept for later, not failed

        # The operator fixes it (here: Telegram now knows the token): no restart needed.
        telegram.token = WRONG_TOKEN
        _until(lambda: len(telegram.calls_to("sendMessage")) == 2, "the Telegram replies")
        _until(lambda: _readyz(client)[0] == 200, "readiness")
        assert set(_readyz(client)[1].values()) == {"ok"}
    finally:
        thread.stop()
        scheduler.stop()

    # Stopped cleanly: they no longer count as running.
    status, parts = _readyz(client)
    assert status == 503
    assert parts["dispatcher"].startswith("no dispatcher has reported lately")
    assert parts["scheduler"].startswith("no scheduler has reported lately")
