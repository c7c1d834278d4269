"""Fixtures and helpers for the Consultations, Outcome and Home tests, until the console's
shared harness (tests/console/conftest.py, tests/browser.py) is on main: a real Service with
the example surveys and a fixed clock, the app with a CSRF-sending test client, Chromium
pages, the axe-core scan and the screenshots of the docs.

Import the fixtures by name into a test module to use them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service, read_survey_sources
from bot.staff.accounts import Role
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR
from tests.browser import TIMEOUT_MS
from tests.csrf_client import CsrfClient
from tests.staff import PASSWORD, add_staff

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "console"


class Clock:
    """The app's clock, at :data:`NOW` until a test moves it."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(db: sessionmaker[Session], clock: Clock) -> Service:
    service = Service(db, clock=clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    return service


@pytest.fixture
def app(service: Service, clock: Clock) -> Flask:
    app = create_app(service, Config(), clock=clock)
    app.test_client_class = CsrfClient
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A desktop-sized page (a town-hall PC); script errors fail the test."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", base_url=base_url
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


def sign_in_page(page: Page, app: Flask, role: Role = Role.EDITOR) -> None:
    """Sign in through the sign-in page, as staff do."""
    staff = add_staff(app, role)
    page.goto("/login")
    page.get_by_label("Email").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(staff.email)).to_be_visible()


def axe_check(page: Page) -> None:
    """axe-core (bundled with axe-playwright-python, offline): no serious or critical
    violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [
        f"{v['impact']} {v['id']}: {v['help']} ({v['nodes'][0]['target'][0]})"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"accessibility violations on {page.url}: {serious}"


def screenshot(page: Page, name: str) -> None:
    """``docs/console/<name>.png`` when ``VOXPOP_SCREENSHOTS=1``; otherwise nothing."""
    if os.environ.get("VOXPOP_SCREENSHOTS") != "1":
        return
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"), full_page=True)
