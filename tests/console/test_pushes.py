"""The console's push pages through Flask's test client, on both engines: the form and its
errors next to the fields, the audience check, scheduling, the list, a push's page and its
JSON, cancelling and sending now, and what each role may do."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, PushesConfig
from bot.console.context import console
from bot.service import Service, read_survey_sources
from bot.staff.accounts import Role
from bot.web.app import create_app
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import AuditEntry, PushRow
from surveys.loader import EXAMPLES_DIR
from tests.bot.test_pushes import add_contact
from tests.staff import sign_in

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def app(db: sessionmaker[Session]) -> Flask:
    service = Service(db, clock=clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    add_contact(db, "+32470000001", attributes={"district": "north"})
    add_contact(db, "+32470000002", attributes={"district": "south"}, language="nl")
    add_contact(db, "+32470000003", attributes={"district": "north"}, consent=False)
    add_contact(db, "4242", channel="telegram", attributes={"district": "north"})
    config = Config(pushes=PushesConfig(quiet_hours="", rate_per_second=50.0))
    return create_app(service, config, clock=clock)


@pytest.fixture
def editor(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_in(client, Role.EDITOR)
    return client


@pytest.fixture
def analyst(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_in(client, Role.ANALYST)
    return client


FORM = {
    "survey": "central-park",
    "at": "2026-06-02 10:00",
    "timezone": "Europe/Brussels",
    "channels": ["telegram", "sms"],
    "where": "district=north",
    "quiet_hours": "21:00-09:00",
    "rate": "600/min",
}


def _audit(db: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject).order_by(AuditEntry.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _untimed(html: str) -> str:
    """The page without its ``<time>`` tags (their text stays)."""
    return re.sub(r"</?time[^>]*>", "", html)


def _pushes(db: sessionmaker[Session]) -> list[PushRow]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(PushRow).order_by(PushRow.id)))


def test_checking_the_audience_shows_counts_and_makes_nothing(
    editor: FlaskClient, db: sessionmaker[Session]
) -> None:
    page = editor.get("/pushes/new")
    assert page.status_code == 200
    assert "Make a push" in page.get_data(as_text=True)
    checked = editor.post("/pushes/new", data=FORM | {"action": "check"})
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200
    assert "would be invited" in html
    assert "<strong>2</strong> people" in html
    assert "No consent" in html  # left out, and why
    assert "SMS: at most 2 SMS in all (no price is set: <code>sms_price_per_segment</code>" in html
    assert "nothing goes until" not in html  # 10:00 is after the quiet hours
    # The invitation as it will look, per language, made by the consultation page's code.
    assert "What the invitation says" in html
    assert "Messages in English (en) on each channel" in html
    assert "Messages in French (fr) on each channel" in html
    assert _pushes(db) == []


def test_the_check_says_when_quiet_hours_hold_it_and_who_gets_another_language(
    editor: FlaskClient, db: sessionmaker[Session]
) -> None:
    add_contact(db, "+32470000005", attributes={"district": "north"}, language="fr")
    add_contact(db, "+32470000006", attributes={"district": "north"}, language="de")
    # 11:30 in Brussels now: inside 08:00-22:00, so nothing goes until 22:00 (20:00 UTC).
    form = FORM | {"survey": "street-lighting", "at": "now", "quiet_hours": "08:00-22:00"}
    html = _untimed(editor.post("/pushes/new", data=form | {"action": "check"}).get_data(True))
    assert "It is quiet hours then: nothing goes until 1 Jun 2026" in html
    assert re.search(r"nothing goes until [^<]*22:00", html)
    assert (
        "4 in English (en), of whom 1 prefers German (de) and 1 prefers French (fr): not in "
        "this consultation, so they get English (en)." in html
    )
    assert "Messages in French" not in html  # street-lighting has no French text
    assert "Messages in Dutch (nl) on each channel" in html
    live = editor.get("/pushes/preview.json", query_string=form).get_json()
    assert live["preview"]["quiet_until"] == "2026-06-01T20:00:00+00:00"
    assert "prefers French (fr)" in live["html"]


def test_a_push_page_shows_how_it_sends(editor: FlaskClient) -> None:
    form = FORM | {"remind_after": "24h", "reminders": "2", "variant_0": "Tell us!"}
    assert editor.post("/pushes/new", data=form | {"action": "schedule"}).status_code == 303
    html = editor.get("/pushes/1").get_data(as_text=True)
    for label, value in [
        ("Channels, in order", "Telegram, SMS"),
        ("Time zone", "Europe/Brussels"),
        ("Quiet hours", "21:00-09:00, in each person&#39;s own time"),
        ("Rate", "10 a second"),
        ("Reminders", "up to 2 times, 24 hours after the invitation or their last answer"),
        ("Wordings", "A: *: Tell us!"),
    ]:
        assert re.search(rf"{label}</dt>\s*<dd[^>]*>{re.escape(value)}</dd>", html), label


def test_problems_are_shown_next_to_their_fields_and_nothing_is_lost(
    editor: FlaskClient, db: sessionmaker[Session]
) -> None:
    bad = FORM | {"at": "tomorrow", "rate": "fast", "where": "district", "action": "schedule"}
    answer = editor.post("/pushes/new", data=bad)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "There is a problem" in html
    assert 'href="#at"' in html
    assert 'href="#rate"' in html
    assert 'href="#where"' in html
    assert "&#39;tomorrow&#39; is not a time" in html
    assert 'id="rate-error"' in html  # GOV.UK's message above the field
    assert 'value="600/min"' not in html
    assert 'value="fast"' in html
    assert _pushes(db) == []


def test_scheduling_makes_the_push_lists_it_and_audits_it(
    editor: FlaskClient, db: sessionmaker[Session]
) -> None:
    answer = editor.post("/pushes/new", data=FORM | {"action": "schedule"})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/pushes/1")
    (row,) = _pushes(db)
    assert (row.status, row.rate_per_second) == ("scheduled", 10.0)
    assert row.created_by.startswith("staff:")
    assert any(
        action == "push created" and subject == "push:1" for _, action, subject in _audit(db)
    )
    listed = editor.get("/pushes").get_data(as_text=True)
    # Named by what it sends and when, in the city's time (named once), then its number;
    # the consultation by its title.
    assert ">Invitation, 2 Jun 2026, 10:00 (Europe/Brussels), push 1</a>" in _untimed(listed)
    assert '<td class="govuk-table__cell">Central Park</td>' in listed
    assert "scheduled" in listed
    shown = editor.get("/pushes/1").get_data(as_text=True)
    assert "<title>Invitation, 2 Jun 2026, 10:00, push 1: Central Park – Voxpop</title>" in shown
    assert '<span class="govuk-caption-l">Central Park</span>' in shown
    assert ">Invitation, 2 Jun 2026, 10:00 (Europe/Brussels), push 1</h1>" in _untimed(shown)
    assert "Push 1 of <code>central-park</code>" in shown
    assert "district = north" in shown
    assert "Cancel push" in shown
    assert "Send now" in shown


def test_the_live_counts_come_as_json(editor: FlaskClient) -> None:
    query = "survey=central-park&at=now&channels=sms&channels=telegram&where=district%3Dnorth"
    answer = editor.get(f"/pushes/preview.json?{query}")
    document = answer.get_json()
    assert document["ok"] is True
    assert document["preview"]["recipients"] == 2
    assert document["preview"]["left_out"] == [{"reason": "no consent", "contacts": 1}]
    assert "would be invited" in document["html"]
    bad = editor.get("/pushes/preview.json?survey=central-park&at=soon").get_json()
    assert bad["ok"] is False
    assert "at" in bad["problems"]


def test_send_now_fires_and_the_funnel_follows(
    editor: FlaskClient, db: sessionmaker[Session], app: Flask
) -> None:
    editor.post("/pushes/new", data=FORM | {"action": "schedule"})
    fired = editor.post("/pushes/1/send-now")
    assert fired.status_code == 303
    assert _pushes(db)[0].status == "sending"
    document = editor.get("/pushes/1.json").get_json()
    assert document["status"] == "sending"
    everyone = document["funnel"][0]
    assert everyone["stages"][0] == {
        "name": "planned",
        "count": 2,
        "share": {
            "hits": 2,
            "total": 2,
            "value": 1.0,
            "low": pytest.approx(0.342, abs=0.01),
            "high": 1.0,
        },
    }
    assert "Funnel" in document["html"]
    assert [row["title"] for row in document["funnel"]] == ["Everyone", "SMS", "Telegram"]
    # Sending: it can be stopped, but not sent now again, on the page and in what it polls.
    assert "Send now" not in document["actions_html"]
    assert "Stop sending" in document["actions_html"]
    shown = editor.get("/pushes/1").get_data(as_text=True)
    assert "Send now" not in shown
    assert "Stop sending" in shown
    sent = [(actor[:6], action) for actor, action, _ in _audit(db) if action.startswith("push")]
    assert sent[1:] == [("staff:", "push sent now"), ("system", "push fired")]
    again = editor.post("/pushes/1/send-now", follow_redirects=True)
    assert "only a scheduled push can go now" in again.get_data(as_text=True)


def test_cancel_asks_first_then_cancels(editor: FlaskClient, db: sessionmaker[Session]) -> None:
    editor.post("/pushes/new", data=FORM | {"action": "schedule"})
    confirm = editor.get("/pushes/1/cancel")
    assert "Cancel this push?" in confirm.get_data(as_text=True)
    assert _pushes(db)[0].status == "scheduled"
    done = editor.post("/pushes/1/cancel", follow_redirects=True)
    assert "The push is cancelled" in done.get_data(as_text=True)
    assert _pushes(db)[0].status == "cancelled"
    assert any(action == "push cancelled" for _, action, _ in _audit(db))


def test_analysts_read_pushes_but_cannot_make_or_cancel_them(
    editor: FlaskClient, analyst: FlaskClient, db: sessionmaker[Session]
) -> None:
    editor.post("/pushes/new", data=FORM | {"action": "schedule"})
    assert analyst.get("/pushes").status_code == 200
    assert "Make a push" not in analyst.get("/pushes").get_data(as_text=True)
    shown = analyst.get("/pushes/1")
    assert shown.status_code == 200
    assert "Cancel push" not in shown.get_data(as_text=True)
    assert analyst.get("/pushes/1.json").status_code == 200
    for method, path in [
        ("GET", "/pushes/new"),
        ("POST", "/pushes/new"),
        ("GET", "/pushes/preview.json"),
        ("GET", "/pushes/1/cancel"),
        ("POST", "/pushes/1/cancel"),
        ("POST", "/pushes/1/send-now"),
    ]:
        assert analyst.open(path, method=method).status_code == 403, path
    assert _pushes(db)[0].status == "scheduled"
    refused = [a for _, a, _ in _audit(db) if a == "access refused"]
    assert len(refused) == 6


def test_signed_out_visitors_are_asked_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    for path in ("/pushes", "/pushes/new", "/pushes/1"):
        answer = client.get(path)
        assert answer.status_code == 302
        assert "/login" in answer.headers["Location"]


def test_an_unknown_push_is_404(editor: FlaskClient) -> None:
    assert editor.get("/pushes/99").status_code == 404
    assert editor.get("/pushes/99.json").status_code == 404
    assert editor.post("/pushes/99/cancel").status_code == 404


@pytest.mark.parametrize(
    "changes",
    [
        {"at": "\u202e\x00", "where": "district=\x00north"},
        {"rate": "9" * 400 + "/s", "reminders": "9" * 50, "remind_after": "99999999d"},
        {"timezone": "../../etc/passwd", "quiet_hours": "25:00-99:99"},
        {"survey": "x" * 5000, "channels": ["sms", "\u202e"], "not_answered": ["\x00"]},
        {"at": "9999-12-31 23:59", "where": "a=b\nc\n=d"},
        {"variant_0": "x" * 3000, "variant_1": "x" * 3000},
    ],
)
def test_no_input_makes_a_500(
    editor: FlaskClient, db: sessionmaker[Session], changes: dict[str, object]
) -> None:
    for action in ("check", "schedule"):
        answer = editor.post("/pushes/new", data=FORM | changes | {"action": action})
        assert answer.status_code in (200, 303, 422), answer.get_data(as_text=True)[:500]
    query = {k: v for k, v in (FORM | changes).items() if isinstance(v, str)}
    assert editor.get("/pushes/preview.json", query_string=query).status_code == 200


def test_a_push_and_the_results_count_the_same_people_as_invited(
    db: sessionmaker[Session],
) -> None:
    now = [NOW]
    service = Service(db, clock=lambda: now[0], pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    first = add_contact(db, "+32470000001")
    add_contact(db, "+32470000002")
    add_contact(db, "4242", channel="telegram")
    config = Config(pushes=PushesConfig(quiet_hours="", rate_per_second=50.0))
    app = create_app(service, config, clock=lambda: now[0])
    editor = app.test_client()
    sign_in(editor, Role.EDITOR)
    # One of them started on their own: the push counts them as invited, sends nothing new.
    service.receive(InboundMessage(Address("sms", "+32470000002"), "PARK", "own-1", NOW))
    form = FORM | {"at": "now", "where": "", "quiet_hours": "", "action": "schedule"}
    assert editor.post("/pushes/new", data=form).status_code == 303
    editor.post("/pushes/1/send-now")
    with app.app_context():
        pushes = console().pushes
        while pushes.report(1).total.waiting:
            now[0] += timedelta(seconds=1)
            pushes.tick()
    service.receive(InboundMessage(Address("sms", "+32470000001"), "1", "reply-1", now[0]))
    push_page = editor.get("/pushes/1").get_data(as_text=True)
    invited = re.search(r"Invitations written</dt>\s*<dd[^>]*>(\d+)<", push_page)
    assert invited is not None
    results = editor.get("/results/central-park").get_data(as_text=True)
    funnel = re.search(r"Invited by a push</th><td[^>]*>(\d+)<", results)
    assert funnel is not None
    assert invited[1] == funnel[1] == "3"
    # The same rate, worked out by the same helper, on both pages.
    rate = re.search(r'id="funnel-response-rate">([^<]+)<', results)
    assert rate is not None
    assert rate[1] == "0% (0-56%)"
    assert f'<td class="govuk-table__cell govuk-table__cell--numeric">{rate[1]}</td>' in push_page
    # No channel is set up (the simulator is not one): the invitations wait in the outbox,
    # and both pages say so rather than reading as sent.
    assert (
        _untimed(push_page).count(
            "done: 2 invitations waiting to be sent; no SMS or Telegram channel is set up"
        )
        == 1
    )
    assert "Nobody has received them yet" in push_page
    assert re.search(r"Written, waiting to be sent</dt>\s*<dd[^>]*>2<", push_page)
    assert "Of those invited, 2 have received nothing yet" in results
    assert "no SMS or Telegram channel is set up" in results
    contact = _untimed(editor.get(f"/contacts/{first}").get_data(as_text=True))
    assert "waiting to be sent: not received yet" in contact


@pytest.mark.parametrize(
    ("status", "buttons"),
    [
        ("scheduled", ["Send now", "Cancel push"]),
        ("sending", ["Stop sending"]),
        ("done", []),
        ("cancelled", []),
        ("missed", []),
    ],
)
def test_a_push_offers_only_what_its_state_allows(
    editor: FlaskClient, db: sessionmaker[Session], status: str, buttons: list[str]
) -> None:
    editor.post("/pushes/new", data=FORM | {"action": "schedule"})
    with transaction(db) as s:
        push = s.get(PushRow, 1)
        assert push is not None
        push.status = status
    html = editor.get("/pushes/1").get_data(as_text=True)
    actions = html[html.index('id="push-actions"') :]
    offered = [
        name for name in ("Send now", "Cancel push", "Stop sending") if f"{name}\n" in actions
    ]
    assert offered == buttons
    again = "Make a new push for this consultation" in actions
    assert again == (status == "missed")
