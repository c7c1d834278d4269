"""Twilio's webhooks for SMS and WhatsApp: signature check, inbound messages, status callbacks.

Twilio signs every request with the account's auth token: ``X-Twilio-Signature`` is an
HMAC-SHA1 over the full URL it called plus the sorted form fields. The URL must be the one
Twilio sees (``server.public_url`` + path + query), not the one a proxy hands on. For a JSON
body the URL carries ``bodySHA256`` instead and the body's hash is checked. The shared
webhook view (:mod:`bot.web.webhooks`) calls :func:`verify` before parsing.

Twilio joins the parts of a long (concatenated) SMS before calling us: ``Body`` is the whole
text and ``NumSegments`` says how many parts it came in.

>>> from datetime import UTC
>>> form = {"From": "whatsapp:+15555550100", "MessageSid": "SM1", "Body": "2", "NumMedia": "0"}
>>> req = WebhookRequest("https://x/webhooks/twilio/whatsapp", {}, b"", form)
>>> parse_message(req, "whatsapp", datetime(2026, 1, 1, tzinfo=UTC))[0].address
Address(channel='whatsapp', value='+15555550100')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from channels.addresses import address_problem
from channels.base import BadRequest, Ignored, Parsed, StatusUpdate, WebhookRequest
from messages import Address, InboundMessage

__all__ = ["SIGNATURE_HEADER", "parse_message", "parse_status", "verify"]

#: Lower case, as :class:`~channels.base.WebhookRequest` carries header names.
SIGNATURE_HEADER = "x-twilio-signature"
#: How much of an unknown channel prefix a refusal quotes.
_SHOWN = 32
#: Twilio's prefixes on ``From``/``To`` per channel; SMS numbers have none.
_PREFIXES: Mapping[str, str] = {"whatsapp": "whatsapp:"}


def verify(request: WebhookRequest, auth_token: str) -> bool:
    """Whether Twilio signed this request with ``auth_token`` (the SDK's validator, which
    compares in constant time and accepts the URL with or without its default port).

    Twilio signs every value of a repeated form field: the webhook view reads the form into a
    :class:`~channels.base.FormFields`, whose ``getlist`` gives the validator them all."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not auth_token or not signature:
        return False
    params: Mapping[str, str] | str = request.form
    if "bodySHA256" in parse_qs(urlsplit(request.url).query):
        # A JSON body: the URL is signed, and the body is checked against its SHA-256. Given
        # the form instead, the validator would skip that check.
        try:
            params = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(RequestValidator(auth_token).validate(request.url, params, signature))


def parse_message(request: WebhookRequest, channel: str, now: datetime) -> list[Parsed]:
    """An inbound SMS or WhatsApp message posted to ``channel``'s webhook.

    Raises :class:`BadRequest` without ``From`` or a message SID (``MessageSid``, or the
    older ``SmsSid``), or for another channel's message (each sender points at its own URL:
    docs/channels.md). A sender that is not an address Voxpop can answer (a short code, an
    alphanumeric sender, a number that cannot exist) is acknowledged and ignored.
    """
    form = request.form
    sender = form.get("From", "").strip()
    sid = _sid(form)
    if not sender or not sid:
        raise BadRequest("From and MessageSid are required")
    found, value = _split(sender)
    if found != channel:
        raise BadRequest(
            f"a {found} message on the {channel} webhook: set that sender's incoming "
            f"message URL to /webhooks/twilio/{found}"
        )
    if address_problem(channel, value) is not None:
        # A short code or an alphanumeric sender (carrier notices): nobody to answer.
        return [Ignored("sender is not a valid phone number", provider_id=sid)]
    address = Address(channel, value)
    body = form.get("Body", "")
    payload = form.get("ButtonPayload") or None
    if payload is not None:
        # A WhatsApp quick-reply button: its payload is the answer, its text what was shown.
        text = form.get("ButtonText") or body
        return [InboundMessage(address, text, sid, now, payload=payload)]
    try:
        media = int(form.get("NumMedia") or "0")
    except ValueError:
        raise BadRequest("NumMedia is not a number") from None
    if not body.strip() and (media > 0 or form.get("Latitude")):
        return [Ignored("media message", notify=address, provider_id=sid)]
    return [InboundMessage(address, body, sid, now)]


def parse_status(request: WebhookRequest) -> list[Parsed]:
    """A status callback for a message we sent: its SID, new status and error code.

    >>> form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003",
    ...         "To": "+15555550100", "From": "+15555550199"}
    >>> parse_status(WebhookRequest("https://x/webhooks/twilio/status", {}, b"", form))
    [StatusUpdate(channel='sms', provider_id='SM1', status='undelivered', error_code='30003')]
    """
    form = request.form
    sid = _sid(form)
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise BadRequest("MessageSid and MessageStatus are required")
    channel, _ = _split(form.get("To") or form.get("From") or "")
    error = (form.get("ErrorCode") or "").strip() or None
    return [StatusUpdate(channel, sid, status, error)]


def _sid(form: Mapping[str, str]) -> str:
    """The message SID: ``MessageSid``, or ``SmsSid`` that older requests carry alone."""
    return (form.get("MessageSid") or "").strip() or (form.get("SmsSid") or "").strip()


def _split(value: str) -> tuple[str, str]:
    """``whatsapp:+32...`` is ``("whatsapp", "+32...")``; a bare number is SMS."""
    for channel, prefix in _PREFIXES.items():
        if value.startswith(prefix):
            return channel, value[len(prefix) :]
    if ":" in value:
        # messenger:, rcs: ... are channels Voxpop does not speak.
        prefix = value.split(":", 1)[0]
        # Named only when it reads as a channel's name: anything else may be a number.
        shown = repr(prefix[:_SHOWN]) if prefix.isalpha() and prefix.isascii() else "(unnamed)"
        raise BadRequest(f"unsupported Twilio channel {shown}")
    return "sms", value
