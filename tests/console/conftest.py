"""Fixtures for the staff console's tests, on BOTH databases (the ``db`` fixture).

``service``, ``app``, ``client``
    A real Service with the example surveys, ``create_app(service, config, clock=...)`` on
    the ``config`` fixture (the built-in settings), and its Flask test client.
``browser``, ``base_url``
    Chromium and the app under waitress on a free loopback port (tests/browser.py).
``page``
    A fresh desktop-sized browser page (a town-hall PC) whose script errors, console
    errors and Content-Security-Policy violations fail the test at its end.

Helpers from tests/browser.py for the tests: ``axe_check(page)`` (no serious or critical
accessibility violation) and ``screenshot(page, name)`` (docs/console/NAME.png, only under
``VOXPOP_SCREENSHOTS=1``: ``make screenshots``).
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
from tests.browser import base_url, browser, new_context

__all__ = ["base_url", "browser"]  # fixtures (tests/browser.py), used by name

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def config() -> Config:
    """The built-in settings, as ``make run`` has them; override the fixture to change them."""
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
    with new_context(browser, base_url=base_url) as (context, watched):
        page = context.new_page()
        yield page
        violations = watched.violations(page)
    assert watched.errors == [], f"the page logged errors: {watched.errors}"
    assert watched.csp == [], f"Content-Security-Policy reports: {watched.csp}"
    assert violations == [], f"Content-Security-Policy violations: {violations}"
