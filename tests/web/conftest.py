"""Fixtures for the web edge: a real Service on the shared ``db`` fixture, the example surveys
loaded, and a fixed clock (the examples close in 2030; the tests must not)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def service(db: sessionmaker[Session]) -> Service:
    """A Service with the example surveys (central-park: PARK, street-lighting: LIGHTS)."""
    service = Service(db, clock=fixed_clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    return service


@pytest.fixture
def app(service: Service) -> Flask:
    return create_app(service, Config(), clock=fixed_clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
