"""The security pages in Debian's Chromium (Playwright): setting up one-time codes by
reading the key, signing in with a code, the Staff and Audit log pages by keyboard alone,
and an axe-core scan of each page (no serious or critical violation)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from bot.staff.accounts import Role
from tests.browser import axe_check, screenshot
from tests.console.conftest import MovableClock, SignIn
from tests.console.security.helpers import code_at
from tests.staff import PASSWORD

pytestmark = [
    pytest.mark.browser,
    # The pages are the same on either engine; the other security tests run on both.
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


def _tab_to(page: Page, text: str, limit: int = 60) -> None:
    """Press Tab until the focused element says ``text``, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " const label = e.labels && e.labels.length ? e.labels[0].innerText : '';"
            " return (label || e.innerText || e.value || '').trim(); }"
        )
        if text in focused:
            return
    raise AssertionError(f"Tab never reached {text!r}")


def test_codes_set_up_by_reading_the_key_then_asked_at_sign_in(
    signed_in_page: SignIn, clock: MovableClock
) -> None:
    page = signed_in_page(Role.EDITOR, email="anna@city.example")
    page.goto("/account")
    page.get_by_role("link", name="Set up one-time codes").click()
    expect(page.get_by_role("heading", name="Set up one-time codes")).to_be_visible()
    qr = page.get_by_role("img", name="QR code for your authenticator app", exact=False)
    expect(qr).to_be_visible()
    # The QR code is drawn: the CSP let the image in.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "codes-setup")
    axe_check(page)
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Turn on one-time codes").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("That code is not right")
    page.get_by_label("Code").fill(code_at(secret, clock.now))
    page.get_by_role("button", name="Turn on one-time codes").click()
    expect(page.get_by_role("heading", name="One-time codes are on")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    screenshot(page, "recovery-codes")
    page.get_by_role("link", name="I have kept my codes").click()

    page.get_by_role("button", name="Sign out", exact=True).click()
    page.goto("/login")
    page.get_by_label("Email").fill("anna@city.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Enter your one-time code")).to_be_visible()
    screenshot(page, "code-step")
    axe_check(page)
    clock.advance(seconds=30)
    page.get_by_label("Code").fill(code_at(secret, clock.now))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Signed in as anna@city.example")).to_be_visible()


def test_staff_and_audit_pages_by_keyboard(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ADMIN, email="admin@city.example", height=900)
    page.goto("/staff")
    axe_check(page)
    _tab_to(page, "Add a member of staff")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Add a member of staff")).to_be_visible()
    _tab_to(page, "Email")
    page.keyboard.type("bob@city.example")
    _tab_to(page, "Role")
    page.keyboard.press("ArrowDown")  # Analyst → Editor
    _tab_to(page, "Password")
    page.keyboard.type("short")
    _tab_to(page, "Add account")
    page.keyboard.press("Enter")
    # The mistake is said next to the field and in the summary; nothing else is lost.
    expect(page.locator(".govuk-error-summary")).to_contain_text("Use at least 12 characters.")
    expect(page.get_by_label("Email")).to_have_value("bob@city.example")
    screenshot(page, "staff-add-error")
    axe_check(page)
    page.get_by_label("Password").focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    # The banner takes the focus once the page's script runs: Tab from there, not from
    # wherever the focus was before it moved.
    added = page.get_by_role("alert").filter(has_text="Added bob@city.example as editor.")
    expect(added).to_be_focused()
    screenshot(page, "staff")

    _tab_to(page, "bob@city.example")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="bob@city.example")).to_be_visible()
    axe_check(page)
    _tab_to(page, "Disable account")
    page.keyboard.press("Enter")
    expect(page.get_by_text("bob@city.example is disabled")).to_be_visible()
    screenshot(page, "staff-member")

    page.goto("/audit")
    _tab_to(page, "Who")
    page.keyboard.type("admin@")
    _tab_to(page, "Filter")
    page.keyboard.press("Enter")
    table = page.locator("table.govuk-table")
    expect(table).to_contain_text("staff account disabled")
    expect(table).to_contain_text("staff account added")
    expect(table).not_to_contain_text("anonymous")
    screenshot(page, "audit")
    axe_check(page)
