"""The Consultations and Outcome pages in Chromium: a consultation with a mistake uploaded,
the problem next to its line, fixed in the browser, loaded, listed, closed; an outcome
published and queued to those who took part. Accessibility scanned, keyboard used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from bot.service import Service
from bot.staff.accounts import Role
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Message
from tests.browser import axe_check, new_context, screenshot
from tests.console.conftest import NOW, MovableClock, SignIn, sign_in_through_the_form
from tests.staff import add_staff

pytestmark = [pytest.mark.browser]

MISTAKE = """id = "bins"
title = { en = "Bins", nl = "Vuilbakken" }
languages = ["en", "nl"]
keywords = ["BINS"]

[[questions]]
id = "enough"
type = "yes-no"
text.en = "Are there enough bins in your street?"
text.nl = "Zijn er genoeg vuilbakken in uw straat?"
"""


def test_upload_a_mistake_fix_it_in_the_browser_load_list_and_close(
    signed_in_page: SignIn, tmp_path: Path
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations")
    page.get_by_role("button", name="New consultation or new version").click()
    upload = tmp_path / "bins.toml"
    upload.write_text(MISTAKE)
    page.get_by_label("Upload a consultation file").set_input_files(str(upload))
    page.get_by_role("button", name="Check").click()

    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Line 8: question 'enough' has unknown type 'yes-no'")
    line = page.locator("#line-8")
    expect(line).to_contain_text('type = "yes-no"')
    expect(line.locator(".govuk-error-message")).to_contain_text("unknown type 'yes-no'")
    axe_check(page)
    screenshot(page, "consultation-problems")
    # Line numbers beside the text box, the line with the problem in red.
    box = page.get_by_label("Or type, paste or edit it here")
    gutter = page.locator("[data-editor-gutter]")
    expect(gutter).to_contain_text("1\n2\n3")
    expect(gutter.locator(".voxpop-editor__error")).to_have_text("8")
    # Line 8 of the box sits level with the number 8.
    eighth = gutter.locator("span").nth(7).bounding_box()
    top = box.bounding_box()
    assert eighth is not None
    assert top is not None
    line_height = box.evaluate("b => parseFloat(getComputedStyle(b).lineHeight)")
    assert abs((top["y"] + 7 + 7 * line_height) - eighth["y"]) < 3
    # By keyboard, the summary's link puts the caret at the start of line 8 of the box.
    summary.get_by_role("link").first.focus()
    page.keyboard.press("Enter")
    expect(box).to_be_focused()
    caret = box.evaluate("b => b.selectionStart")
    assert MISTAKE[:caret].count("\n") == 7
    assert MISTAKE[caret:].startswith('type = "yes-no"')
    expect(gutter.locator(".voxpop-editor__current")).to_have_text("8")

    # Fixed in the text box, which holds the uploaded file.
    expect(box).to_have_value(MISTAKE)
    box.fill(MISTAKE.replace('"yes-no"', '"yesno"'))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("bins has no problems")).to_be_visible()
    prices = page.locator("#sms-prices")
    expect(prices).to_be_visible()
    english = page.locator("table", has=page.get_by_text("In English (en):")).first
    expect(english).to_contain_text("Question 1 (enough)")
    expect(english).to_contain_text("Fits in one SMS")
    expect(page.locator("td[data-channel=telegram]").first).to_be_visible()
    axe_check(page)
    screenshot(page, "consultation-checked")

    # Load by keyboard: focus the button, press Enter.
    load = page.get_by_role("button", name="Load bins")
    load.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("bins is loaded as version 1.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bins")
    axe_check(page)

    page.goto("/consultations")
    row = page.locator("tr", has=page.get_by_role("link", name="Bins"))
    expect(row).to_contain_text("Open")
    axe_check(page)
    screenshot(page, "consultations")

    row.get_by_role("link", name="Bins").click()
    page.get_by_role("button", name="Close consultation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Close the consultation Bins?")
    axe_check(page)
    page.get_by_role("button", name="Yes, close the consultation now").click()
    expect(page.get_by_text("Bins is closed")).to_be_visible()
    page.goto("/consultations")
    expect(page.locator("tr", has=page.get_by_role("link", name="Bins"))).to_contain_text("Closed")


def test_publish_an_outcome_and_it_is_queued_to_those_who_took_part(
    signed_in_page: SignIn, app: Flask, service: Service, clock: MovableClock
) -> None:
    for number in ("+32470000011", "+32470000012"):
        for n, text in enumerate(("PARK", "1")):
            service.receive(InboundMessage(Address("sms", number), text, f"{number}-{n}", NOW))
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations/central-park/outcome")
    page.get_by_label("In en (required").fill("Central Park: 20 new bins arrive in May.")
    page.get_by_role("button", name="Check and preview").click()
    expect(page.locator("#audience")).to_be_visible()
    expect(page.get_by_text("2 people who took part")).to_be_visible()
    axe_check(page)
    screenshot(page, "outcome")
    # Central Park is still open: said before the button that publishes.
    expect(page.locator(".voxpop-still-open")).to_contain_text("This consultation is still open")
    page.get_by_role("button", name="Publish to 2 people").click()
    expect(page.get_by_text("sends it to 2 people who took part")).to_be_visible()
    # What was published, for whom, in which language, when and by whom.
    published = page.locator(".govuk-summary-card")
    expect(published.get_by_role("row", name="Everyone")).to_contain_text(
        "Central Park: 20 new bins arrive in May."
    )
    expect(published).to_contain_text("By editor")
    expect(published.locator("time")).to_have_count(2)
    axe_check(page)
    screenshot(page, "outcome-published")
    # The scheduler's tick sends what is due (spread at the rate): both get it, in the outbox.
    clock.advance(minutes=5)
    app.extensions["voxpop_console"].pushes.tick()
    with transaction(service.sessions, read_only=True) as s:
        sent = s.scalars(
            select(Message).where(Message.kind == "push", Message.direction == "out")
        ).all()
    assert sorted(m.address or "" for m in sent if m.text.startswith("Central Park: 20")) == [
        "+32470000011",
        "+32470000012",
    ]


def test_an_outcome_without_the_default_language_text_says_so_at_the_top_and_at_the_field(
    signed_in_page: SignIn, tmp_path: Path
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations/central-park/outcome")
    page.get_by_label("In nl").fill("Twintig nieuwe vuilbakken in mei.")
    page.get_by_role("button", name="Check and preview").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Write the en text: en is the default language")
    expect(page.locator("#text-en-error")).to_contain_text("Write the en text")
    expect(page.locator("#audience")).to_have_count(0)
    axe_check(page)
    page.screenshot(path=str(tmp_path / "outcome-no-default.png"), full_page=True)
    # The summary's link leads to the field; it is filled from the keyboard.
    summary.get_by_role("link").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#text-en")).to_be_focused()
    page.keyboard.type("Twenty new bins arrive in May.")
    page.get_by_role("button", name="Check and preview").click()
    expect(page.locator("#audience")).to_be_visible()
    expect(page.locator(".govuk-error-summary")).to_have_count(0)


def test_home_in_the_browser(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ANALYST)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("What is running now")
    expect(page.locator("#open-consultations")).to_contain_text("Central Park")
    axe_check(page)
    screenshot(page, "home")


def test_without_script_the_editor_numbers_its_lines_and_links_lead_to_the_listing(
    browser: Browser, base_url: str, app: Flask
) -> None:
    with new_context(browser, base_url=base_url, java_script_enabled=False) as (context, _):
        page = context.new_page()
        sign_in_through_the_form(page, add_staff(app, Role.EDITOR))
        page.goto("/consultations/new")
        page.get_by_label("Or type, paste or edit it here").fill(MISTAKE)
        page.get_by_role("button", name="Check").click()
        gutter = page.locator("[data-editor-gutter]")
        expect(gutter.locator(".voxpop-editor__error")).to_have_text("8")
        page.locator(".govuk-error-summary").get_by_role("link").first.click()
        expect(page).to_have_url(re.compile(r"#line-8$"))
        expect(page.locator("#line-8")).to_contain_text("unknown type 'yes-no'")


def test_the_help_page_explains_the_format_and_shows_the_examples(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations/new")
    page.get_by_role("link", name="How to write a consultation file").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How to write a consultation file")
    expect(page.get_by_text("Text needs straight double quotes")).to_be_visible()
    page.locator("summary", has_text="central-park.toml").click()
    expect(page.get_by_label("The file central-park.toml")).to_contain_text('id = "central-park"')
    axe_check(page)
    screenshot(page, "consultation-help")
