"""The redaction every root handler applies (bot.log_privacy): configured secrets and phone
numbers never reach a log line, also through arguments and tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.config import Config, DatabaseConfig, PrivacyConfig, TelegramConfig, TwilioConfig
from bot.log_privacy import LIBRARY_LOGGERS, install

CONFIG = Config(
    database=DatabaseConfig(url="postgresql+psycopg://voxpop:db-Pa55word@db.example/voxpop"),
    privacy=PrivacyConfig(pseudonym_key="pseudonym-key-0123"),
    telegram=TelegramConfig(token="7000000001:AAF-bot-token", webhook_secret="hook_Secret-99"),
    twilio=TwilioConfig(account_sid="AC1", auth_token="twilio-auth-token", sms_from="+1555"),
)
SECRETS = ("db-Pa55word", "pseudonym-key-0123", "7000000001:AAF-bot-token", "hook_Secret-99")


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    install([handler], CONFIG)
    logger = logging.getLogger("bot.test_privacy")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("calling %s", ("https://api.telegram.org/bot7000000001:AAF-bot-token/sendMessage",)),
        ("secret_token=%r", ("hook_Secret-99",)),
        ("connect to postgresql://voxpop:db-Pa55word@db", ()),
        ("auth %s and key %s", ("twilio-auth-token", "pseudonym-key-0123")),
        ("to %s", ("whatsapp:+32470123456",)),
        ("Body=Hi&To=%2B32470123456 from +15555550199", ()),
    ],
)
def test_secrets_and_numbers_are_replaced(
    written: io.StringIO, message: str, args: tuple[str, ...]
) -> None:
    logging.getLogger("bot.test_privacy").debug(message, *args)

    line = written.getvalue()
    assert line.strip()
    for secret in (*SECRETS, "twilio-auth-token", "32470123456", "15555550199"):
        assert secret not in line
    assert "<secret>" in line or "<phone>" in line


def test_a_traceback_is_cleaned_too(written: io.StringIO) -> None:
    try:
        raise ValueError("refused +32470123456 with token 7000000001:AAF-bot-token")
    except ValueError:
        logging.getLogger("bot.test_privacy").exception("send failed")

    text = written.getvalue()
    assert "Traceback" in text
    assert "ValueError: refused <phone> with token <secret>" in text


def test_the_libraries_stay_at_warning(written: io.StringIO) -> None:
    for name in LIBRARY_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert not logging.getLogger(f"{name}.child").isEnabledFor(logging.DEBUG), name
