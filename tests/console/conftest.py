"""Fixtures for the staff console's tests, on BOTH databases (the ``db`` fixture).

``clock``
    The app's clock (:class:`MovableClock`): it stands at :data:`NOW` until the test moves
    it (``clock.advance(minutes=5)``). Override the fixture to start elsewhere.
``service``, ``app``, ``client``
    A real Service with the example surveys on ``clock``, ``create_app(service, config,
    clock=clock)`` on the ``config`` fixture (the built-in settings), and its Flask test
    client (it sends the CSRF token a page would: tests/csrf_client.py).
``browser``, ``base_url``
    Chromium and the app under waitress on a free loopback port (tests/browser.py).
``page``
    A fresh desktop-sized browser page (a town-hall PC) whose script errors, console
    errors and Content-Security-Policy violations fail the test at its end.
``signed_in_page``
    ``signed_in_page(Role.EDITOR)``: a new account of that role (tests/staff.py; ``email=``
    to choose its address) signed in through the real ``/login`` form in a browser context
    of its own; a page watched as ``page`` is. Call it again for another member of staff
    side by side.

Helpers from tests/browser.py for the tests: ``axe_check(page)`` (no serious or critical
accessibility violation) and ``screenshot(page, name)`` (docs/console/NAME.png, only under
``VOXPOP_SCREENSHOTS=1``: ``make screenshots``). Here: :func:`scheduler_ticking` (the
scheduler's tick while a block runs, as ``voxpop serve`` has it) and
:func:`sign_in_through_the_form`; :func:`config_on_the_fakes` and :func:`app_with_a_dispatcher`
(the app sending to the fake Telegram and Twilio through a real dispatcher).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, PushesConfig, TelegramConfig, TwilioConfig
from bot.delivery.dispatcher import DispatcherThread
from bot.delivery.transports import dispatch_forever
from bot.service import Service, read_survey_sources
from bot.staff.accounts import Role, StaffView
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR
from tests.browser import Watched, base_url, browser, new_context
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.staff import PASSWORD, add_staff, context_of

__all__ = ["base_url", "browser"]  # fixtures (tests/browser.py), used by name

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


@dataclass
class MovableClock:
    """A clock that stands still until the test moves it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def config() -> Config:
    """The built-in settings, as ``make run`` has them; override the fixture to change them."""
    return Config()


@pytest.fixture
def service(db: sessionmaker[Session], clock: MovableClock) -> Service:
    service = Service(db, clock=clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    return service


@pytest.fixture
def app(service: Service, config: Config, clock: MovableClock) -> Flask:
    return create_app(service, config, clock=clock)


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


class SignIn(Protocol):
    """Signs a new member of staff of ``role`` into a browser page of their own."""

    def __call__(
        self, role: Role, *, email: str | None = None, width: int = 1024, height: int = 768
    ) -> Page: ...


@pytest.fixture
def signed_in_page(browser: Browser, base_url: str, app: Flask) -> Iterator[SignIn]:
    opened: list[tuple[Page, Watched]] = []
    with contextlib.ExitStack() as stack:

        def sign_in(
            role: Role, *, email: str | None = None, width: int = 1024, height: int = 768
        ) -> Page:
            staff = add_staff(app, role, email)
            context, watched = stack.enter_context(
                new_context(browser, width=width, height=height, base_url=base_url)
            )
            page = context.new_page()
            sign_in_through_the_form(page, staff)
            opened.append((page, watched))
            return page

        yield sign_in
        violations = [v for page, watched in opened for v in watched.violations(page)]
    errors = [e for _, watched in opened for e in watched.errors + watched.csp]
    assert errors == [], f"the pages logged errors: {errors}"
    assert violations == [], f"Content-Security-Policy violations: {violations}"


@contextlib.contextmanager
def scheduler_ticking(app: Flask, every: float = 0.2) -> Iterator[None]:
    """The scheduler's tick every ``every`` seconds, as ``voxpop serve`` runs it, while the
    block runs: due pushes fire, reminders and outcomes go."""
    context = context_of(app)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            context.pushes.tick()
            stop.wait(every)

    thread = threading.Thread(target=run, name="scheduler-test", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the scheduler's tick did not stop"


def config_on_the_fakes(
    telegram: FakeTelegram, twilio: FakeTwilio, **telegram_settings: Any
) -> Config:
    """Settings that send to the loopback fakes (tests/fakes), with no quiet hours (a test
    runs at any time of day) and a quick push rate."""
    return Config(
        pushes=PushesConfig(quiet_hours="", rate_per_second=50.0),
        telegram=TelegramConfig(
            token=telegram.token, api_base_url=telegram.url, **telegram_settings
        ),
        twilio=TwilioConfig(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.url,
            sms_from="+15555550199",
        ),
    )


@contextlib.contextmanager
def app_with_a_dispatcher(db: sessionmaker[Session], config: Config) -> Iterator[Flask]:
    """The app as ``voxpop serve`` runs it, on the real clock: the example surveys, and a
    dispatcher thread that the service and the console wake after each commit."""
    dispatcher = DispatcherThread(partial(dispatch_forever, config, db))
    service = Service(db, on_outbox=dispatcher.wake, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    dispatcher.start()
    try:
        yield create_app(service, config, on_outbox=dispatcher.wake)
    finally:
        dispatcher.stop()


def sign_in_through_the_form(page: Page, staff: StaffView) -> None:
    """As a person does: the sign-in page, Email, Password, Sign in."""
    page.goto("/login")
    page.get_by_label("Email").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
