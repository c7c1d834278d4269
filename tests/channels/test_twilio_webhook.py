"""Twilio's webhooks: signatures (computed with the SDK, as Twilio does), and one case per real
request body in ``fixtures/twilio``.

Every fixture file must have a case (and every case a file).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from channels import twilio_webhook
from channels.base import BadRequest, Ignored, Parsed, StatusUpdate, WebhookRequest
from messages import Address, InboundMessage

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
BASE = "https://voxpop.example.city/webhooks/twilio"
SMS = Address("sms", "+15555550123")
WHATSAPP = Address("whatsapp", "+15555550123")


def sid(prefix: str, n: int) -> str:
    return f"{prefix}{n:032x}"


def form(name: str) -> dict[str, str]:
    body = (FIXTURES / f"{name}.txt").read_text(encoding="utf-8").strip()
    return dict(parse_qsl(body, keep_blank_values=True))


LONG_BODY = form("sms_long")["Body"]

#: fixture -> (route, expected). The route is the webhook the body is posted to.
CASES: dict[str, tuple[str, list[Parsed]]] = {
    "sms_inbound": ("sms", [InboundMessage(SMS, "PARK", sid("SM", 0x101), NOW)]),
    # Twilio joins the three parts of a concatenated SMS into one Body.
    "sms_long": ("sms", [InboundMessage(SMS, LONG_BODY, sid("SM", 0x102), NOW)]),
    "sms_short_code_sender": (
        "sms",
        [Ignored("sender is not a valid phone number", provider_id=sid("SM", 0x103))],
    ),
    "mms_photo": ("sms", [Ignored("media message", notify=SMS, provider_id=sid("MM", 0x104))]),
    "whatsapp_inbound": ("whatsapp", [InboundMessage(WHATSAPP, "park", sid("SM", 0x201), NOW)]),
    "whatsapp_button": (
        "whatsapp",
        [InboundMessage(WHATSAPP, "Every week", sid("SM", 0x202), NOW, payload="visits:weekly")],
    ),
    "whatsapp_image": (
        "whatsapp",
        [Ignored("media message", notify=WHATSAPP, provider_id=sid("MM", 0x203))],
    ),
    "whatsapp_location": (
        "whatsapp",
        [Ignored("media message", notify=WHATSAPP, provider_id=sid("SM", 0x204))],
    ),
    "status_queued": ("status", [StatusUpdate("sms", sid("SM", 0x301), "queued")]),
    "status_sent": ("status", [StatusUpdate("sms", sid("SM", 0x301), "sent")]),
    "status_delivered": ("status", [StatusUpdate("sms", sid("SM", 0x301), "delivered")]),
    "status_undelivered": (
        "status",
        [StatusUpdate("sms", sid("SM", 0x302), "undelivered", "30003")],
    ),
    "status_failed": ("status", [StatusUpdate("sms", sid("SM", 0x303), "failed", "30008")]),
    "status_whatsapp_read": ("status", [StatusUpdate("whatsapp", sid("SM", 0x304), "read")]),
}


def request(
    route: str, fields: dict[str, str], *, token: str = TOKEN, url: str | None = None
) -> WebhookRequest:
    """A request as Twilio sends it: form fields, signed over the URL and the fields."""
    url = url or f"{BASE}/{route}"
    signature = RequestValidator(token).compute_signature(url, fields)
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        twilio_webhook.SIGNATURE_HEADER: signature,
    }
    return WebhookRequest(url, headers, b"", fields)


def parse(route: str, req: WebhookRequest) -> list[Parsed]:
    if route == "status":
        return twilio_webhook.parse_status(req)
    return twilio_webhook.parse_message(req, route, NOW)


def test_every_fixture_has_a_case() -> None:
    assert {p.stem for p in FIXTURES.glob("*.txt")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse(name: str) -> None:
    route, expected = CASES[name]
    req = request(route, form(name))
    assert twilio_webhook.verify(req, TOKEN)
    assert parse(route, req) == expected


# --- signatures ----------------------------------------------------------------------------


def test_signed_request_verifies() -> None:
    assert twilio_webhook.verify(request("sms", form("sms_inbound")), TOKEN)


def test_another_accounts_token_is_refused() -> None:
    req = request("sms", form("sms_inbound"), token="f" * 32)
    assert not twilio_webhook.verify(req, TOKEN)


def test_a_changed_field_is_refused() -> None:
    req = request("sms", form("sms_inbound"))
    tampered = WebhookRequest(req.url, req.headers, b"", {**req.form, "Body": "STOP"})
    assert not twilio_webhook.verify(tampered, TOKEN)


def test_an_added_field_is_refused() -> None:
    req = request("sms", form("sms_inbound"))
    extra = WebhookRequest(req.url, req.headers, b"", {**req.form, "ButtonPayload": "x"})
    assert not twilio_webhook.verify(extra, TOKEN)


def test_signed_for_another_url_is_refused() -> None:
    # A signature for the SMS webhook replayed on the WhatsApp one.
    signed = request("sms", form("sms_inbound"))
    replayed = WebhookRequest(f"{BASE}/whatsapp", signed.headers, b"", signed.form)
    assert not twilio_webhook.verify(replayed, TOKEN)


def test_missing_signature_or_token_is_refused() -> None:
    req = request("sms", form("sms_inbound"))
    unsigned = WebhookRequest(req.url, {"content-type": "x"}, b"", req.form)
    assert not twilio_webhook.verify(unsigned, TOKEN)
    assert not twilio_webhook.verify(req, "")


def test_url_with_query_and_default_port() -> None:
    # Twilio may sign the URL with or without :443; a query string is part of what it signs.
    signed_url = "https://voxpop.example.city:443/webhooks/twilio/sms?city=gent"
    req = request("sms", form("sms_inbound"), url=signed_url)
    called = WebhookRequest(
        "https://voxpop.example.city/webhooks/twilio/sms?city=gent", req.headers, b"", req.form
    )
    assert twilio_webhook.verify(called, TOKEN)


def test_json_body_is_checked_against_body_sha256() -> None:
    body = b'{"MessageSid": "SM1", "MessageStatus": "delivered"}'
    url = f"{BASE}/status?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    headers = {"content-type": "application/json", twilio_webhook.SIGNATURE_HEADER: signature}
    assert twilio_webhook.verify(WebhookRequest(url, headers, body), TOKEN)
    # The URL (with the hash) is signed, so another body does not match it.
    other = b'{"MessageSid": "SM1", "MessageStatus": "failed"}'
    assert not twilio_webhook.verify(WebhookRequest(url, headers, other), TOKEN)
    assert not twilio_webhook.verify(WebhookRequest(url, headers, b"\xff"), TOKEN)


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "change", "reason"),
    [
        ("sms", {"From": ""}, "From and MessageSid are required"),
        ("sms", {"MessageSid": "", "SmsSid": ""}, "From and MessageSid are required"),
        ("sms", {"NumMedia": "many"}, "NumMedia is not a number"),
        # Each sender has its own URL; a misconfigured console is told so (Twilio's debugger).
        ("sms", {"From": "whatsapp:+15555550123"}, "a whatsapp message on the sms webhook"),
        ("whatsapp", {"From": "+15555550123"}, "a sms message on the whatsapp webhook"),
        ("sms", {"From": "messenger:1234567"}, "unsupported Twilio channel 'messenger'"),
        # What is not a channel's name may be a number: never repeated in the reason (a log).
        ("sms", {"From": "32470123456:x"}, r"unsupported Twilio channel \(unnamed\)$"),
    ],
)
def test_malformed_message(route: str, change: dict[str, str], reason: str) -> None:
    fields = {**form("sms_inbound"), **change}
    with pytest.raises(BadRequest, match=reason):
        twilio_webhook.parse_message(request(route, fields), route, NOW)


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_malformed_status(missing: str) -> None:
    fields = {k: v for k, v in form("status_sent").items() if not k.startswith(("Sms", missing))}
    with pytest.raises(BadRequest, match="MessageSid and MessageStatus are required"):
        twilio_webhook.parse_status(request("status", fields))


def test_an_inbound_message_with_only_an_sms_sid_is_read() -> None:
    """Older requests name the message by ``SmsSid`` alone, as status callbacks may."""
    fields = {k: v for k, v in form("sms_inbound").items() if k != "MessageSid"}
    (message,) = twilio_webhook.parse_message(request("sms", fields), "sms", NOW)
    assert isinstance(message, InboundMessage)
    assert message.provider_id == fields["SmsSid"]


def test_empty_sms_is_an_empty_message() -> None:
    # An empty SMS (no media) goes to the conversation, which asks again: no notice needed.
    fields = {**form("sms_inbound"), "Body": ""}
    assert twilio_webhook.parse_message(request("sms", fields), "sms", NOW) == [
        InboundMessage(SMS, "", sid("SM", 0x101), NOW)
    ]


def test_media_with_a_body_is_the_body() -> None:
    fields = {**form("whatsapp_image"), "Body": "2"}
    assert twilio_webhook.parse_message(request("whatsapp", fields), "whatsapp", NOW) == [
        InboundMessage(WHATSAPP, "2", sid("MM", 0x203), NOW)
    ]
