"""The security pages in Debian's Chromium (Playwright): setting up one-time codes by
reading the key, signing in with a code, the Staff and Audit log pages by keyboard alone,
and an axe-core scan of each page (no serious or critical violation)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from bot.staff.accounts import Role
from tests.browser import CHROMIUM_ARGS, TIMEOUT_MS, chromium_path
from tests.console.security.conftest import MovableClock
from tests.console.security.helpers import code_at
from tests.staff import PASSWORD, add_staff

pytestmark = [
    pytest.mark.browser,
    # The pages are the same on either engine; the other security tests run on both.
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app under waitress on an ephemeral loopback port, stopped after the test."""
    socket_map: dict[int, Any] = {}
    server = create_server(app, map=socket_map, host="127.0.0.1", port=0, threads=2)
    assert isinstance(server, BaseWSGIServer)
    assert server.socket is not None
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=socket_map, count=1)
        finally:
            wasyncore.close_all(socket_map)

    thread = threading.Thread(target=run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive(), "waitress did not stop"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``VOXPOP_SCREENSHOTS`` to keep them, else the test's folder."""
    folder = Path(os.environ.get("VOXPOP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1024, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        yield context
    finally:
        context.close()
    assert errors == []


def _watch(page: Page) -> list[str]:
    """Console errors (a CSP refusal shows up here)."""
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


def _axe(browser: Browser, context: BrowserContext, url: str) -> None:
    """No serious or critical axe-core violation on ``url``, seen as this browser sees it."""
    from axe_playwright_python.sync_playwright import Axe

    # axe injects its script: a copy of this browser's cookies, with the CSP set aside.
    scan = browser.new_context(storage_state=context.storage_state(), bypass_csp=True)
    try:
        page = scan.new_page()
        page.goto(url)
        results = Axe().run(page)
        bad = [
            (v["id"], v["help"])
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert bad == [], url
    finally:
        scan.close()


def _sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


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
    browser: Browser,
    context: BrowserContext,
    base_url: str,
    app: Flask,
    clock: MovableClock,
    shots: Path,
) -> None:
    me = add_staff(app, Role.EDITOR, "anna@city.example")
    page = context.new_page()
    errors = _watch(page)
    _sign_in(page, base_url, me.email)
    page.goto(f"{base_url}/account")
    page.get_by_role("link", name="Set up one-time codes").click()
    expect(page.get_by_role("heading", name="Set up one-time codes")).to_be_visible()
    qr = page.get_by_role("img", name="QR code for your authenticator app", exact=False)
    expect(qr).to_be_visible()
    # The QR code is drawn: the CSP let the image in.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(shots / "codes-setup.png"), full_page=True)
    _axe(browser, context, page.url)
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Turn on one-time codes").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("That code is not right")
    page.get_by_label("Code").fill(code_at(secret, clock.now))
    page.get_by_role("button", name="Turn on one-time codes").click()
    expect(page.get_by_role("heading", name="One-time codes are on")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.screenshot(path=str(shots / "recovery-codes.png"), full_page=True)
    page.get_by_role("link", name="I have kept my codes").click()

    page.get_by_role("button", name="Sign out", exact=True).click()
    _sign_in(page, base_url, me.email)
    expect(page.get_by_role("heading", name="Enter your one-time code")).to_be_visible()
    page.screenshot(path=str(shots / "code-step.png"), full_page=True)
    _axe(browser, context, page.url)
    clock.advance(seconds=30)
    page.get_by_label("Code").fill(code_at(secret, clock.now))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Signed in as anna@city.example")).to_be_visible()
    assert errors == []


def test_staff_and_audit_pages_by_keyboard(
    browser: Browser, context: BrowserContext, base_url: str, app: Flask, shots: Path
) -> None:
    admin = add_staff(app, Role.ADMIN, "admin@city.example")
    page = context.new_page()
    errors = _watch(page)
    _sign_in(page, base_url, admin.email)
    page.goto(f"{base_url}/staff")
    _axe(browser, context, page.url)
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
    page.screenshot(path=str(shots / "staff-add-error.png"), full_page=True)
    _axe(browser, context, page.url)
    page.get_by_label("Password").focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Added bob@city.example as editor.")).to_be_visible()
    page.screenshot(path=str(shots / "staff.png"), full_page=True)

    _tab_to(page, "bob@city.example")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="bob@city.example")).to_be_visible()
    _axe(browser, context, page.url)
    _tab_to(page, "Disable account")
    page.keyboard.press("Enter")
    expect(page.get_by_text("bob@city.example is disabled")).to_be_visible()
    page.screenshot(path=str(shots / "staff-member.png"), full_page=True)

    page.goto(f"{base_url}/audit")
    _tab_to(page, "Who")
    page.keyboard.type("admin@")
    _tab_to(page, "Filter")
    page.keyboard.press("Enter")
    table = page.locator("table.govuk-table")
    expect(table).to_contain_text("staff account disabled")
    expect(table).to_contain_text("staff account added")
    expect(table).not_to_contain_text("anonymous")
    page.screenshot(path=str(shots / "audit.png"), full_page=True)
    _axe(browser, context, page.url)
    assert errors == []
