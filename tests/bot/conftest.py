"""Fixtures for the push tests (tests/bot/test_pushes.py, test_outcomes.py): a clock the
test moves, a service with the test surveys, and Pushes on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ConversationConfig, PushesConfig
from bot.pushes.service import Pushes
from bot.service import Service, read_survey_sources

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 11:00 in Brussels


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(db: sessionmaker[Session], clock: Clock) -> Service:
    svc = Service(db, clock=clock)
    files = [str(FIXTURES / "every-type.toml"), str(FIXTURES / "other.toml")]
    svc.load_surveys(read_survey_sources(files))
    return svc


def push_config(**pushes: Any) -> Config:
    defaults: dict[str, Any] = {"quiet_hours": "", "rate_per_second": 100.0}
    return Config(
        pushes=PushesConfig(**(defaults | pushes)),
        conversation=ConversationConfig(session_timeout_hours=72),
    )


@pytest.fixture
def pushes(db: sessionmaker[Session], service: Service, clock: Clock) -> Pushes:
    return Pushes(db, service, push_config(), clock=clock)
