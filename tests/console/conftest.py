"""Fixtures for the console's tests, on BOTH databases (the ``db`` fixture).

The same fixtures, with the same names and meaning, as the design work's harness (its
``tests/console/conftest.py`` and ``tests/browser.py``, which replace this file when merged):

``config``, ``service``, ``app``, ``client``
    The built-in settings; a real Service with the example surveys on a fixed clock;
    ``create_app(service, config, clock=...)``; its Flask test client.
``browser``, ``base_url``, ``page``
    Chromium (Debian's, through Playwright), the app under waitress on a free loopback port,
    and a fresh desktop-sized page whose script errors fail the test at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service, read_survey_sources
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR
from tests.web.test_browser import TIMEOUT_MS, base_url, browser

__all__ = ["base_url", "browser"]  # fixtures, used by name

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
def service(db: sessionmaker[Session]) -> Service:
    service = Service(db, clock=fixed_clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    return service


@pytest.fixture
def app(service: Service, config: Config) -> Flask:
    return create_app(service, config, clock=fixed_clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, locale="en-GB", base_url=base_url
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page logged errors: {errors}"
