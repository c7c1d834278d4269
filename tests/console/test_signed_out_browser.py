"""In Chromium: a results page left open polls for fresh numbers; once its session has ended,
the page says so in plain words, the keyboard reaches the link, and signing in again comes
back to the same page."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from bot.console.access import Role
from tests.browser import axe_check, screenshot
from tests.console.conftest import sign_in_through_the_form
from tests.staff import PASSWORD, add_staff, context_of

pytestmark = pytest.mark.browser
#: Long enough for one poll of the page's live numbers (every 5 s) on a busy machine.
POLL_MS = 20_000
MESSAGE = "You have been signed out, sign in again."


def test_an_open_results_page_says_when_its_session_has_ended(page: Page, app: Flask) -> None:
    staff = add_staff(app, Role.ANALYST)
    sign_in_through_the_form(page, staff)
    page.goto("/results/central-park")
    expect(page.get_by_role("heading", name="Central Park", level=1)).to_be_visible()
    # The session ends on the server (here: signed out everywhere from another browser).
    context_of(app).staff.end_sessions(staff.id, actor="test")
    alert = page.get_by_role("alert").filter(has_text=MESSAGE)
    expect(alert).to_be_visible(timeout=POLL_MS)
    expect(alert).to_be_focused()
    axe_check(page)
    screenshot(page, "signed-out", full_page=False)
    page.keyboard.press("Tab")
    link = page.get_by_role("link", name=MESSAGE)
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Email")).to_be_visible()
    page.get_by_label("Email").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Back where the page was.
    expect(page.get_by_role("heading", name="Central Park", level=1)).to_be_visible()
    assert page.url.endswith("/results/central-park")
