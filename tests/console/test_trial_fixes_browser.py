"""What the new-user trial found, as a person meets it in a real browser: an analyst's Home
leads to results (never to a refusal), a time column names its zone in the header, and the
first-admin page shows every problem of the form at once."""

from __future__ import annotations

from flask import Flask
from playwright.sync_api import Page, expect

from bot.staff.accounts import Role
from tests.browser import axe_check, screenshot
from tests.console.conftest import SignIn
from tests.staff import context_of


def test_an_analyst_goes_from_home_to_the_results(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ANALYST)
    page.goto("/")
    table = page.locator("#open-consultations")
    expect(table.get_by_role("columnheader", name="Closes (Europe/Brussels time)")).to_be_visible()
    axe_check(page)
    screenshot(page, "trial-home-analyst")
    table.get_by_role("link", name="Central Park").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Central Park")
    assert page.url.endswith("/results/central-park")
    expect(page.get_by_text("You cannot open this page")).to_have_count(0)


def test_the_first_admin_page_shows_every_problem_at_once(page: Page, app: Flask) -> None:
    token = context_of(app).staff.setup_token()
    page.goto(f"/setup/{token}")
    page.get_by_label("Email").fill("admin")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password", exact=True).press("Enter")
    summary = page.locator(".govuk-error-summary")
    expect(summary.get_by_role("link", name="Enter an email address")).to_be_visible()
    expect(summary.get_by_role("link", name="Use at least 12 characters.")).to_be_visible()
    axe_check(page)
    screenshot(page, "trial-setup-errors")
    # From the summary, the keyboard reaches each field.
    summary.get_by_role("link", name="Use at least 12 characters.").press("Enter")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
