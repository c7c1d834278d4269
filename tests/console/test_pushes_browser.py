"""The push pages in Chromium, as an editor uses them: build an audience and watch the
counts change as the fields do, schedule a push, send it now, watch its funnel move while a
dispatcher sends the invitations to the fake Telegram, cancel another; an accessibility scan,
the keyboard, and screenshots (``docs/console/pushes-*.png`` under ``VOXPOP_SCREENSHOTS=1``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.staff.accounts import Role
from tests.bot.test_pushes import add_contact
from tests.browser import axe_check, screenshot
from tests.console.conftest import (
    SignIn,
    app_with_a_dispatcher,
    config_on_the_fakes,
    scheduler_ticking,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.staff import context_of

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def app(db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio) -> Iterator[Flask]:
    for n, district in enumerate(("north", "north", "south")):
        add_contact(db, str(4200 + n), channel="telegram", attributes={"district": district})
    add_contact(db, "+32470000009", attributes={"district": "north"}, consent=False)
    with app_with_a_dispatcher(db, config_on_the_fakes(telegram, twilio)) as app:
        yield app


@pytest.fixture
def page(signed_in_page: SignIn) -> Page:
    """An editor's window, tall enough for the push form."""
    return signed_in_page(Role.EDITOR, width=1200, height=1000)


def test_build_an_audience_schedule_send_and_watch_the_funnel(
    page: Page, app: Flask, telegram: FakeTelegram
) -> None:
    page.goto("/pushes/new")
    audience = page.locator("#audience")
    page.get_by_label("Consultation").select_option("central-park")
    # The counts follow the form as it changes, before anything is scheduled.
    expect(audience).to_contain_text("3 people would be invited")
    expect(audience).to_contain_text("No consent")
    page.get_by_label("Contact details (optional)").fill("district=north")
    expect(audience).to_contain_text("2 people would be invited")
    expect(audience.get_by_role("cell", name="Telegram")).to_be_visible()
    page.get_by_label("Time", exact=True).fill("+1h")
    screenshot(page, "pushes-new")

    page.get_by_role("button", name="Schedule push").click()
    # Named by what it sends and when, with the consultation's title; the number aside.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invitation, ")
    expect(page.get_by_role("heading", level=1)).to_contain_text("(Europe/Brussels)")
    expect(page.locator(".govuk-caption-l")).to_have_text("Central Park")
    expect(page.locator("#push-status")).to_have_text("scheduled")
    expect(page.get_by_text("The push is scheduled: Invitation, ")).to_be_visible()
    # It starts sending while the page is open (the scheduler, or a colleague): the page
    # follows, and "Send now" goes away without a reload.
    context_of(app).pushes.send_now(1)
    expect(page.locator("#push-status")).to_have_text("sending")
    expect(page.get_by_role("button", name="Send now")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop sending")).to_be_visible()
    sent = page.locator("#funnel-table tbody tr").first.locator('[data-stage="sent"]')
    expect(sent).to_contain_text("0")
    with scheduler_ticking(app):
        # The page polls: the invitations leave through the dispatcher to the fake Telegram.
        expect(sent).to_contain_text("2", timeout=30_000)
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
    screenshot(page, "pushes-show")
    page.goto("/pushes")
    axe_check(page)
    screenshot(page, "pushes-list")


def test_a_push_is_cancelled_after_confirmation(page: Page) -> None:
    page.goto("/pushes/new")
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
    page.goto("/pushes")
    expect(page.get_by_role("row", name="Push 1")).to_contain_text("cancelled")
    expect(page.get_by_role("row", name="Push 1")).to_contain_text("Central Park")


def test_errors_sit_next_to_their_fields_and_the_form_works_by_keyboard(page: Page) -> None:
    page.goto("/pushes/new")
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
    axe_check(page)
    page.goto("/pushes")
    axe_check(page)
