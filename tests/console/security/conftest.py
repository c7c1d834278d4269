"""Fixtures for the console's security tests: the real app on each engine, with a clock the
test moves (session expiry, sign-in waits, one-time codes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ServerConfig
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR

START = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@dataclass
class MovableClock:
    """A clock that stands still until the test moves it."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def service(db: sessionmaker[Session], clock: MovableClock) -> Service:
    service = Service(db, clock=clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    return service


@pytest.fixture
def app(service: Service, clock: MovableClock) -> Flask:
    return create_app(service, Config(), clock=clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def https_config() -> Config:
    """A public server behind HTTPS (the simulator then needs a sign-in)."""
    return Config(server=ServerConfig(public_url="https://voxpop.city.example"))


@pytest.fixture
def https_app(service: Service, clock: MovableClock) -> Flask:
    return create_app(service, https_config(), clock=clock)
