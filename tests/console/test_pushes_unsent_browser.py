"""A push with no channel set up (as ``make run`` has it: the simulator only), in Chromium:
the check step previews the invitation, the push's page says its invitations wait in the
outbox and why, and lists how it sends; the close page says what becomes of pushes. An
accessibility scan of each."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy.orm import Session, sessionmaker

from bot.staff.accounts import Role
from tests.bot.test_pushes import add_contact
from tests.browser import axe_check, screenshot
from tests.console.conftest import MovableClock, SignIn
from tests.staff import context_of

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_invitations_waiting_in_the_outbox_are_not_shown_as_sent(
    signed_in_page: SignIn, app: Flask, db: sessionmaker[Session], clock: MovableClock
) -> None:
    for n in range(3):
        add_contact(db, f"+3247000000{n}")
    page = signed_in_page(Role.EDITOR)
    page.goto("/pushes/new")
    page.get_by_label("Consultation").select_option("street-lighting")
    page.get_by_label("Quiet hours").fill("")
    page.get_by_role("button", name="Check audience").press("Enter")
    expect(page.get_by_role("heading", name="What the invitation says")).to_be_visible()
    expect(page.locator("#sms-cost")).to_contain_text("sms_price_per_segment")
    axe_check(page)
    screenshot(page, "push-check")
    page.get_by_role("button", name="Schedule push").click()
    expect(page.locator("#push-status")).to_have_text("scheduled")
    pushes = context_of(app).pushes
    pushes.send_now(1)
    # The push's rate lets a few go each second: the test's clock moves them along.
    for _ in range(60):
        pushes.tick()
        if not pushes.report(1).total.waiting:
            break
        clock.advance(seconds=10)
    pushes.tick()
    expect(page.locator("#push-status")).to_have_text(
        "done: 3 invitations waiting to be sent; no SMS channel is set up"
    )
    expect(page.locator("#push-unsent")).to_contain_text(
        "3 invitations waiting to be sent; no SMS channel is set up. Nobody has received them yet"
    )
    expect(page.get_by_text("Channels, in order")).to_be_visible()
    axe_check(page)
    screenshot(page, "push-unsent")
    page.goto("/consultations/street-lighting/close")
    expect(page.locator("#close-pushes")).to_contain_text("No invitation push")
    axe_check(page)
