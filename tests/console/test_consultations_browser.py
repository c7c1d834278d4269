"""The Consultations and Outcome pages in Chromium: a consultation with a mistake uploaded,
the problem next to its line, fixed in the browser, loaded, listed, closed; an outcome
published and queued to those who took part. Accessibility scanned, keyboard used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from bot.service import Service
from bot.staff.accounts import Role
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Message
from tests.browser import axe_check, screenshot
from tests.console.conftest import NOW, MovableClock, SignIn

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
    # By keyboard, the summary's link leads to the line.
    summary.get_by_role("link").first.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#line-8$"))

    # Fixed in the text box, which holds the uploaded file.
    box = page.get_by_label("Or type, paste or edit it here")
    expect(box).to_have_value(MISTAKE)
    box.fill(MISTAKE.replace('"yes-no"', '"yesno"'))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("bins has no problems")).to_be_visible()
    prices = page.locator("#sms-prices")
    expect(prices).to_be_visible()
    expect(page.locator("table", has=page.get_by_text("In en:")).first).to_contain_text("GSM-7")
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
    page.get_by_role("button", name="Close").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Close Bins?")
    axe_check(page)
    page.get_by_role("button", name="Yes, close it now").click()
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
    page.get_by_label("In en (the default").fill("Central Park: 20 new bins arrive in May.")
    page.get_by_role("button", name="Check and preview").click()
    expect(page.locator("#audience")).to_be_visible()
    expect(page.get_by_text("2 people who took part")).to_be_visible()
    axe_check(page)
    screenshot(page, "outcome")
    page.get_by_role("button", name="Publish to 2 people").click()
    expect(page.get_by_text("sends it to 2 people who took part")).to_be_visible()
    axe_check(page)
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


def test_home_in_the_browser(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ANALYST)
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("What is running now")
    expect(page.locator("#open-consultations")).to_contain_text("Central Park")
    axe_check(page)
    screenshot(page, "home")
