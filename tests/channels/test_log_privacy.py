"""Nothing personal or secret in any log line, at DEBUG: a whole conversation on Telegram
and SMS goes through the webhooks, the service, the dispatcher and the real SDKs (with the
loopback fakes), and no record (as captured, and as the app's handler writes it) holds a
phone number, a chat id, a message text, a token, the auth token or the webhook secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from bot.config import Config, LoggingConfig, ServerConfig, TelegramConfig, TwilioConfig
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.transports import Transports, pacing
from bot.runtime import configure_logging
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from channels.telegram_send import TelegramSender
from surveys.loader import EXAMPLES_DIR
from tests.fakes.telegram_api import TOKEN, FakeTelegram, message_update
from tests.fakes.twilio_api import FakeTwilio

PUBLIC_URL = "https://voxpop.example.org"
SECRET = "Webhook_Secret-4f9a2c7e1b"
PHONE = "+32470918273"
CHAT = 918273645
#: What the citizens type: the survey's keyword is not personal, but their answers are.
TELEGRAM_TEXTS = ("LIGHTS", "1", "Kerkstraat near the bakery", "Wish for brighter lamps")
SMS_TEXTS = ("LIGHTS", "1", "Molenweg behind the church", "2", "More light at the crossing")
PRIVATE = (
    PHONE,
    PHONE.removeprefix("+"),
    str(CHAT),
    "Kerkstraat",
    "bakery",
    "brighter lamps",
    "Molenweg",
    "behind the church",
    "light at the crossing",
)


@pytest.fixture
def handler() -> Iterator[io.StringIO]:
    """A handler on the root logger, as a host's logging setup adds one (gunicorn's)."""
    stream = io.StringIO()
    added = logging.StreamHandler(stream)
    added.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(added)
    yield stream
    root.removeHandler(added)


@pytest.fixture
def library_levels() -> Iterator[None]:
    """configure_logging changes the libraries' levels for the process: put them back."""
    names = list(logging.root.manager.loggerDict)
    before = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("library_levels")
def test_no_log_line_holds_anything_personal_or_secret(
    db: sessionmaker[Session], caplog: pytest.LogCaptureFixture, handler: io.StringIO
) -> None:
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        config = Config(
            server=ServerConfig(public_url=PUBLIC_URL),
            telegram=TelegramConfig(
                token=TOKEN,
                webhook_secret=SECRET,
                api_base_url=telegram.url,
                per_chat_per_second=50,  # Telegram's pace per chat would only slow the test
            ),
            twilio=TwilioConfig(
                account_sid=twilio.account_sid,
                auth_token=twilio.auth_token,
                api_base_url=twilio.url,
                sms_from="+15555550199",
            ),
            logging=LoggingConfig(level="DEBUG"),
        )
        configure_logging(config)
        caplog.set_level(logging.DEBUG)
        service = Service(db)
        service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
        client = create_app(service, config).test_client()

        asyncio.run(_set_webhook(config))
        for n, text in enumerate(TELEGRAM_TEXTS, start=1):
            _post_telegram(client, message_update(CHAT, text, message_id=n))
            asyncio.run(_dispatch(config, service))
        for text in SMS_TEXTS:
            _post_sms(client, config, text)
            asyncio.run(_dispatch(config, service))
        for message in twilio.messages:
            _post_status(client, config, message["sid"])

        sent = [c.params.get("text", "") for c in telegram.calls_to("sendMessage")]
        sent += [m["body"] for m in twilio.messages]

    # The conversation happened, and was logged ...
    assert len(telegram.calls_to("sendMessage")) > len(TELEGRAM_TEXTS)
    assert len(twilio.messages) > len(SMS_TEXTS)
    assert any(r.name.startswith("bot.") for r in caplog.records)
    # ... with none of it in any record, nor in what the handler wrote.
    records = "\n".join(_everything(record) for record in caplog.records)
    written = handler.getvalue()
    assert written
    secrets = (TOKEN, SECRET, twilio.auth_token)
    for found in (records, written):
        for private in (*PRIVATE, *secrets, *(t for t in sent if len(t) > 12)):
            assert private not in found, private


def _everything(record: logging.LogRecord) -> str:
    """All a handler could write of a record: its message, traceback and stack."""
    return "\n".join(
        str(part)
        for part in (record.getMessage(), record.exc_text, record.stack_info, record.exc_info)
        if part
    )


async def _set_webhook(config: Config) -> None:
    # PTB narrates setWebhook's parameters at DEBUG, the secret among them.
    async with TelegramSender(config.telegram) as sender:
        await sender.set_webhook(f"{PUBLIC_URL}/webhooks/telegram", SECRET)


async def _dispatch(config: Config, service: Service) -> None:
    async with Transports(config) as transports:
        dispatcher = Dispatcher(
            service.sessions, transports.delivers(), service.now, pacing=pacing(config)
        )
        while await dispatcher.run_once():
            pass


def _post_telegram(client: FlaskClient, update: dict[str, object]) -> None:
    update = {"update_id": 700_000 + int(str(update["message"]["message_id"])), **update}  # type: ignore[index]
    response = client.post(
        "/webhooks/telegram",
        data=json.dumps(update),
        content_type="application/json",
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200


def _post_twilio(client: FlaskClient, config: Config, route: str, fields: dict[str, str]) -> None:
    path = f"/webhooks/twilio/{route}"
    signature = RequestValidator(config.twilio.auth_token).compute_signature(
        PUBLIC_URL + path, fields
    )
    response = client.post(
        path,
        data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200


_sids = iter(range(1, 1000))


def _post_sms(client: FlaskClient, config: Config, text: str) -> None:
    sid = f"SM{next(_sids):032x}"
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": config.twilio.account_sid,
        "From": PHONE,
        "To": config.twilio.sms_from,
        "Body": text,
        "NumMedia": "0",
    }
    _post_twilio(client, config, "sms", fields)


def _post_status(client: FlaskClient, config: Config, sid: str) -> None:
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": config.twilio.account_sid,
        "MessageStatus": "delivered",
        "To": PHONE,
        "From": config.twilio.sms_from,
    }
    _post_twilio(client, config, "status", fields)
