"""The simulator for signed-in staff: in the console's layout (header, navigation), reached
from the consultation it tries and back; signed out (a server on this machine) it is still the
page alone. In Chromium under the Content-Security-Policy, with the accessibility scan."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import expect

from bot.staff.accounts import Role
from tests.browser import axe_check, screenshot
from tests.console.conftest import SignIn
from tests.staff import sign_in

pytestmark = pytest.mark.browser


def test_from_a_consultation_to_the_simulator_in_the_console_and_back(
    signed_in_page: SignIn,
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations/central-park")
    page.get_by_role("link", name="Try central-park in the simulator").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Simulator")
    expect(page).to_have_title("Simulator – Voxpop")
    # The console's header: its navigation (Consultations marked) and the account.
    navigation = page.get_by_role("navigation", name="Console")
    expect(navigation.locator(".govuk-service-navigation__item--active")).to_have_text(
        "Consultations"
    )
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text("Trying Central Park (central-park, version 1)")).to_be_visible()
    # The simulator works as on its own page: the consultation is picked already.
    expect(page.get_by_label("Start a survey")).to_have_value("central-park")
    page.get_by_role("button", name="Start", exact=True).click()
    log = page.locator("#log")
    expect(log).to_contain_text("How often do you visit the park?")
    page.get_by_label("Message").fill("1")
    page.keyboard.press("Enter")
    expect(log).to_contain_text("What do you do in the park?")
    axe_check(page)
    screenshot(page, "simulator")
    page.get_by_role("link", name="Back to Central Park").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Central Park")


def test_signed_out_on_this_machine_the_simulator_is_the_page_alone(app: Flask) -> None:
    client = app.test_client()
    alone = client.get("/simulator").get_data(as_text=True)
    assert '<body class="sim-standalone">' in alone
    assert "govuk-service-navigation" not in alone
    sign_in(client, Role.EDITOR)
    inside = client.get("/simulator?survey=central-park").get_data(as_text=True)
    assert "govuk-service-navigation" in inside
    assert 'href="/consultations/central-park"' in inside  # back to what it tries
    assert 'id="sim-data"' in inside
