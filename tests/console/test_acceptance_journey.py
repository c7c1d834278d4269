"""Issue 11's acceptance journey, in Debian's Chromium, on each engine: the console's main
journey as each role, against the fake Telegram and Twilio (tests/fakes).

An editor signs in, uploads a consultation with a mistake and fixes it, imports contacts
(a mistake first, then the fixed file), schedules a push and watches it run: the scheduler
fires it, the dispatcher sends the invitations to the fakes, citizens answer through the
Telegram webhook and the funnel follows. The editor reads the results and publishes an
outcome, which reaches those who took part. An analyst sees the results, the exports and
the push reports, but no editor's page (no link to it, and 403 at its address). An admin
finds the journey's accounts on the Staff page and its actions in the Audit log.

Every page visited passes the axe-core scan (no serious or critical violation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.request import ProxyHandler, Request, build_opener

import pytest
from flask import Flask
from playwright.sync_api import FilePayload, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.staff.accounts import Role
from surveys.loader import EXAMPLES_DIR
from tests.browser import axe_check
from tests.console.conftest import (
    SignIn,
    app_with_a_dispatcher,
    config_on_the_fakes,
    scheduler_ticking,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.web.test_webhooks import text_update

pytestmark = pytest.mark.browser

WEBHOOK_SECRET = "journey-webhook-secret"
#: A consultation as staff write it, with one mistake on line 8 (a type Voxpop has not got).
BENCHES = """id = "benches"
title = { en = "Benches", nl = "Banken" }
languages = ["en", "nl"]
keywords = ["BENCHES"]

[[questions]]
id = "more"
type = "yes/no"
text.en = "Should the market square get more benches?"
text.nl = "Moet het marktplein meer banken krijgen?"
"""
FIXED = BENCHES.replace('"yes/no"', '"yesno"')
CONTACTS = (Path(EXAMPLES_DIR) / "contacts.csv").read_bytes()
#: Line 14 of the file with a mistake: a language Voxpop does not speak.
BAD_LINE = b"telegram:4245,xx,,north,35-49,website sign-up,2026-10-24,\n"
#: The Telegram chats of the example file: the people the push below reaches there.
CHATS = ("4242", "4243", "4244")
OUTCOME = "Benches: 12 new benches arrive on the market square in May."

_opener = build_opener(ProxyHandler({}))  # loopback only: never through a proxy


@pytest.fixture
def app(db: sessionmaker[Session], telegram: FakeTelegram, twilio: FakeTwilio) -> Iterator[Flask]:
    """The app as ``voxpop serve`` runs it on the fakes, with Telegram's webhook; each chat
    is not paced (Telegram's one a second would only make the journey slow)."""
    config = config_on_the_fakes(
        telegram, twilio, webhook_secret=WEBHOOK_SECRET, per_chat_per_second=50.0
    )
    with app_with_a_dispatcher(db, config) as app:
        yield app


def csv_file(data: bytes) -> FilePayload:
    return {"name": "contacts.csv", "mimeType": "text/csv", "buffer": data}


def visit(page: Page, address: str, heading: str | re.Pattern[str]) -> None:
    """Open ``address``, see its heading, scan it."""
    page.goto(address)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    axe_check(page)


def expect_funnel(page: Page, who: str, stage: str, n: int) -> None:
    """The push's funnel shows ``n`` of ``who`` (Everyone, a channel) at ``stage`` (planned,
    sent, delivered, started, completed): the number, then on a line of its own the share."""
    row = page.locator("#funnel-table tr", has=page.get_by_role("rowheader", name=who))
    cell = row.locator(f'[data-stage="{stage}"]')
    expect(cell).to_have_text(re.compile(rf"^{n}\s"), use_inner_text=True)


def telegram_says(base_url: str, chat: str, text: str) -> None:
    """A citizen on Telegram writes ``text``: the update Telegram posts to the webhook."""
    request = Request(
        f"{base_url}/webhooks/telegram",
        data=json.dumps(text_update(text, chat=chat)).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
        },
    )
    with _opener.open(request, timeout=60) as answer:
        assert answer.status == 200


def test_the_console_journey_as_each_role(
    signed_in_page: SignIn,
    app: Flask,
    base_url: str,
    telegram: FakeTelegram,
    twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    editor = signed_in_page(Role.EDITOR, email="eddie@city.example")
    visit(editor, "/", "What is running now")

    # --- a consultation, with a mistake, fixed in the browser, loaded -------------------------
    nav = editor.get_by_role("navigation", name="Console")
    nav.get_by_role("link", name="Consultations").click()
    expect(editor.get_by_role("heading", level=1)).to_have_text("Consultations")
    axe_check(editor)
    editor.get_by_role("button", name="New consultation or new version").click()
    upload = tmp_path / "benches.toml"
    upload.write_text(BENCHES)
    editor.get_by_label("Upload a consultation file").set_input_files(str(upload))
    editor.get_by_role("button", name="Check").click()
    summary = editor.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Line 8")
    expect(editor.locator("#line-8")).to_contain_text("unknown type 'yes/no'")
    axe_check(editor)
    editor.get_by_label("Or type, paste or edit it here").fill(FIXED)
    editor.get_by_role("button", name="Check").click()
    expect(editor.get_by_text("benches has no problems")).to_be_visible()
    axe_check(editor)
    editor.get_by_role("button", name="Load benches").click()
    expect(editor.get_by_text("benches is loaded as version 1.")).to_be_visible()
    expect(editor.get_by_role("heading", level=1)).to_have_text("Benches")
    axe_check(editor)

    # --- contacts: the check names the mistake by line, nothing is stored; then the fix -------
    nav.get_by_role("link", name="Contacts").click()
    expect(editor.get_by_role("heading", level=1)).to_have_text("Contacts")
    editor.get_by_role("button", name="Import contacts").click()
    axe_check(editor)
    editor.get_by_label("Contacts file (CSV)").set_input_files(files=csv_file(CONTACTS + BAD_LINE))
    editor.get_by_role("button", name="Upload and check").click()
    problems = editor.locator("#problems")
    expect(problems.get_by_role("row").nth(1)).to_contain_text("14")
    expect(problems).to_contain_text("language 'xx' is not one Voxpop speaks")
    axe_check(editor)
    editor.get_by_role("button", name="Cancel and upload another file").click()
    editor.get_by_label("Contacts file (CSV)").set_input_files(files=csv_file(CONTACTS))
    editor.get_by_role("button", name="Upload and check").click()
    expect(editor.get_by_text("No problem found.")).to_be_visible()
    axe_check(editor)
    editor.get_by_role("button", name="Import 12 rows").click()
    # The import runs in the background; the page follows it to its summary.
    expect(editor.get_by_role("heading", name="Contacts imported")).to_be_visible()
    expect(editor.get_by_text("12 rows imported")).to_be_visible()
    axe_check(editor)

    # --- a push, scheduled, sent now, watched while the scheduler and dispatcher run it -------
    nav.get_by_role("link", name="Pushes").click()
    expect(editor.get_by_role("heading", level=1)).to_have_text("Pushes")
    axe_check(editor)
    editor.goto("/pushes/new")
    editor.get_by_label("Consultation").select_option("benches")
    audience = editor.locator("#audience")
    expect(audience).to_contain_text("11 people would be invited")
    # The counts follow the form: without WhatsApp (no sender is set up here), 8.
    editor.get_by_role("group", name="Channels").get_by_label("WhatsApp").uncheck()
    expect(audience).to_contain_text("8 people would be invited")
    axe_check(editor)
    editor.get_by_label("Time", exact=True).fill("+1h")
    editor.get_by_role("button", name="Schedule push").click()
    expect(editor.locator(".govuk-caption-l")).to_contain_text("Benches")
    expect(editor.locator("#push-status")).to_have_text("scheduled")
    editor.get_by_role("button", name="Send now").click()
    expect(editor.locator("#push-status")).to_have_text("sending")
    with scheduler_ticking(app):
        # The page polls its funnel: the invitations leave through the fakes ...
        expect(editor.locator("#push-status")).to_have_text("done")
        # A done push's page goes on following its funnel: the last sends, then the answers.
        expect_funnel(editor, "Everyone", "sent", 8)
        expect_funnel(editor, "Telegram", "sent", 3)
        assert {str(c.params["chat_id"]) for c in telegram.calls_to("sendMessage")} == set(CHATS)
        assert len(twilio.messages) == 5
        # ... and the citizens on Telegram answer through the webhook, as Telegram posts it.
        for chat in CHATS:
            telegram_says(base_url, chat, "1")  # 1. Yes
        # Each answer is stored before the webhook answers; the open page shows them.
        expect_funnel(editor, "Telegram", "completed", 3)
        axe_check(editor)

        # --- the results, then the outcome, published to those who took part ----------------
        nav.get_by_role("link", name="Results").click()
        editor.get_by_role("link", name="Benches").click()
        expect(editor.get_by_role("heading", level=1)).to_have_text("Benches")
        expect(editor.locator("#question-more").get_by_role("row", name="Yes")).to_contain_text("3")
        axe_check(editor)
        nav.get_by_role("link", name="Consultations").click()
        editor.get_by_role("link", name="Benches").click()
        editor.get_by_role("button", name="Outcome: you said, we did").click()
        editor.get_by_label("In en (required").fill(OUTCOME)
        editor.get_by_role("button", name="Check and preview").click()
        expect(editor.get_by_text("3 people who took part")).to_be_visible()
        axe_check(editor)
        editor.get_by_role("button", name="Publish to 3 people").click()
        expect(editor.get_by_text("sends it to 3 people who took part")).to_be_visible()
        axe_check(editor)
        editor.goto("/pushes/2")
        expect_funnel(editor, "Everyone", "sent", 3)
    told = [c for c in telegram.calls_to("sendMessage") if c.params.get("text") == OUTCOME]
    assert sorted(str(c.params["chat_id"]) for c in told) == sorted(CHATS)

    # --- an analyst: results, exports and push reports; no editor's page -----------------------
    analyst = signed_in_page(Role.ANALYST, email="anya@city.example")
    visit(analyst, "/", "What is running now")
    menu = analyst.get_by_role("navigation", name="Console")
    for absent in ("Consultations", "Contacts", "Staff", "Audit log"):
        expect(menu.get_by_role("link", name=absent)).to_have_count(0)
    for address in ("/consultations", "/consultations/new", "/contacts", "/pushes/new"):
        answer = analyst.goto(address)
        assert answer is not None
        assert answer.status == 403, address
        axe_check(analyst)
    menu.get_by_role("link", name="Pushes").click()
    expect(
        analyst.get_by_role("row", name=re.compile(r"\bpush 1\b", re.IGNORECASE))
    ).to_be_visible()
    axe_check(analyst)
    analyst.get_by_role("row", name=re.compile(r"\bpush 1\b", re.IGNORECASE)).get_by_role(
        "link"
    ).first.click()
    expect_funnel(analyst, "Telegram", "completed", 3)
    expect(analyst.get_by_role("button", name="Send now")).to_have_count(0)
    axe_check(analyst)
    menu.get_by_role("link", name="Results").click()
    analyst.get_by_role("link", name="Benches").click()
    expect(analyst.locator("#question-more").get_by_role("row", name="Yes")).to_contain_text("3")
    axe_check(analyst)
    with analyst.expect_download() as download:
        analyst.get_by_role("link", name="CSV, without free text").click()
    assert download.value.path().read_bytes().decode().count("\n") == 4  # a header, 3 people

    # --- an admin: the journey's people and actions --------------------------------------------
    admin = signed_in_page(Role.ADMIN, email="ada@city.example")
    admin.get_by_role("navigation", name="Console").get_by_role("link", name="Staff").click()
    staff = admin.locator("main table")
    for email in ("eddie@city.example", "anya@city.example", "ada@city.example"):
        expect(staff).to_contain_text(email)
    axe_check(admin)
    admin.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    log = admin.locator("main table")
    expect(log).to_be_visible()
    axe_check(admin)
    # Who did what, as the journey did it; the pushes fired by the scheduler, as "system".
    for who, did in (
        ("eddie@city.example", "consultation loaded"),
        ("eddie@city.example", "contacts imported"),
        ("eddie@city.example", "push created"),
        ("eddie@city.example", "push sent now"),
        ("system", "push fired"),
        ("eddie@city.example", "outcome published"),
        ("anya@city.example", "access refused"),
        ("anya@city.example", "export downloaded"),
    ):
        row = log.get_by_role("row").filter(has_text=who).filter(has_text=did)
        expect(row.first).to_be_visible()
    # Never a phone number or a chat id.
    for address in ("32470", "15555550", *CHATS):
        expect(log).not_to_contain_text(address)
