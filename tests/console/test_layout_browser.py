"""The layout and the error pages in a real browser (Chromium through Playwright): by
keyboard, on a narrow screen, under the Content-Security-Policy, with an accessibility scan.
The ``page`` fixture (tests/console/conftest.py) fails a test whose page logged an error or
a policy violation."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, Response, expect

from bot.staff.accounts import Role
from bot.web.security import CONTENT_SECURITY_POLICY
from tests.browser import axe_check, screenshot
from tests.console.conftest import SignIn
from tests.console.trial import PHONE, with_trial

pytestmark = pytest.mark.browser
#: The layout is the same on either engine: most tests run on one; the harness on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
#: GOV.UK Frontend's focus colour: a yellow box any focused link or button shows.
FOCUS_YELLOW = "rgb(255, 221, 0)"


@pytest.fixture
def app(app: Flask) -> Flask:
    return with_trial(app)


def failed_requests(page: Page) -> list[str]:
    """Every answer of 400 or more the page gets from now on (fonts, images, scripts...)."""
    failed: list[str] = []

    def check(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", check)
    return failed


def test_a_page_in_the_layout_loads_its_design_system_and_nothing_else(
    signed_in_page: SignIn,
) -> None:
    # On both engines: the harness (waitress, create_app, sign-in, Chromium) works on each.
    page = signed_in_page(Role.ADMIN, email="alex.admin@city.example")
    failed = failed_requests(page)
    response = page.goto("/trial/page")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page).to_have_title("Trial page – Voxpop")
    # The module script ran (GOV.UK Frontend started) and the CSS is the vendored one.
    expect(page.locator("body")).to_have_class(re.compile(r"\bgovuk-frontend-supported\b"))
    font = page.locator("h1").evaluate("e => getComputedStyle(e).fontFamily")
    assert font.startswith("system-ui")
    # A character count is one of the components the script runs.
    expect(page.locator(".govuk-character-count__status")).to_have_text(
        "You have 160 characters remaining"
    )
    assert failed == []
    axe_check(page)
    screenshot(page, "layout")


@sqlite_only
def test_the_skip_link_and_the_navigation_by_keyboard(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ADMIN)
    page.goto("/trial/page")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    assert skip.evaluate("e => getComputedStyle(e).backgroundColor") == FOCUS_YELLOW
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # Tab goes on from the main content: the back link is before it, the heading's form after.
    page.keyboard.press("Tab")
    expect(page.get_by_label("Name of the push")).to_be_focused()

    page.goto("/trial/page")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # Voxpop, the service name
    expect(page.get_by_role("link", name="Voxpop", exact=True)).to_be_focused()
    nav = page.get_by_role("navigation", name="Console")
    for name in ["Home", "Consultations", "Contacts", "Pushes", "Results", "Audit log", "Staff"]:
        page.keyboard.press("Tab")
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_focused()
        # Focus is visible: GOV.UK's yellow.
        assert link.evaluate("e => getComputedStyle(e).backgroundColor") == FOCUS_YELLOW
    page.keyboard.press("Tab")  # the signed-in name: the member's own account page
    expect(page.get_by_role("link", name=re.compile(r"admin\d+@city\.example"))).to_be_focused()
    page.keyboard.press("Tab")
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_focused()
    expect(page.get_by_text(re.compile(r"Signed in as admin\d+@city\.example"))).to_be_visible()


@sqlite_only
def test_the_menu_folds_on_a_narrow_screen(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.EDITOR, email="eda.editor@city.example", width=390, height=844)
    page.goto("/trial/page")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Contacts")).to_be_hidden()
    screenshot(page, "layout-narrow", full_page=False)
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Contacts")).to_be_visible()
    expect(nav.get_by_role("link", name="Staff")).to_have_count(0)  # editors: no Staff
    axe_check(page)
    screenshot(page, "layout-narrow-menu", full_page=False)


@sqlite_only
def test_a_form_error_is_summarised_and_leads_to_its_field(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.EDITOR, email="eda.editor@city.example")
    page.goto("/trial/page")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_title("Error: Trial page – Voxpop")
    summary = page.locator(".govuk-error-summary")
    # GOV.UK Frontend's script moves focus to the summary, so screen readers hear it first.
    expect(summary).to_be_focused()
    expect(summary.get_by_role("alert")).to_be_visible()
    expect(summary).to_contain_text("There is a problem")
    summary.get_by_role("link", name="Enter a name for the push").click()
    expect(page.get_by_label("Name of the push")).to_be_focused()
    axe_check(page)
    screenshot(page, "form-error")

    page.get_by_label("Name of the push").fill("Park, second wave")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert", name="Success")).to_contain_text("Push saved")
    expect(page.locator("main")).not_to_contain_text(PHONE)


@sqlite_only
@pytest.mark.parametrize(
    ("path", "status", "title", "name"),
    [
        ("/no/such/page", 404, "Page not found", "error-404"),
        ("/trial/editors-only", 403, "You cannot open this page", "error-403"),
        ("/trial/boom", 500, "Sorry, there is a problem with Voxpop", "error-500"),
    ],
)
def test_an_error_page_in_the_browser(
    signed_in_page: SignIn, path: str, status: int, title: str, name: str
) -> None:
    page = signed_in_page(Role.ANALYST, email="ana.analyst@city.example")
    response = page.goto(path)
    assert response is not None
    assert response.status == status
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page).to_have_title(f"{title} – Voxpop")
    expect(page.locator("body")).not_to_contain_text("Traceback")
    # Still in the console: the analyst's navigation and Sign out.
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link")).to_have_text(["Home", "Pushes", "Results"])
    page.get_by_role("link", name="Go to the home page").click()
    expect(page).to_have_title("What is running now – Voxpop")
    page.go_back()
    axe_check(page)
    screenshot(page, name)


def test_signed_out_an_error_page_has_no_navigation(page: Page) -> None:
    response = page.goto("/no/such/page")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    axe_check(page)


@sqlite_only
def test_the_console_runs_without_a_policy_violation(signed_in_page: SignIn) -> None:
    # The page fixtures fail any test whose page broke the policy; this one says so plainly,
    # over the layout's states: signed in, a form with errors, a flash, error pages, signed out.
    page = signed_in_page(Role.ADMIN)
    page.goto("/trial/page")
    expect(page.locator("body")).to_have_class(re.compile(r"\bgovuk-frontend-supported\b"))
    page.get_by_role("button", name="Save").click()
    page.get_by_label("Name of the push").fill("Trial")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert", name="Success")).to_be_visible()
    for path in ("/no/such/page", "/trial/boom", "/trial/abort/429", "/"):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.evaluate("window.__violations") == []
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("window.__violations") == []
    axe_check(page)
    screenshot(page, "sign-in")
