"""The Consultations, Outcome and Home pages through the test client, on both databases:
roles, a file with a mistake, loading, closing, publishing an outcome, bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from io import BytesIO

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, TelegramConfig, TwilioConfig
from bot.console.context import console
from bot.consultations.manage import consultations
from bot.pushes.service import PushSpec
from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import AuditEntry, Contact, Message, PushRow
from surveys.loader import EXAMPLES_DIR
from tests.console.conftest import NOW, MovableClock
from tests.csrf_client import CsrfClient, plain_client
from tests.staff import sign_in

PARK = (EXAMPLES_DIR / "central-park.toml").read_text()
BINS = """id = "bins"
title = { en = "Bins" }
languages = ["en"]
keywords = ["BINS"]

[[questions]]
id = "enough"
type = "yes-no"
text = { en = "Are there enough bins in your street?" }
"""

PAGES = [
    "/consultations",
    "/consultations/new",
    "/consultations/central-park",
    "/consultations/central-park/close",
    "/consultations/central-park/outcome",
]


@pytest.fixture
def editor(client: FlaskClient) -> FlaskClient:
    sign_in(client, Role.EDITOR)
    return client


def actions(db: sessionmaker[Session], action: str) -> list[AuditEntry]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def took_part(service: Service, number: str) -> None:
    """A citizen texts the keyword and answers the first question."""
    for n, text in enumerate(("PARK", "1")):
        service.receive(InboundMessage(Address("sms", number), text, f"{number}-{n}", NOW))


@pytest.mark.parametrize("path", PAGES)
def test_an_analyst_is_refused_and_the_refusal_audited(
    client: FlaskClient, db: sessionmaker[Session], path: str
) -> None:
    sign_in(client, Role.ANALYST)
    assert client.get(path).status_code == 403
    assert [e.details["path"] for e in actions(db, "access refused")] == [path]


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_is_sent_to_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_the_list_shows_each_consultation_with_its_status(editor: FlaskClient) -> None:
    page = editor.get("/consultations").get_data(as_text=True)
    assert "Central Park" in page
    # In the city's time zone, named the first time the page shows a time.
    assert (
        'Open until <time datetime="2030-02-28T23:00:00+00:00">'
        "1 Mar 2030, 00:00 (Europe/Brussels)</time>" in page
    )
    assert 'href="/consultations/street-lighting"' in page


def test_a_mistake_is_shown_next_to_its_line_and_nothing_is_loaded(
    editor: FlaskClient, service: Service
) -> None:
    response = editor.post("/consultations/new", data={"source": BINS, "action": "load"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'href="#line-8"' in page  # the error summary links to the line
    line = page[page.index('id="line-8"') :]
    line = line[: line.index("</tr>")]
    assert "type = &#34;yes-no&#34;" in line
    assert "unknown type &#39;yes-no&#39;" in line
    assert "bins" not in {c.slug for c in consultations(service, "UTC")}


def test_a_checked_file_is_priced_previewed_and_loaded(
    editor: FlaskClient, service: Service, db: sessionmaker[Session]
) -> None:
    fixed = BINS.replace('"yes-no"', '"yesno"').replace("bins in", "bins 🗑 in")
    checked = editor.post("/consultations/new", data={"source": fixed, "action": "check"})
    assert checked.status_code == 200
    page = checked.get_data(as_text=True)
    assert "bins has no problems" in page
    assert "U+1F5D1 WASTEBASKET" in page  # the character that makes it UCS-2
    # Said per message, in plain words.
    assert "In English (en): 2 SMS in all for someone who gets every message" in page
    row = page[page.index(">Question 1 (enough)<") :]
    row = row[: row.index("</tr>")]
    assert "1 SMS" in row
    assert "Unicode because of ‘🗑’: one SMS then holds 70 characters, not 160" in row
    assert "1. Yes" in page  # Telegram's button
    assert 'value="load"' in page
    loaded = editor.post("/consultations/new", data={"source": fixed, "action": "load"})
    assert loaded.status_code == 302
    assert loaded.headers["Location"] == "/consultations/bins"
    detail = editor.get("/consultations/bins").get_data(as_text=True)
    assert "bins is loaded as version 1." in detail
    # Once, by the member of staff (the example consultations were loaded before, as "staff").
    [entry] = [e for e in actions(db, "consultation loaded") if e.subject == "bins"]
    assert entry.details == {"version": 1, "outcome": "new"}
    assert entry.actor.startswith("staff:")


def test_an_uploaded_file_is_checked_under_its_name(editor: FlaskClient) -> None:
    data = {"upload": (BytesIO(BINS.encode()), "bins.toml"), "source": "", "action": "check"}
    response = editor.post("/consultations/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Line 8: bins.toml has" not in page
    assert 'href="#line-8"' in page
    assert 'id="name" name="name" type="hidden" value="bins.toml"' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("upload", b'id = "caf\xe9"', "not UTF-8 text"),
        ("upload", b"x" * 300_000, "larger than 200 KB"),
        ("source", "  ", "Upload a consultation file, or type or paste it here"),
        ("source", "\x00\x01", "Upload a consultation file, or type or paste it here"),
        ("source", "id = [\n", "TOML syntax"),
    ],
)
def test_bad_input_is_a_message_not_a_crash(
    editor: FlaskClient, field: str, value: str | bytes, message: str
) -> None:
    data: dict[str, object] = {"action": "check", "source": ""}
    data[field] = (BytesIO(value), "x.toml") if isinstance(value, bytes) else value
    response = editor.post("/consultations/new", data=data, content_type="multipart/form-data")
    assert response.status_code in (200, 400)
    assert message in response.get_data(as_text=True)


def test_a_closed_consultation_is_not_offered_in_the_simulator(editor: FlaskClient) -> None:
    open_page = editor.get("/consultations/street-lighting").get_data(as_text=True)
    assert "Try street-lighting in the simulator" in open_page
    assert editor.post("/consultations/street-lighting/close").status_code == 302
    page = editor.get("/consultations/street-lighting").get_data(as_text=True)
    assert "Try street-lighting in the simulator" not in page
    assert "/simulator?" not in page
    assert "It is closed, so it cannot be tried in the simulator" in page


def test_editing_opens_the_current_text(editor: FlaskClient) -> None:
    page = editor.get("/consultations/new?from=central-park").get_data(as_text=True)
    assert "Hello! The city wants your view on Central Park." in page
    assert editor.get("/consultations/new?from=nope").status_code == 404
    assert editor.get("/consultations/nope").status_code == 404


def test_closing_asks_first_then_closes(
    editor: FlaskClient, service: Service, db: sessionmaker[Session], app: Flask
) -> None:
    page = editor.get("/consultations/street-lighting/close").get_data(as_text=True)
    assert "Yes, close the consultation now" in page
    assert "It has no responses yet." in page
    assert "No invitation push of this consultation is scheduled or sending." in page
    with app.app_context():
        pushes = console().pushes
        for _ in range(2):
            pushes.create(PushSpec(survey="street-lighting", at=NOW + timedelta(days=1)))
    page = editor.get("/consultations/street-lighting/close").get_data(as_text=True)
    assert (
        "2 invitation pushes of this consultation are scheduled or sending: they invite nobody "
        "more" in page
    )
    forged = plain_client(app)
    with editor.session_transaction() as stored, forged.session_transaction() as copy:
        copy.update(stored)
    assert forged.post("/consultations/street-lighting/close").status_code == 400
    assert {c.slug: c.status for c in consultations(service, "UTC")}["street-lighting"] != "closed"
    done = editor.post("/consultations/street-lighting/close")
    assert done.status_code == 302
    assert {c.slug: c.status for c in consultations(service, "UTC")}["street-lighting"] == "closed"
    [entry] = actions(db, "consultation closed")
    assert entry.subject == "street-lighting"
    assert entry.details["versions"] == 1
    assert "Closed" in editor.get("/consultations").get_data(as_text=True)


def test_an_outcome_is_previewed_then_published_to_those_who_took_part(
    editor: FlaskClient, service: Service, db: sessionmaker[Session], app: Flask
) -> None:
    took_part(service, "+32470000001")
    took_part(service, "+32470000002")
    form = {"text-en": "You asked for bins: 20 arrive in May.", "text-nl": "", "text-fr": ""}
    preview = editor.post("/consultations/central-park/outcome", data={**form, "action": "check"})
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "2 people who took part" in page
    assert "Publish to 2 people" in page
    assert "no text in nl" in page
    assert "SMS: 2 people, at most 2 SMS in all." in page
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(PushRow)).all() == []
    published = editor.post(
        "/consultations/central-park/outcome", data={**form, "action": "publish"}
    )
    assert published.status_code == 302
    [entry] = actions(db, "outcome published")
    assert entry.details["recipients"] == 2
    with transaction(db, read_only=True) as s:
        push = s.scalars(select(PushRow)).one()
    assert push.kind == "outcome"
    assert push.planned == 2
    follow = editor.get("/consultations/central-park/outcome").get_data(as_text=True)
    assert f"push {push.id} sends it to 2 people who took part" in follow
    assert "What was sent" in follow
    assert f'href="/pushes/{push.id}"' in follow


def test_an_outcome_nobody_can_get_is_published_for_results_only(
    editor: FlaskClient, db: sessionmaker[Session]
) -> None:
    form = {"text-en": "Bins arrive in May.", "text-nl": "", "text-fr": ""}
    check = editor.post("/consultations/central-park/outcome", data={**form, "action": "check"})
    assert "Publish for RESULTS" in check.get_data(as_text=True)
    done = editor.post("/consultations/central-park/outcome", data={**form, "action": "publish"})
    assert done.status_code == 302
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(PushRow)).all() == []
    [entry] = actions(db, "outcome published")
    assert "push" not in entry.details
    page = editor.get("/consultations/central-park/outcome").get_data(as_text=True)
    assert "published for RESULTS only: nobody who took part can get it" in page
    assert "sends it to" not in page
    assert "What was sent" not in page
    assert "What RESULTS answers" in page
    assert re.search(r"By editor\d+@city\.example\.", page)


def test_a_published_outcome_shows_what_was_sent_when_and_by_whom_after_a_warning(
    editor: FlaskClient, service: Service
) -> None:
    took_part(service, "+32470000001")
    with transaction(service.sessions) as s:
        for contact in s.scalars(select(Contact)):
            contact.attributes = {"district": "north"}
    form = {
        "text-en": "Bins in May.\nAnd benches.",
        "text-nl": "Vuilbakken in mei.",
        "by": "district",
        "group-0": "north",
        "group-0-en": "North: a fountain in June.",
    }
    # Central Park is open until 2030: the editor is warned before publishing.
    checked = editor.post(
        "/consultations/central-park/outcome", data={**form, "action": "check"}
    ).get_data(as_text=True)
    assert "This consultation is still open until" in checked
    assert checked.index("This consultation is still open until") < checked.index(
        "Publish to 1 person"
    )
    assert editor.post("/consultations/central-park/outcome", data={**form, "action": "publish"})
    page = editor.get("/consultations/central-park/outcome").get_data(as_text=True)
    published = page[page.index('id="published"') :]
    assert "Published <time" in published
    assert re.search(r"By editor\d+@city\.example\.", published)
    rows = re.findall(
        r'<th scope="row" class="govuk-table__header">([^<]*)</th>\s*'
        r'<td class="govuk-table__cell">([^<]*)</td>\s*'
        r'<td class="govuk-table__cell voxpop-outcome-text">([^<]*)</td>',
        published,
    )
    assert rows == [
        ("Everyone", "en", "Bins in May.\nAnd benches."),
        ("Everyone", "nl", "Vuilbakken in mei."),
        ("district north", "en", "North: a fountain in June."),
    ]


def test_an_outcome_without_text_says_so(editor: FlaskClient) -> None:
    response = editor.post("/consultations/central-park/outcome", data={"action": "check"})
    assert response.status_code == 400
    assert "Write the en text: en is the default language" in response.get_data(as_text=True)


def test_an_outcome_without_the_default_language_is_an_error_at_the_top_and_at_the_field(
    editor: FlaskClient, service: Service, db: sessionmaker[Session]
) -> None:
    took_part(service, "+32470000001")
    form = {"text-en": "", "text-nl": "Vuilbakken in mei.", "text-fr": "", "action": "check"}
    response = editor.post("/consultations/central-park/outcome", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    message = (
        "Write the en text: en is the default language, sent to everyone without a text in "
        "their own language"
    )
    summary = page[page.index("govuk-error-summary") : page.index("</h1>")]
    assert message in summary
    assert 'href="#text-en"' in summary
    field = page[page.index('id="text-en-error"') - 200 : page.index('id="text-en"')]
    assert message in field
    assert "Vuilbakken in mei." in page  # what was typed is kept
    assert "Publish" not in page
    assert "(required: the default" in page
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(PushRow)).all() == []


def test_an_outcome_per_district_lists_the_districts_of_those_who_took_part(
    editor: FlaskClient, service: Service, app: Flask
) -> None:
    took_part(service, "+32470000003")
    with transaction(service.sessions) as s:
        for contact in s.scalars(select(Contact)):
            contact.attributes = {"district": "north"}
    page = editor.post(
        "/consultations/central-park/outcome", data={"by": "district", "action": "groups"}
    ).get_data(as_text=True)
    assert "district north (1 took part)" in page
    form = {
        "text-en": "Bins in May.",
        "by": "district",
        "group-0": "north",
        "group-0-en": "North: a fountain in June.",
        "action": "check",
    }
    page = editor.post("/consultations/central-park/outcome", data=form).get_data(as_text=True)
    assert "district north" in page
    assert "North: a fountain in June." in page


def test_home_shows_what_runs_now(client: FlaskClient, service: Service) -> None:
    sign_in(client, Role.ANALYST)
    took_part(service, "+32470000004")
    page = client.get("/").get_data(as_text=True)
    assert "What is running now" in page
    assert "Central Park" in page
    answered = page[page.index('id="answered-today"') :]
    assert answered[answered.index(">") + 1 :].startswith("1<")
    with transaction(service.sessions, read_only=True) as s:
        queued = s.scalars(select(Message).where(Message.direction == "out")).all()
    assert queued  # the replies to the citizen wait in the outbox
    assert "Messages per channel" in page
    # make run has no channel: the page says so, and where to read how to add one.
    banner = page[page.index('id="no-channel"') :]
    assert "no Telegram, SMS or WhatsApp channel is configured" in banner
    assert "docs/channels.md" in banner
    # The file the server really reads (bot/config.py), not a made-up name.
    assert "<code>voxpop.toml</code>" in banner
    assert "config.toml" not in banner


def test_home_names_the_configured_channels(service: Service, clock: MovableClock) -> None:
    twilio = TwilioConfig(account_sid="AC1", auth_token="t", sms_from="+3224000000")
    config = Config(telegram=TelegramConfig(token="1:x", webhook_secret="s"), twilio=twilio)
    app = create_app(service, config, clock=clock)
    app.test_client_class = CsrfClient
    client = app.test_client()
    sign_in(client, Role.ANALYST)
    page = client.get("/").get_data(as_text=True)
    assert 'id="no-channel"' not in page
    assert "Citizens reach Voxpop on Telegram and SMS." in page


def test_times_today_are_the_citys(service: Service) -> None:
    # 09:30 UTC is the same day in Brussels: the answers of NOW count as today.
    took_part(service, "+32470000005")
    today = {c.slug: c.answered_today for c in consultations(service, "Europe/Brussels")}
    assert today["central-park"] == 1


def test_the_consultation_page_lists_its_questions_in_every_language(
    editor: FlaskClient,
) -> None:
    page = editor.get("/consultations/central-park").get_data(as_text=True)
    questions = page[page.index('id="questions"') : page.index("Versions</caption>")]
    assert "1. How often do you visit the park?" in questions
    assert "Hoe vaak komt u in het park?" in questions  # each language's text
    assert "Combien de fois allez-vous au parc ?" in questions
    assert "Every month" in questions
    assert "Elke maand" in questions
    assert "One choice" in questions
    assert "Several choices" in questions
    assert "Scale" in questions
    assert "Very dirty" in questions


def test_the_close_button_says_what_it_closes_and_the_next_page_asks_first(
    editor: FlaskClient, service: Service
) -> None:
    detail = editor.get("/consultations/street-lighting").get_data(as_text=True)
    assert ">Close consultation<" in detail.replace("\n", "").replace("  ", "")
    confirm = editor.get("/consultations/street-lighting/close").get_data(as_text=True)
    assert "Close the consultation" in confirm
    assert "nobody more is invited or reminded" in confirm
    assert {c.slug: c.status for c in consultations(service, "UTC")}["street-lighting"] != "closed"


def test_a_text_left_open_is_named_on_its_own_line_in_plain_words(editor: FlaskClient) -> None:
    source = BINS.replace('title = { en = "Bins" }', 'title = "Bins')
    page = editor.post("/consultations/new", data={"source": source, "action": "check"})
    shown = page.get_data(as_text=True)
    assert 'href="#line-2"' in shown  # the line where the text opens, not where it ends
    line = shown[shown.index('id="line-2"') :]
    line = line[: line.index("</tr>")]
    assert "is not closed: add the closing &#34; at its end, on this same line" in line
    assert "illegal character" not in shown.lower()


def test_two_consultations_with_one_title_are_told_apart(editor: FlaskClient) -> None:
    twin = BINS.replace('id = "bins"', 'id = "bins-2026"').replace('"BINS"', '"BINS2"')
    for source in (BINS.replace('"yes-no"', '"yesno"'), twin.replace('"yes-no"', '"yesno"')):
        loaded = editor.post("/consultations/new", data={"source": source, "action": "load"})
        assert loaded.status_code == 302
    home = editor.get("/").get_data(as_text=True)
    assert "bins, version 1" in home
    assert "bins-2026, version 1" in home
    form = editor.get("/pushes/new").get_data(as_text=True)
    assert '<option value="bins">Bins (bins, version 1)</option>' in form
    assert '<option value="bins-2026">Bins (bins-2026, version 1)</option>' in form
    detail = editor.get("/consultations/bins-2026").get_data(as_text=True)
    assert "Consultation bins-2026, version 1" in detail
