"""Long polling goes through the same parsing and service as the webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import TelegramConfig
from bot.service import Service, read_survey_sources
from bot.web.telegram_poll import poll_once
from channels.telegram_send import TelegramSender
from storage.db import transaction
from storage.models import Message
from surveys.loader import example_paths
from tests.fakes.telegram_api import FakeTelegram, message_update

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_polled_updates_are_answered_and_confirmed(db: sessionmaker[Session]) -> None:
    service = Service(db, clock=lambda: NOW)
    service.load_surveys(read_survey_sources([str(p) for p in example_paths()]))
    with FakeTelegram() as fake:
        first = fake.push_update(message_update(5151, "LIGHTS"))
        fake.push_update(message_update(5151, "LIGHTS", message_id=2))  # the same keyword again
        config = TelegramConfig(token=fake.token, webhook_secret="s", api_base_url=fake.url)

        async def rounds() -> tuple[int | None, int | None]:
            async with TelegramSender(config) as sender:
                offset = await poll_once(sender, service, None, NOW, 0)
                again = await poll_once(sender, service, offset, NOW, 0)
                return offset, again

        offset, again = asyncio.run(rounds())
    assert offset == first["update_id"] + 2
    assert again == offset  # confirmed: nothing is delivered twice
    with transaction(db, read_only=True) as s:
        texts = [m.text for m in s.scalars(select(Message).where(Message.direction == "out"))]
    assert texts[:2] == [
        "The city is checking its street lights. 4 quick questions.",
        "Is there a street near you that is too dark at night?",
    ]
    assert texts[2] == "Is there a street near you that is too dark at night?"  # REPEAT
