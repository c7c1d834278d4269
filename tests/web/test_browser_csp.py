"""The simulator works under the Content-Security-Policy: a whole consultation in Chromium
without one violation (the page's script and styles are files, never inline)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from bot.web.security import CONTENT_SECURITY_POLICY
from tests.browser import TIMEOUT_MS, WATCH_CSP, base_url, browser
from tests.web.test_browser import type_message

__all__ = ["base_url", "browser"]  # fixtures (tests/browser.py), used by name

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def console() -> list[str]:
    """The console's errors about the policy."""
    return []


@pytest.fixture
def page(browser: Browser, base_url: str, console: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 480, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.on(
        "console",
        lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    response = page.goto(f"{base_url}/simulator")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    try:
        yield page
    finally:
        context.close()


def violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("window.__violations")
    return found


def test_a_consultation_runs_without_a_policy_violation(page: Page, console: list[str]) -> None:
    page.get_by_label("Channel").select_option("telegram")
    page.get_by_label("Start a survey").select_option("street-lighting")
    page.get_by_role("button", name="Start", exact=True).click()
    question = page.locator(".msg-bot").last
    question.get_by_role("button", name="2. No").click()
    scale = page.locator(".msg-bot").last
    expect(scale).to_contain_text("How safe do you feel walking home after dark?")
    scale.get_by_role("button", name="4", exact=True).click()
    type_message(page, "SKIP")
    expect(page.locator(".msg-bot").last).to_contain_text("Thanks!")

    assert violations(page) == []
    assert console == []


def test_an_inline_script_would_be_caught(page: Page, console: list[str]) -> None:
    # Both watches see what the policy blocks: an inline script is refused and reported.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__ran = true'; document.body.append(s); }"
        )

    expect(page.locator("body")).to_be_visible()
    assert page.evaluate("window.__ran === undefined")
    assert violations(page) == ["script-src-elem inline"]
    assert len(console) == 1
