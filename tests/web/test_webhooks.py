"""The providers' webhooks through Flask's test client, on a real Service, on both engines.

Requests are built from the real payloads in ``tests/channels/fixtures`` and signed the way
the providers sign them: Telegram's secret token header, and Twilio's signature computed by
the SDK over ``server.public_url`` + path (the test client calls ``http://localhost``, as a
proxy would hand the request on). Replies are outbox rows; the dispatcher sends them later.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]
from werkzeug.test import TestResponse

from bot.config import Config, ServerConfig, TelegramConfig, TwilioConfig
from bot.service import CALLBACK_ANSWER, KEYBOARD_REMOVE, Service
from bot.web.app import MAX_BODY, create_app
from bot.web.webhooks import TWILIO_MAX_BODY, TWILIO_MAX_FIELDS, TWIML_EMPTY
from storage import repo
from storage.db import transaction
from storage.models import Base, Message
from tests.helpers import export_records
from tests.web.conftest import NOW, fixed_clock

FIXTURES = Path(__file__).parents[1] / "channels" / "fixtures"
PUBLIC_URL = "https://voxpop.example.city"
SECRET = "kT7-rq_2vX9pLw4ZsN8m"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CHAT = "100000001"
PHONE = "+15555550123"
CONFIG = Config(
    server=ServerConfig(public_url=PUBLIC_URL),
    telegram=TelegramConfig(token="7000000001:AAF-test-token", webhook_secret=SECRET),
    twilio=TwilioConfig(
        account_sid="AC0123456789abcdef0123456789abcdef",
        auth_token=TOKEN,
        sms_from="+15555550199",
        whatsapp_from="+15555550188",
    ),
)
#: The same channels with the simulator on explicitly (the public default is off): tests that
#: drive webhooks and the simulator together must not change with that default.
WITH_SIMULATOR = replace(CONFIG, server=ServerConfig(public_url=PUBLIC_URL, simulator=True))
THANKS = "Thank you! The results will be on the city website in April."
CONSENT = "Last one: may the city send you short consultations like this one in the future?"
SORRY = "Sorry, I can only read text. Please reply with a text message."
_ids = itertools.count(1)


@pytest.fixture
def app(service: Service) -> Flask:
    return create_app(service, CONFIG, clock=fixed_clock)


# --- requests as the providers send them ------------------------------------------------------


def telegram_update(name: str, **changes: Any) -> dict[str, Any]:
    """A fixture update with a fresh update_id; ``changes`` go into its message."""
    update: dict[str, Any] = json.loads((FIXTURES / "telegram" / f"{name}.json").read_text())
    update["update_id"] = 890000000 + next(_ids)
    body = next(v for k, v in update.items() if k != "update_id")
    body.update(changes)
    return update


def text_update(text: str, chat: str = CHAT) -> dict[str, Any]:
    update = telegram_update("text_message", text=text)
    update["message"]["chat"]["id"] = int(chat)
    return update


def press_update(data: str, keyboard_message: int) -> dict[str, Any]:
    update = telegram_update("callback_query", data=data, id=f"cb-{next(_ids)}")
    update["callback_query"]["message"]["message_id"] = keyboard_message
    return update


def post_telegram(
    client: FlaskClient, update: dict[str, Any] | bytes, secret: str | None = SECRET
) -> TestResponse:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return client.post(
        "/webhooks/telegram", data=body, content_type="application/json", headers=headers
    )


def twilio_form(name: str, **changes: str) -> dict[str, str]:
    body = (FIXTURES / "twilio" / f"{name}.txt").read_text(encoding="utf-8").strip()
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if "MessageSid" not in changes and not name.startswith("status"):
        fresh = f"SM{next(_ids):032x}"
        fields.update(MessageSid=fresh, SmsMessageSid=fresh, SmsSid=fresh)
    fields.update(changes)
    return fields


def post_twilio(
    client: FlaskClient,
    route: str,
    fields: dict[str, str],
    *,
    token: str = TOKEN,
    signed_url: str | None = None,
    query: str = "",
) -> TestResponse:
    path = f"/webhooks/twilio/{route}" + (f"?{query}" if query else "")
    url = signed_url or f"{PUBLIC_URL}{path}"
    signature = RequestValidator(token).compute_signature(url, fields)
    return client.post(
        path,
        data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


def sms(client: FlaskClient, text: str) -> TestResponse:
    response = post_twilio(client, "sms", twilio_form("sms_inbound", Body=text))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


# --- reading the database back ---------------------------------------------------------------


def counts(db: sessionmaker[Session]) -> dict[str, int]:
    """Rows per table: a refused request must leave every one of them as it was."""
    with transaction(db, read_only=True) as s:
        return {
            table.name: s.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def outbox(db: sessionmaker[Session], after: int = 0) -> list[Message]:
    with transaction(db, read_only=True) as s:
        return list(
            s.scalars(
                select(Message)
                .where(Message.direction == "out", Message.id > after)
                .order_by(Message.id)
            )
        )


def last_id(db: sessionmaker[Session]) -> int:
    with transaction(db, read_only=True) as s:
        return s.scalar(select(func.max(Message.id))) or 0


def replies(db: sessionmaker[Session], after: int = 0) -> list[str]:
    return [m.text for m in outbox(db, after) if m.kind == "reply"]


def answers(service: Service) -> dict[str, Any]:
    (record,) = export_records(service, "central-park")
    result: dict[str, Any] = record["answers"]
    return result


# --- the happy paths -------------------------------------------------------------------------


def test_telegram_text_is_answered_through_the_outbox(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    response = post_telegram(client, text_update("PARK"))
    assert response.status_code == 200
    assert response.get_json() == {}
    out = outbox(db)
    assert [m.text for m in out][-1] == "How often do you visit the park?"
    assert {(m.channel, m.address, m.status, m.kind) for m in out} == {
        ("telegram", CHAT, "queued", "reply")
    }
    # The buttons travel with the row; the dispatcher renders them as an inline keyboard.
    assert out[-1].payload["options"][0] == {
        "key": "1",
        "label": "Every week",
        "payload": "visits:weekly",
    }


@pytest.mark.parametrize(
    ("route", "fixture", "channel"),
    [("sms", "sms_inbound", "sms"), ("whatsapp", "whatsapp_inbound", "whatsapp")],
)
def test_twilio_message_is_answered_through_the_outbox(
    client: FlaskClient, db: sessionmaker[Session], route: str, fixture: str, channel: str
) -> None:
    response = post_twilio(client, route, twilio_form(fixture))
    assert response.status_code == 200
    # Empty TwiML: Twilio sends nothing itself; the reply goes out through the outbox.
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True) == TWIML_EMPTY
    out = outbox(db)
    assert out[-1].text == "How often do you visit the park?"
    assert {(m.channel, m.address, m.status) for m in out} == {(channel, PHONE, "queued")}


def test_start_deep_link_starts_the_survey(client: FlaskClient, db: sessionmaker[Session]) -> None:
    assert post_telegram(client, telegram_update("start_deep_link")).status_code == 200
    assert replies(db)[-1] == "How often do you visit the park?"


def test_plain_start_gives_the_help_with_keywords(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    assert post_telegram(client, telegram_update("start_plain")).status_code == 200
    assert replies(db)[-1] == "To take part, send: LIGHTS, PARK"


def test_proxy_path_and_query_are_signed_with_the_public_url(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    response = post_twilio(client, "sms", twilio_form("sms_inbound"), query="city=gent")
    assert response.status_code == 200
    assert len(replies(db)) == 2


# --- refusals: nothing is written ---------------------------------------------------------------


def _forged(client: FlaskClient, how: str) -> TestResponse:
    fields = twilio_form("sms_inbound")
    if how == "telegram wrong secret":
        return post_telegram(client, text_update("PARK"), secret=SECRET + "x")
    if how == "telegram no secret":
        return post_telegram(client, text_update("PARK"), secret=None)
    if how == "twilio other token":
        return post_twilio(client, "sms", fields, token="f" * 32)
    if how == "twilio unsigned":
        return client.post(
            "/webhooks/twilio/sms",
            data=urlencode(fields),
            content_type="application/x-www-form-urlencoded",
        )
    if how == "twilio signed for the internal URL":
        # Signed over what Flask sees behind the proxy, not what Twilio called.
        return post_twilio(client, "sms", fields, signed_url="http://localhost/webhooks/twilio/sms")
    if how == "twilio tampered body":
        signature = RequestValidator(TOKEN).compute_signature(
            f"{PUBLIC_URL}/webhooks/twilio/sms", fields
        )
        return client.post(
            "/webhooks/twilio/sms",
            data=urlencode({**fields, "Body": "STOP"}),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": signature},
        )
    if how == "twilio status forged":
        return post_twilio(client, "status", twilio_form("status_failed"), token="f" * 32)
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "telegram wrong secret",
        "telegram no secret",
        "twilio other token",
        "twilio unsigned",
        "twilio signed for the internal URL",
        "twilio tampered body",
        "twilio status forged",
    ],
)
def test_unverified_requests_are_refused_and_write_nothing(
    client: FlaskClient, db: sessionmaker[Session], how: str
) -> None:
    before = counts(db)
    response = _forged(client, how)
    assert response.status_code == 403
    assert "does not match" in response.get_data(as_text=True)
    assert counts(db) == before


def test_redelivery_answers_200_and_changes_nothing(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    update = text_update("PARK")
    fields = twilio_form("sms_inbound")
    assert post_telegram(client, update).status_code == 200
    assert post_twilio(client, "sms", fields).status_code == 200
    before = counts(db)
    # Providers retry when our answer got lost: the same update comes again.
    assert post_telegram(client, update).status_code == 200
    assert post_twilio(client, "sms", fields).status_code == 200
    assert counts(db) == before


@pytest.mark.parametrize("route", ["/webhooks/telegram", "/webhooks/twilio/sms"])
def test_oversized_body_is_refused_before_parsing(
    client: FlaskClient, db: sessionmaker[Session], route: str
) -> None:
    before = counts(db)
    body = b"x" * (MAX_BODY + MAX_BODY // 10)  # 1.1 MB
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "X-Twilio-Signature": "x"}
    response = client.post(route, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert counts(db) == before


def test_malformed_telegram_update_is_a_400_with_the_reason(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    before = counts(db)
    response = post_telegram(client, b"this is not json")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "bad request: the body is not JSON"
    assert counts(db) == before


def test_unusable_telegram_update_is_acknowledged_and_logged_with_the_field(
    client: FlaskClient, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """An update python-telegram-bot cannot read is still an update: Telegram would deliver
    it again and again on a 4xx. It gets 200, writes nothing, and the log names the field."""
    caplog.set_level(logging.INFO)
    before = counts(db)
    response = post_telegram(client, b'{"update_id": 1, "message": {"text": "PARK"}}')
    assert response.status_code == 200
    assert counts(db) == before
    logged = [r.getMessage() for r in caplog.records]
    assert "ignored: unusable update: message cannot be read (KeyError)" in logged
    assert not any("PARK" in line for line in logged)


@pytest.mark.parametrize(
    ("route", "fields", "reason"),
    [
        ("sms", {"MessageSid": "", "SmsSid": ""}, "From and MessageSid are required"),
        ("sms", {"From": f"whatsapp:{PHONE}"}, "a whatsapp message on the sms webhook"),
        ("status", {"MessageStatus": "", "SmsStatus": ""}, "MessageStatus are required"),
    ],
)
def test_malformed_twilio_request_is_a_400_with_the_reason(
    client: FlaskClient,
    db: sessionmaker[Session],
    route: str,
    fields: dict[str, str],
    reason: str,
) -> None:
    before = counts(db)
    base = "status_sent" if route == "status" else "sms_inbound"
    response = post_twilio(client, route, twilio_form(base, **fields))
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert counts(db) == before


def test_routes_exist_only_for_configured_channels(service: Service) -> None:
    bare = create_app(service, Config(), clock=fixed_clock).test_client()
    for route in ("telegram", "twilio/sms", "twilio/whatsapp", "twilio/status"):
        assert bare.post(f"/webhooks/{route}", data=b"{}").status_code == 404
    sms_only = Config(
        server=CONFIG.server,
        twilio=TwilioConfig(account_sid="AC1", auth_token=TOKEN, sms_from="+15555550199"),
    )
    client = create_app(service, sms_only, clock=fixed_clock).test_client()
    assert client.post("/webhooks/twilio/whatsapp", data=b"").status_code == 404
    assert client.post("/webhooks/telegram", data=b"").status_code == 404
    assert client.post("/webhooks/twilio/sms", data=b"").status_code == 403
    assert client.post("/webhooks/twilio/status", data=b"").status_code == 403


def test_only_post(client: FlaskClient) -> None:
    assert client.get("/webhooks/telegram").status_code == 405


# --- Telegram buttons --------------------------------------------------------------------------


def test_button_press_answers_the_callback_and_removes_the_keyboard(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    post_telegram(client, text_update("PARK"))
    mark = last_id(db)
    update = press_update("visits:weekly", keyboard_message=5021)
    assert post_telegram(client, update).status_code == 200
    out = outbox(db, mark)
    assert [(m.kind, m.payload) for m in out[:2]] == [
        (CALLBACK_ANSWER, {"callback_id": update["callback_query"]["id"]}),
        (KEYBOARD_REMOVE, {"chat": CHAT, "message_id": "5021"}),
    ]
    assert {(m.channel, m.address, m.status, m.text) for m in out[:2]} == {
        ("telegram", CHAT, "queued", "")
    }
    (question,) = (m.text for m in out[2:])
    assert question.startswith("What do you do in the park? At most 3.")
    assert answers(service) == {"visits": "weekly"}

    # A second tap on the same keyboard (a double tap, or before the keyboard is gone):
    # its callback is answered, nothing else happens.
    mark = last_id(db)
    again = press_update("visits:monthly", keyboard_message=5021)
    assert post_telegram(client, again).status_code == 200
    assert [(m.kind, m.payload) for m in outbox(db, mark)] == [
        (CALLBACK_ANSWER, {"callback_id": again["callback_query"]["id"]})
    ]
    assert answers(service) == {"visits": "weekly"}

    # The same update delivered again writes nothing at all.
    before = counts(db)
    assert post_telegram(client, again).status_code == 200
    assert counts(db) == before


def test_button_of_an_earlier_question_changes_nothing(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    post_telegram(client, text_update("PARK"))
    post_telegram(client, text_update("1"))  # typed: the keyboard of 5021 stays on screen
    mark = last_id(db)
    update = press_update("visits:never", keyboard_message=5021)
    assert post_telegram(client, update).status_code == 200
    # Answered and removed, but neither a wrong answer to the current question nor a hint.
    assert [m.kind for m in outbox(db, mark)] == [CALLBACK_ANSWER, KEYBOARD_REMOVE]
    assert answers(service) == {"visits": "weekly"}


def test_key_button_is_a_typed_answer_once(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    for text in ("PARK", "1", "1"):
        post_telegram(client, text_update(text))
    key = telegram_update("callback_query_key", id=f"cb-{next(_ids)}")
    assert post_telegram(client, key).status_code == 200
    assert answers(service)["clean"] == 2
    assert replies(db)[-1] == "Would more bins help?"
    # The same keyboard tapped again must not answer the next question with "2".
    mark = last_id(db)
    again = telegram_update("callback_query_key", id=f"cb-{next(_ids)}")
    assert post_telegram(client, again).status_code == 200
    assert [m.kind for m in outbox(db, mark)] == [CALLBACK_ANSWER]
    assert "more_bins" not in answers(service)


# --- what Voxpop cannot read -------------------------------------------------------------------


def test_sticker_gets_one_polite_request_for_text(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    sticker = telegram_update("sticker")
    assert post_telegram(client, sticker).status_code == 200
    (out,) = outbox(db)
    assert (out.channel, out.address, out.kind, out.status, out.text) == (
        "telegram",
        CHAT,
        "reply",
        "queued",
        SORRY,
    )
    before = counts(db)
    assert post_telegram(client, sticker).status_code == 200  # redelivered: asked once only
    assert counts(db) == before


def test_request_for_text_is_in_the_contacts_language(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    post_telegram(client, text_update("LANG NL"))
    post_telegram(client, telegram_update("voice"))
    assert replies(db)[-1] == "Sorry, ik kan alleen tekst lezen. Antwoord met een tekstbericht."


@pytest.mark.parametrize(
    ("route", "fixture", "channel"),
    [("whatsapp", "whatsapp_image", "whatsapp"), ("sms", "mms_photo", "sms")],
)
def test_twilio_media_without_text_gets_a_request_for_text(
    client: FlaskClient, db: sessionmaker[Session], route: str, fixture: str, channel: str
) -> None:
    assert post_twilio(client, route, twilio_form(fixture)).status_code == 200
    assert [(m.channel, m.address, m.text) for m in outbox(db)] == [(channel, PHONE, SORRY)]


def test_opted_out_contact_gets_no_request_for_text(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    post_telegram(client, text_update("STOP"))
    mark = last_id(db)
    assert post_telegram(client, telegram_update("photo")).status_code == 200
    assert outbox(db, mark) == []


@pytest.mark.parametrize(
    "fixture", ["edited_message", "group_message", "channel_post", "my_chat_member"]
)
def test_silently_ignored_updates_write_nothing(
    client: FlaskClient, db: sessionmaker[Session], fixture: str
) -> None:
    before = counts(db)
    assert post_telegram(client, telegram_update(fixture)).status_code == 200
    assert counts(db) == before


def test_carrier_notice_from_a_short_code_writes_nothing(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    before = counts(db)
    response = post_twilio(client, "sms", twilio_form("sms_short_code_sender"))
    assert response.status_code == 200
    assert counts(db) == before


# --- status callbacks ----------------------------------------------------------------------------


def _sent(db: sessionmaker[Session], provider_id: str, channel: str = "sms") -> int:
    """An outbound message the dispatcher has handed to Twilio."""
    with transaction(db) as s:
        message_id = repo.add_outbound(s, channel=channel, address=PHONE, text="Q?", now=NOW)
        row = s.get(Message, message_id)
        assert row is not None
        row.status, row.provider_id, row.sent_at = "sent", provider_id, NOW
        return message_id


def _state(db: sessionmaker[Session], message_id: int) -> tuple[str, str | None]:
    with transaction(db, read_only=True) as s:
        row = s.get(Message, message_id)
        assert row is not None
        return row.status, row.error


def _report(client: FlaskClient, provider_id: str, report: str, channel: str = "sms") -> None:
    status, _, code = report.partition(":")
    fixture = "status_whatsapp_read" if channel == "whatsapp" else "status_sent"
    fields = twilio_form(fixture, MessageSid=provider_id, SmsSid=provider_id)
    fields.update(MessageStatus=status, SmsStatus=status)
    if code:
        fields["ErrorCode"] = code
    response = post_twilio(client, "status", fields)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == TWIML_EMPTY


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["sent", "delivered"], ("delivered", None)),
        (["delivered", "sent"], ("delivered", None)),
        (["delivered", "delivered"], ("delivered", None)),
        # Twilio's own queue states: the row is already sent here, and must never be queued
        # again (the dispatcher would send it a second time).
        (["queued", "sending", "accepted"], ("sent", None)),
        (["undelivered:30003"], ("undelivered", "30003")),
        (["undelivered:30003", "sent", "queued"], ("undelivered", "30003")),
        (["failed:30008", "failed:30008"], ("failed", "30008")),
        (["failed"], ("failed", "failed without an error code")),
        # A handset's receipt is proof: it outranks a failure, whichever came first.
        (["failed:30008", "delivered"], ("delivered", None)),
        (["delivered", "failed:30008"], ("delivered", None)),
        (["undelivered:30003", "failed:30008"], ("failed", "30008")),
        (["failed:30008", "undelivered:30003"], ("failed", "30008")),
    ],
)
def test_status_moves_forward_only(
    client: FlaskClient,
    db: sessionmaker[Session],
    reports: list[str],
    final: tuple[str, str | None],
) -> None:
    sid = f"SM{next(_ids):032x}"
    message_id = _sent(db, sid)
    for report in reports:
        _report(client, sid, report)
    assert _state(db, message_id) == final


def test_any_order_of_reports_ends_in_the_same_state(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    reports = ["sent", "undelivered:30003", "failed:30008", "delivered"]
    finals = set()
    for order in itertools.permutations(reports):
        sid = f"SM{next(_ids):032x}"
        message_id = _sent(db, sid)
        for report in order:
            _report(client, sid, report)
        finals.add(_state(db, message_id))
    assert finals == {("delivered", None)}


def test_whatsapp_read_receipt(client: FlaskClient, db: sessionmaker[Session]) -> None:
    sid = f"SM{next(_ids):032x}"
    message_id = _sent(db, sid, channel="whatsapp")
    for report in ("read", "delivered", "sent"):
        _report(client, sid, report, channel="whatsapp")
    assert _state(db, message_id) == ("read", None)


def test_report_for_an_unknown_message_changes_no_message(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    sid = f"SM{next(_ids):032x}"
    message_id = _sent(db, sid)
    before = counts(db)
    _report(client, "SM" + "f" * 32, "failed:30008")
    # The same id on the other channel is another message.
    _report(client, sid, "read", channel="whatsapp")
    # Both are kept, in case the dispatcher has not recorded their message yet.
    assert counts(db) == before | {"status_reports": 2}
    assert _state(db, message_id) == ("sent", None)


# --- whole consultations, one per channel --------------------------------------------------------


def test_full_consultation_over_telegram(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    steps: list[tuple[dict[str, Any], str]] = [
        (text_update("PARK"), "How often do you visit the park?"),
        (press_update("visits:weekly", 6001), "What do you do in the park? At most 3."),
        (press_update("activities:walk", 6002), "How clean is the park?"),
        (telegram_update("callback_query_key", id="cb-key"), "Would more bins help?"),
        (press_update("more_bins:yes", 6004), "Should the city build a new playground"),
        (text_update("no"), "In what year were you born?"),
        (text_update("1980"), "One idea to make the park better?"),
        (text_update("More benches"), CONSENT),
        (press_update("future:yes", 6005), THANKS),
    ]
    for update, expected in steps:
        mark = last_id(db)
        assert post_telegram(client, update).status_code == 200
        assert replies(db, mark)[-1].startswith(expected)
    assert answers(service) == {
        "visits": "weekly",
        "activities": ["walk"],
        "clean": 2,
        "more_bins": True,
        "playground": False,
        "birth_year": 1980,
        "idea": "More benches",
        "future": True,
    }
    assert {m.channel for m in outbox(db)} == {"telegram"}
    # One callback answer and one keyboard removal per tap.
    kinds = [m.kind for m in outbox(db)]
    assert kinds.count(CALLBACK_ANSWER) == kinds.count(KEYBOARD_REMOVE) == 5


def test_full_consultation_over_sms(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    script = [
        ("PARK", "How often do you visit the park?"),
        ("1", "What do you do in the park? At most 3."),
        ("1 4", "How clean is the park?"),
        ("4", "Should the city build a new playground in the park?"),
        ("yes", "In what year were you born?"),
        ("SKIP", "One idea to make the park better?"),
        ("More benches", CONSENT),
        ("yes", THANKS),
    ]
    for text, expected in script:
        mark = last_id(db)
        sms(client, text)
        assert replies(db, mark)[-1].startswith(expected)
    record = answers(service)
    assert record["visits"] == "weekly"
    assert record["activities"] == ["walk", "dog"]
    assert record["idea"] == "More benches"
    assert {(m.channel, m.address) for m in outbox(db)} == {("sms", PHONE)}


def test_full_consultation_over_whatsapp(
    client: FlaskClient, db: sessionmaker[Session], service: Service
) -> None:
    def whatsapp(**fields: str) -> list[str]:
        mark = last_id(db)
        response = post_twilio(client, "whatsapp", twilio_form("whatsapp_inbound", **fields))
        assert response.status_code == 200
        return replies(db, mark)

    # A quick-reply button: its payload answers, whatever the text shows.
    button = {"MessageType": "button", "ButtonText": "Elke week", "ButtonPayload": "visits:weekly"}
    script: list[tuple[dict[str, str], str]] = [
        ({"Body": "parc"}, "How often do you visit the park?"),
        ({**button, "Body": "Elke week"}, "What do you do in the park? At most 3."),
        ({"Body": "2,5"}, "How clean is the park?"),
        ({"Body": "5"}, "Should the city build a new playground in the park?"),
        ({"Body": "no"}, "In what year were you born?"),
        ({"Body": "1975"}, "One idea to make the park better?"),
        ({"Body": "Shade 🌳"}, CONSENT),
        ({"Body": "nee"}, THANKS),
    ]
    for fields, expected in script:
        assert whatsapp(**fields)[-1].startswith(expected)
    assert answers(service) == {
        "visits": "weekly",
        "activities": ["sport", "picnic"],
        "clean": 5,
        "playground": False,
        "birth_year": 1975,
        "idea": "Shade 🌳",
        "future": False,
    }
    assert {(m.channel, m.address) for m in outbox(db)} == {("whatsapp", PHONE)}


# --- privacy ----------------------------------------------------------------------------------


def test_logs_carry_no_number_or_chat_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    post_telegram(client, text_update("PARK"))
    post_telegram(client, press_update("visits:weekly", 5021))
    post_telegram(client, telegram_update("sticker"))
    post_telegram(client, text_update("PARK"), secret="wrong")
    sms(client, "PARK")
    post_twilio(client, "sms", twilio_form("sms_inbound", MessageSid=""))
    post_twilio(client, "status", twilio_form("status_delivered"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "webhook telegram" in text
    assert "webhook twilio/sms" in text
    for secret in (CHAT, PHONE.lstrip("+")[-7:], SECRET, TOKEN):
        assert secret not in text


# --- what is read before a signature is checked -----------------------------------------------


@pytest.mark.parametrize("route", ["sms", "whatsapp", "status"])
def test_twilio_bodies_larger_than_twilio_sends_are_refused_before_reading_them(
    client: FlaskClient, db: sessionmaker[Session], route: str
) -> None:
    """Parsing and signing a big form costs the worker, so it is refused before the check."""
    before = counts(db)
    body = b"Body=" + b"x" * TWILIO_MAX_BODY
    headers = {"X-Twilio-Signature": "x"}
    form = "application/x-www-form-urlencoded"
    response = client.post(
        f"/webhooks/twilio/{route}", data=body, content_type=form, headers=headers
    )
    assert response.status_code == 413
    assert f"limit {TWILIO_MAX_BODY} bytes" in response.get_data(as_text=True)
    # Without a Content-Length (chunked), the body is cut at the same limit.
    chunked = client.post(
        f"/webhooks/twilio/{route}",
        input_stream=io.BytesIO(body),
        content_type=form,
        headers={**headers, "Transfer-Encoding": "chunked"},
        # What gunicorn says of a chunked body: it ends where the stream ends.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413
    assert counts(db) == before


def test_a_form_of_thousands_of_fields_is_refused_before_it_is_signed(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    before = counts(db)
    fields = twilio_form("sms_inbound", Body="hello") | {f"k{n}": "" for n in range(5000)}
    response = post_twilio(client, "sms", fields)  # even correctly signed
    assert response.status_code == 413
    assert f"too many form fields (limit {TWILIO_MAX_FIELDS})" in response.get_data(as_text=True)
    assert counts(db) == before


def test_the_largest_message_twilio_sends_still_gets_through(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    """A WhatsApp message of 4,096 emoji with ten pictures: every field percent-encoded."""
    media = {
        f"MediaUrl{n}": f"https://api.twilio.com/2010-04-01/Media/ME{n:032x}" for n in range(10)
    }
    types = {f"MediaContentType{n}": "image/jpeg" for n in range(10)}
    fields = twilio_form("sms_inbound", Body="🌳" * 4096, NumMedia="10") | media | types
    assert len(urlencode(fields)) > 4096 * 12  # about 50 KB on the wire
    response = post_twilio(client, "sms", fields)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert counts(db)["messages"] > 0
