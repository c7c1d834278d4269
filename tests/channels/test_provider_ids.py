"""A provider id's shape is never trusted: an odd Telegram message id in a keyboard chore
fails that chore for good (``failed``, never ``unknown``), sends nothing, and the chat's
next message still goes; every id parser takes plain ASCII digits or nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, TelegramConfig
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.transports import Transports
from bot.pushes.scheduler import _push_id
from bot.service import KEYBOARD_REMOVE
from channels.ids import decimal_id
from storage import repo
from storage.db import transaction
from storage.models import Message
from tests.fakes.telegram_api import FakeTelegram

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CHAT = "5151"
#: Ids as they should never be, each something int() takes, or chokes on.
ODD_IDS: list[object] = [
    "",
    " ",
    "abc",
    "12a",
    "-1",
    "1.5",
    "1e3",
    "+5",
    "0x10",
    "1_000",
    " 12",
    "12\n",
    "١٢٣",  # Arabic-Indic digits: int() reads them as 123
    "²",  # a superscript: str.isdigit() says yes, int() says no
    "9" * 19,  # beyond a 64-bit column
    None,
    True,
    12.0,
    [],
    {"id": 1},
]


@pytest.mark.parametrize("odd", ODD_IDS, ids=repr)
def test_the_parser_refuses_an_odd_id(odd: object) -> None:
    assert decimal_id(odd) is None
    assert _push_id(f"push:{odd}") is None


@pytest.mark.parametrize("good", ["1", "42", "007", 42, 10**18 - 1])
def test_the_parser_reads_a_plain_id(good: object) -> None:
    assert decimal_id(good) == int(str(good))


@pytest.mark.parametrize("odd", [*ODD_IDS, "0", 0], ids=repr)  # Telegram counts from 1
def test_an_odd_message_id_fails_its_chore_only(db: sessionmaker[Session], odd: object) -> None:
    with transaction(db) as s:
        # A citizen's chat, as the service writes it (a row without a contact is a goodbye
        # owed to someone forgotten, whose error keeps only its class).
        contact, _, _ = repo.find_or_create_contact(s, "telegram", CHAT, NOW)
        chore = repo.add_outbound(
            s,
            channel="telegram",
            address=CHAT,
            text="",
            now=NOW,
            kind=KEYBOARD_REMOVE,
            payload={"chat": CHAT, "message_id": odd},
            contact_id=contact.id,
        )
        reply = repo.add_outbound(
            s, channel="telegram", address=CHAT, text="Thanks!", now=NOW, contact_id=contact.id
        )

    with FakeTelegram() as telegram:
        config = Config(
            telegram=TelegramConfig(
                token=telegram.token, webhook_secret="s", api_base_url=telegram.url
            )
        )

        async def send() -> None:
            async with Transports(config) as transports:
                dispatcher = Dispatcher(db, transports.delivers(), lambda: NOW)
                while await dispatcher.run_once():
                    pass

        asyncio.run(send())
        edits = telegram.calls_to("editMessageReplyMarkup")
        sent = [call.params.get("text") for call in telegram.calls_to("sendMessage")]

    with transaction(db, read_only=True) as s:
        status = {row.id: row.status for row in s.execute(select(Message.id, Message.status))}
        error = s.scalar(select(Message.error).where(Message.id == chore))
    assert status[chore] == "failed"
    assert error is not None
    assert error.startswith("Rejected:")
    assert "telegram: not a message id" in error
    assert edits == []
    assert status[reply] == "sent"
    assert sent == ["Thanks!"]
