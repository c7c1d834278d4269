"""The simulator in a real browser: Debian's Chromium driven by Playwright, against the app
served by waitress on loopback (the shared fixtures of tests/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import TIMEOUT_MS, base_url, browser

__all__ = ["base_url", "browser"]  # fixtures (tests/browser.py), used by name

pytestmark = [
    pytest.mark.browser,
    # The browser shows the same JSON on either engine; test_api covers both.
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    # A phone-sized window: the simulator is used on phones as much as on desktops.
    context = browser.new_context(viewport={"width": 480, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A 4xx answer is logged by Chromium as "Failed to load resource"; that is expected here.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.goto(f"{base_url}/simulator")
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page logged errors: {errors}"


def type_message(page: Page, text: str) -> None:
    # As a person would: once the last message is answered (Send is enabled again). A message
    # typed while one is on its way stays in the box, unsent, on a busy machine.
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def test_sms_consultation_by_typing(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#hints")).to_contain_text("PARK")
    expect(page.get_by_label("Channel")).to_have_value("sms")
    expect(page.get_by_label("From")).to_have_value("+15555550100")

    type_message(page, "PARK")
    question = page.locator(".msg-bot").last
    expect(question).to_contain_text("How often do you visit the park?")
    # The numbered list exactly as the phone shows it, line breaks kept.
    text = question.locator(".msg-text").inner_text()
    assert "\n1 Every week\n2 Every month\n3 Rarely\n4 Never" in text
    expect(question.locator(".msg-meta")).to_have_text("1 segment")
    expect(page.locator(".keyboard-button")).to_have_count(0)

    script = [
        ("1", "What do you do in the park?"),
        ("1 4", "How clean is the park?"),
        ("4", "Should the city build a new playground in the park?"),
        ("1", "In what year were you born?"),
        ("SKIP", "One idea to make the park better?"),
        # Markup typed by a citizen is shown as text, never interpreted.
        ("<b>More</b> benches", "may the city send you short consultations"),
        ("no", "Thank you! The results will be on the city website in April."),
    ]
    for reply, expected in script:
        type_message(page, reply)
        expect(page.locator(".msg-bot").last).to_contain_text(expected)

    expect(page.locator(".msg-user").nth(-2)).to_contain_text("<b>More</b> benches")
    expect(page.locator(".msg-user b")).to_have_count(0)
    expect(page.get_by_label("Message")).to_be_focused()
    # The log scrolls itself: the thank-you is on screen without the user scrolling.
    expect(page.locator(".msg-bot").last).to_be_in_viewport()
    page.screenshot(path=str(tmp_path / "sms.png"))


def test_telegram_consultation_by_buttons(page: Page, tmp_path: Path) -> None:
    page.get_by_label("Channel").select_option("telegram")
    expect(page.get_by_label("From")).to_have_value("100000")
    expect(page.locator("#phone-title")).to_have_text("Telegram · 100000")

    page.get_by_label("Start a survey").select_option("street-lighting")
    page.get_by_role("button", name="Start", exact=True).click()
    question = page.locator(".msg-bot").last
    expect(question).to_contain_text("Is there a street near you that is too dark at night?")
    expect(question.get_by_role("button")).to_have_text(["1. Yes", "2. No"])
    expect(question.locator(".msg-meta")).to_have_count(0)

    question.get_by_role("button", name="2. No").click()
    expect(page.locator(".msg-user").last).to_have_text("You: 2. No")
    scale = page.locator(".msg-bot").last
    expect(scale).to_contain_text("How safe do you feel walking home after dark?")
    expect(scale.get_by_role("button")).to_have_text(["1", "2", "3", "4", "5"])

    scale.get_by_role("button", name="4", exact=True).click()
    expect(page.locator(".msg-bot").last).to_contain_text("Anything else about street lighting?")
    # A free-text question has no buttons: the citizen types.
    type_message(page, "SKIP")
    thanks = page.locator(".msg-bot").last
    expect(thanks).to_contain_text("Thanks! We will fix the darkest spots first.")
    expect(thanks).to_be_in_viewport()
    page.screenshot(path=str(tmp_path / "telegram.png"))


def test_bad_address_shows_the_reason(page: Page) -> None:
    address = page.get_by_label("From")
    address.fill("alice")
    address.dispatch_event("change")
    type_message(page, "PARK")
    expect(page.get_by_role("alert")).to_contain_text("address is not valid for sms")
    expect(page.locator(".msg-user").last).to_contain_text("Not delivered")
    expect(page.locator(".msg-bot")).to_have_count(0)


def test_a_reload_shows_the_conversation_the_server_carries_on(page: Page, tmp_path: Path) -> None:
    for reply in ("PARK", "1", "LANG FR"):
        type_message(page, reply)
        expect(page.locator(".msg-bot").last).to_be_visible()
    expect(page.locator(".msg-bot").last).to_contain_text("Que faites-vous au parc")

    page.reload()
    # Not "New conversation": the French mid-survey question the server will go on from.
    expect(page.locator(".note").first).to_contain_text("so far")
    expect(page.locator(".msg-user")).to_have_text(["You: PARK", "You: 1", "You: LANG FR"])
    last = page.locator(".msg-bot").last
    expect(last).to_contain_text("Que faites-vous au parc")
    # Each message says its language, for screen readers: the intro English, then French.
    expect(page.locator(".msg-bot .msg-text [lang]").first).to_have_attribute("lang", "en")
    expect(last.locator(".msg-text [lang]")).to_have_attribute("lang", "fr")
    # Scrolled to where the conversation stands.
    expect(last).to_be_in_viewport()
    page.screenshot(path=str(tmp_path / "reloaded.png"))

    page.get_by_role("button", name="Start over").click()
    expect(page.locator(".note")).to_have_text(["New conversation on SMS from +15555550100"])
    expect(page.locator(".msg")).to_have_count(0)
    type_message(page, "PARK")
    # A new citizen to the bot: English from the start, and the first question again.
    expect(page.locator(".msg-bot").last).to_contain_text("How often do you visit the park?")
    page.reload()
    expect(page.locator(".msg-user")).to_have_text(["You: PARK"])


def test_the_buttons_of_a_dutch_question_are_dutch_and_work_by_keyboard(
    page: Page, tmp_path: Path
) -> None:
    page.get_by_label("Channel").select_option("telegram")
    for reply in ("LICHT", "LANG NL"):
        type_message(page, reply)
        expect(page.locator(".msg-bot").last).to_be_visible()
    question = page.locator(".msg-bot").last
    expect(question).to_contain_text("Is er bij u in de buurt een straat")
    buttons = question.get_by_role("button")
    expect(buttons).to_have_text(["1. Ja", "2. Nee"])
    expect(buttons.first).to_have_attribute("lang", "nl")
    # Keyboard only: Tab reaches the reply buttons, Enter presses one.
    buttons.first.focus()
    page.keyboard.press("Tab")
    expect(buttons.nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".msg-user").last).to_have_text("You: 2. Nee")
    expect(page.locator(".msg-bot").last).to_contain_text("Hoe veilig voelt u zich")
    # Answered: its buttons are gone, as Voxpop removes them in Telegram.
    expect(page.get_by_role("button", name="2. Nee")).to_have_count(0)
    expect(page.locator(".msg-bot").last).to_be_in_viewport()
    page.screenshot(path=str(tmp_path / "dutch.png"))


def test_the_page_passes_an_accessibility_check(browser: Browser, base_url: str) -> None:
    # axe-core (bundled with axe-playwright-python, offline) on a conversation with buttons,
    # messages in two languages, and an error shown.
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(viewport={"width": 480, "height": 900}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/simulator")
        page.get_by_label("Channel").select_option("telegram")
        for reply in ("LIGHTS", "LANG NL"):
            type_message(page, reply)
            expect(page.locator(".msg-bot").last).to_be_visible()
        expect(page.locator(".keyboard-button").last).to_have_attribute("lang", "nl")
        page.get_by_label("Start a survey").select_option("")
        page.get_by_role("button", name="Start", exact=True).click()
        expect(page.get_by_role("alert")).to_have_text("Choose a survey to start.")
        results = Axe().run(page)
        violations = [(v["id"], v["help"]) for v in results.response["violations"]]
        assert violations == []
        # Every control has a name a screen reader can say.
        for control in page.locator("input, select, button").all():
            name = control.get_attribute("aria-label") or control.evaluate(
                "c => c.labels && c.labels.length ? c.labels[0].textContent : c.textContent"
            )
            assert name
            assert name.strip()
    finally:
        context.close()
