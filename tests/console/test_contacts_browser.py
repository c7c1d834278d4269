"""The Contacts pages in Chromium, as an editor uses them: import a file with a mistake,
see it by line, fix it and import, watch the progress bar to the end, search by district,
open a contact, erase them with confirmation, by keyboard; no serious accessibility violation
(axe-core), no Content-Security-Policy report, and no whole phone number on any page.

Screenshots go to ``docs/console/`` under ``VOXPOP_SCREENSHOTS=1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import FilePayload, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.contacts import WORKER_EXTENSION
from bot.contacts.worker import ImportWorker
from bot.staff.accounts import Role
from storage.db import transaction
from storage.models import Address as AddressRow
from tests.bot.test_service import cells_containing
from tests.browser import axe_check, screenshot
from tests.console.conftest import SignIn
from tests.console.contacts_support import (
    Gate,
    clock,
    email_of,
    large,
    whole_numbers,
    with_bad_line,
)
from tests.staff import context_of

__all__ = ["clock"]  # a fixture, used by name

pytestmark = pytest.mark.browser

EXTRA_ROWS = 3000


@pytest.fixture
def gate(app: Flask) -> Iterator[Gate]:
    """The app's import worker, held after its first chunk when the test arms it."""
    gate = Gate()
    worker = ImportWorker(context_of(app).contacts, progress=gate)
    app.extensions[WORKER_EXTENSION] = worker
    yield gate
    gate.release()
    worker.join(60)


def csv_file(data: bytes) -> FilePayload:
    return {"name": "city.csv", "mimeType": "text/csv", "buffer": data}


def stored_addresses(db: sessionmaker[Session]) -> list[str]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AddressRow.value)))


def test_an_editor_imports_searches_opens_and_erases(
    signed_in_page: SignIn, gate: Gate, db: sessionmaker[Session], engine: Engine
) -> None:
    shown: list[str] = []

    def look(name: str) -> None:
        """Every page is scanned, kept for the number check, and photographed."""
        axe_check(page)
        shown.append(page.content())
        screenshot(page, name)

    page = signed_in_page(Role.EDITOR, email=email_of("editor"))
    page.goto("/contacts")
    expect(page.get_by_role("heading", name="Contacts", exact=True)).to_be_visible()
    # Nobody yet: the page says so (not "no contacts match") and where to start.
    expect(page.get_by_role("heading", name="No contacts yet")).to_be_visible()
    expect(page.get_by_role("link", name="Import a contacts file")).to_be_visible()
    page.get_by_role("button", name="Import contacts").click()
    look("contacts-import")

    # A file with a mistake on line 14: the check names it, and nothing is stored.
    page.get_by_label("Contacts file (CSV)").set_input_files(files=csv_file(with_bad_line()))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="Check the file before importing")).to_be_visible()
    problems = page.locator("#problems")
    expect(problems.get_by_role("row").nth(1)).to_contain_text("14")
    expect(problems).to_contain_text("language 'xx' is not one Voxpop speaks")
    look("contacts-import-check")
    assert stored_addresses(db) == []

    # Fixed, with 3,000 more people: the progress bar moves, then the summary.
    page.get_by_role("button", name="Cancel and upload another file").click()
    page.get_by_label("Contacts file (CSV)").set_input_files(files=csv_file(large(EXTRA_ROWS)))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="Check the file before importing")).to_be_visible()
    expect(page.get_by_text("No problem found.")).to_be_visible()
    gate.armed.set()
    page.get_by_role("button", name=f"Import {EXTRA_ROWS + 13:,} rows").click()
    assert gate.reached.wait(60)
    expect(page.get_by_role("heading", name="Importing contacts")).to_be_visible()
    bar = page.locator("progress")
    # The first chunk is in: the bar shows it (the script polls the progress).
    expect(bar).to_have_attribute("value", str((1001 * 100) // (EXTRA_ROWS + 14)))
    # Rows counted as the summary counts them (the header is no row); the page moves by
    # itself, so it does not ask to be refreshed.
    expect(page.locator("[data-progress-text]")).to_contain_text(f" of {EXTRA_ROWS + 13:,})")
    expect(page.locator("[data-progress-text]")).to_contain_text("% (row ")
    expect(page.get_by_text("Refresh this page")).not_to_be_visible()
    look("contacts-import-progress")
    gate.release()
    # The script sees the end and reloads: the summary.
    expect(page.get_by_role("heading", name="Contacts imported")).to_be_visible()
    expect(page.get_by_text(f"{EXTRA_ROWS + 13:,} rows imported")).to_be_visible()
    look("contacts-import-done")

    # Search by district: a GET form, the filters in the address.
    page.get_by_role("link", name="See the contacts").click()
    page.get_by_label("Attribute").fill("district=north")
    page.get_by_role("button", name="Apply filters").click()
    expect(
        page.get_by_role("heading", name=f"{EXTRA_ROWS + 5:,} contacts, page 1 of")
    ).to_be_visible()
    assert "attribute=district%3Dnorth" in page.url
    look("contacts-search")
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("heading", name="page 2 of")).to_be_visible()

    # A contact, found by number; their address masked.
    with transaction(db, read_only=True) as s:
        n = s.scalar(select(AddressRow.contact_id).where(AddressRow.value == "+32470000001"))
    # Every address the browser asks for is what a proxy logs: no number in any of them.
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.get_by_label("Find one person").fill("+32 470 99 99 01")
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.get_by_text("No contact has this address.").first).to_be_visible()
    axe_check(page)
    # Corrected by keyboard: the field, then Enter sends the form.
    field = page.get_by_label("Find one person")
    field.fill("+32 470 00 00 01")
    field.press("Enter")
    expect(page.get_by_role("heading", name=f"Contact {n}", exact=True)).to_be_visible()
    assert page.url.endswith(f"/contacts/{n}")
    in_addresses = [re.sub(r"\D", "", url) for url in requested]
    assert [u for u in in_addresses if "470999901" in u or "470000001" in u] == []
    expect(page.get_by_text("+32 470 •• •• 01")).to_be_visible()
    look("contacts-contact")

    # Erase, by keyboard: the link, then the confirmation's button.
    link = page.get_by_role("button", name=f"Erase contact {n}")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Erase contact {n}?")).to_be_visible()
    look("contacts-erase")
    button = page.get_by_role("button", name=f"Erase contact {n}")
    for _ in range(40):
        if button.evaluate("b => b === document.activeElement"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Contact {n} was erased.")).to_be_visible()
    shown.append(page.content())
    page.goto(f"/contacts/{n}")
    expect(page.get_by_text("was erased on")).to_be_visible()
    # FORGET's rules: the number is nowhere in the database.
    assert cells_containing(engine, "32470000001") == []
    for html in shown:
        assert whole_numbers(html, ["+32470000001", *stored_addresses(db)[:50]]) == []


def test_analysts_see_no_contacts(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.ANALYST)
    answer = page.goto("/contacts")
    assert answer is not None
    assert answer.status == 403
