"""The push pages in Chromium, as an editor uses them: build an audience and watch the
counts change as the fields do, schedule a push, send it now, watch its funnel move while a
dispatcher sends the invitations to the fake Telegram, cancel another; an accessibility scan,
the keyboard, and screenshots to look at (``docs/console/pushes-*.png`` is not written here:
they go to the test's own folder)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, PushesConfig, TelegramConfig, TwilioConfig
from bot.console.context import ConsoleContext
from bot.delivery.dispatcher import DispatcherThread
from bot.delivery.transports import dispatch_forever
from bot.service import Service, read_survey_sources
from bot.staff.accounts import Role
from bot.web.app import create_app
from surveys.loader import EXAMPLES_DIR
from tests.bot.test_pushes import add_contact
from tests.browser import TIMEOUT_MS, axe_check
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.staff import PASSWORD, add_staff

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def dispatcher() -> Iterator[list[DispatcherThread]]:
    holder: list[DispatcherThread] = []
    yield holder
    for thread in holder:
        thread.stop()


@pytest.fixture
def app(
    db: sessionmaker[Session],
    telegram: FakeTelegram,
    twilio: FakeTwilio,
    dispatcher: list[DispatcherThread],
) -> Flask:
    config = Config(
        pushes=PushesConfig(quiet_hours="", rate_per_second=50.0),
        telegram=TelegramConfig(token=telegram.token, api_base_url=telegram.url),
        twilio=TwilioConfig(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.url,
            sms_from="+15555550199",
        ),
    )
    thread = DispatcherThread(partial(dispatch_forever, config, db))
    dispatcher.append(thread)
    service = Service(db, on_outbox=thread.wake)
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    for n, district in enumerate(("north", "north", "south")):
        add_contact(db, str(4200 + n), channel="telegram", attributes={"district": district})
    add_contact(db, "+32470000009", attributes={"district": "north"}, consent=False)
    thread.start()
    return create_app(service, config, on_outbox=thread.wake)


@pytest.fixture
def page(browser: Browser, base_url: str, app: Flask) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    staff = add_staff(app, Role.EDITOR)
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page logged errors: {errors}"


def _ticking(app: Flask) -> Iterator[None]:
    """The scheduler's tick, every 200 ms, as ``voxpop serve`` runs it."""
    context: ConsoleContext = app.extensions["voxpop_console"]
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            context.pushes.tick()
            stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_build_an_audience_schedule_send_and_watch_the_funnel(
    page: Page, base_url: str, app: Flask, telegram: FakeTelegram, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/pushes/new")
    audience = page.locator("#audience")
    page.get_by_label("Consultation").select_option("central-park")
    # The counts follow the form as it changes, before anything is scheduled.
    expect(audience).to_contain_text("3 people would be invited")
    expect(audience).to_contain_text("No consent")
    page.get_by_label("Contact details (optional)").fill("district=north")
    expect(audience).to_contain_text("2 people would be invited")
    expect(audience.get_by_role("cell", name="Telegram")).to_be_visible()
    page.get_by_label("Time", exact=True).fill("+1h")
    page.screenshot(path=str(tmp_path / "pushes-new.png"), full_page=True)

    page.get_by_role("button", name="Schedule push").click()
    # Named by what it sends and when, with the consultation's title; the number aside.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invitation, ")
    expect(page.get_by_role("heading", level=1)).to_contain_text("(Europe/Brussels)")
    expect(page.locator(".govuk-caption-l")).to_have_text("Central Park")
    expect(page.locator("#push-status")).to_have_text("scheduled")
    expect(page.get_by_text("The push is scheduled: Invitation, ")).to_be_visible()
    # It starts sending while the page is open (the scheduler, or a colleague): the page
    # follows, and "Send now" goes away without a reload.
    context: ConsoleContext = app.extensions["voxpop_console"]
    context.pushes.send_now(1)
    expect(page.locator("#push-status")).to_have_text("sending")
    expect(page.get_by_role("button", name="Send now")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop sending")).to_be_visible()
    sent = page.locator("#funnel-table tbody tr").first.locator('[data-stage="sent"]')
    expect(sent).to_contain_text("0")
    ticking = _ticking(app)
    next(ticking)
    try:
        # The page polls: the invitations leave through the dispatcher to the fake Telegram.
        expect(sent).to_contain_text("2", timeout=30_000)
    finally:
        next(ticking, None)
    assert len({c.params["chat_id"] for c in telegram.calls_to("sendMessage")}) == 2
    expect(page.locator("#funnel-table")).to_contain_text("Telegram")
    # The chart counts people: whole numbers on its axis, channels named as in the table.
    page.wait_for_function("window.Chart && window.Chart.getChart('funnel-chart')")
    ticks = page.evaluate(
        "window.Chart.getChart('funnel-chart').scales.y.ticks.map(function (t) { return t.value; })"
    )
    assert ticks
    assert all(float(t).is_integer() for t in ticks), ticks
    legend = page.evaluate(
        "window.Chart.getChart('funnel-chart').data.datasets.map(function (d) { return d.label; })"
    )
    assert legend == ["Telegram"]
    axe_check(page)
    page.screenshot(path=str(tmp_path / "pushes-show.png"), full_page=True)
    page.goto(f"{base_url}/pushes")
    axe_check(page)
    page.screenshot(path=str(tmp_path / "pushes-list.png"), full_page=True)


def test_a_push_is_cancelled_after_confirmation(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/pushes/new")
    page.get_by_label("Consultation").select_option("central-park")
    page.get_by_label("Time", exact=True).fill("+2h")
    page.get_by_role("button", name="Schedule push").click()
    expect(page.locator("#push-status")).to_have_text("scheduled")
    page.get_by_role("button", name="Cancel push").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel this push?")
    axe_check(page)
    page.get_by_role("button", name="Yes, cancel push").click()
    expect(page.locator("#push-status")).to_have_text("cancelled")
    expect(page.get_by_text("The push is cancelled")).to_be_visible()
    # Nothing left to do with it.
    expect(page.locator("#push-actions").get_by_role("button")).to_have_count(0)
    page.goto(f"{base_url}/pushes")
    expect(page.get_by_role("row", name="Push 1")).to_contain_text("cancelled")
    expect(page.get_by_role("row", name="Push 1")).to_contain_text("Central Park")


def test_errors_sit_next_to_their_fields_and_the_form_works_by_keyboard(
    page: Page, base_url: str
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page.goto(f"{base_url}/pushes/new")
    page.get_by_label("Consultation").focus()
    page.keyboard.press("ArrowDown")  # the first consultation
    page.get_by_label("Rate").fill("fast")
    # Tab to "Check audience" and press it: no mouse.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Check audience":
            break
    page.keyboard.press("Enter")
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("There is a problem")
    expect(summary.get_by_role("link", name="'fast' is not a rate")).to_have_attribute(
        "href", "#rate"
    )
    expect(page.locator("#rate-error")).to_contain_text("'fast' is not a rate")
    expect(page.get_by_label("Rate")).to_have_value("fast")  # nothing typed is lost
    results = Axe().run(page)
    serious = [
        (v["id"], v["help"])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    page.goto(f"{base_url}/pushes")
    assert [
        v["id"]
        for v in Axe().run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ] == []
