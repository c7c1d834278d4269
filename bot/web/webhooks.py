"""Provider webhooks: one shared view verifies, parses, and hands each item to the service.

=================================  ===============================================================
``POST /webhooks/telegram``        Telegram updates (JSON); ``[telegram] token`` and
                                   ``webhook_secret``
``POST /webhooks/twilio/sms``      inbound SMS (form); ``[twilio] auth_token`` and ``sms_from``
                                   or ``messaging_service_sid``
``POST /webhooks/twilio/whatsapp`` inbound WhatsApp (form); ``auth_token`` and ``whatsapp_from``
``POST /webhooks/twilio/status``   delivery reports for SMS and WhatsApp; ``auth_token``
=================================  ===============================================================

A route exists only when its channel is configured; otherwise it is a 404. The view, never a
channel, calls ``verify`` first (DESIGN.md, convention 3): 403 and nothing written when it
fails. Then 413 for a body over the limit (checked before anything is read), 400 with the
reason for input the channel cannot parse, and 200 once the service has committed (also for
what is acknowledged and ignored: a sender that is no phone number, a Telegram update with a
field Voxpop cannot read; providers would retry anything else). Every parsed item is made fit
for the database first (:mod:`bot.web.storable`), so no input makes a 500. Telegram
gets ``{}``, Twilio an empty TwiML ``<Response>`` so that it sends nothing itself. Replies
are outbox rows; the dispatcher sends them after the commit, never this request.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.config import Config
from bot.service import Clock, Service
from bot.web.storable import storable
from channels import telegram_webhook, twilio_webhook
from channels.base import (
    BadRequest,
    ButtonPress,
    FormFields,
    Ignored,
    Parsed,
    StatusUpdate,
    WebhookRequest,
)
from messages import InboundMessage

__all__ = ["TWIML_EMPTY", "Hook", "enabled_hooks", "webhooks_blueprint"]

log = logging.getLogger(__name__)

#: An empty TwiML answer: Twilio sends nothing on its own; our replies go through the outbox.
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_FORM = "application/x-www-form-urlencoded"
#: Twilio's requests are small forms (a WhatsApp message of 4,096 characters with ten media
#: is far below); reading a bigger one before its signature is checked would let anyone make
#: the workers busy with junk, so it is refused first.
TWILIO_MAX_BODY = 128 * 1024
#: A Twilio request has about 20 to 50 fields; parsing and signing more is work for an attacker.
TWILIO_MAX_FIELDS = 200


@dataclass(frozen=True)
class Hook:
    """One webhook route: how its requests are verified, parsed and answered."""

    #: ``telegram``, ``twilio/sms``...: the route is ``/webhooks/<name>``; also used in logs.
    name: str
    verify: Callable[[WebhookRequest], bool]
    parse: Callable[[WebhookRequest, datetime], list[Parsed]]
    ok: Callable[[], Response]
    #: Whether the provider posts a form (read before ``verify``, which signs its fields).
    reads_form: bool = False
    #: The largest body this provider sends (``None``: the app's limit).
    max_body: int | None = None


def enabled_hooks(config: Config) -> list[Hook]:
    """The hooks whose channel is configured; a secret that is empty enables nothing.

    >>> from bot.config import TelegramConfig
    >>> [h.name for h in enabled_hooks(Config())]
    []
    >>> telegram = TelegramConfig(token="1:x", webhook_secret="s")
    >>> [h.name for h in enabled_hooks(Config(telegram=telegram))]
    ['telegram']
    """
    hooks: list[Hook] = []
    telegram, twilio = config.telegram, config.twilio
    if telegram.enabled and telegram.webhook_secret:
        secret = telegram.webhook_secret
        hooks.append(
            Hook(
                "telegram",
                lambda req: telegram_webhook.verify(req, secret),
                telegram_webhook.parse,
                _telegram_ok,
            )
        )
    if twilio.enabled and twilio.auth_token:
        token = twilio.auth_token

        def verify(req: WebhookRequest) -> bool:
            return twilio_webhook.verify(req, token)

        if twilio.sms_from or twilio.messaging_service_sid:
            hooks.append(_twilio_hook("twilio/sms", verify, _messages("sms")))
        if twilio.whatsapp_from:
            hooks.append(_twilio_hook("twilio/whatsapp", verify, _messages("whatsapp")))
        hooks.append(_twilio_hook("twilio/status", verify, _statuses))
    return hooks


def _twilio_hook(
    name: str,
    verify: Callable[[WebhookRequest], bool],
    parse: Callable[[WebhookRequest, datetime], list[Parsed]],
) -> Hook:
    return Hook(name, verify, parse, _twiml_ok, reads_form=True, max_body=TWILIO_MAX_BODY)


def webhooks_blueprint(
    service: Service, config: Config, *, clock: Clock, max_body: int
) -> Blueprint | None:
    """The ``/webhooks`` routes of the configured channels; ``None`` when there are none."""
    hooks: Mapping[str, Hook] = {hook.name: hook for hook in enabled_hooks(config)}
    if not hooks:
        return None
    public_url = config.server.public_url.rstrip("/")
    bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

    def webhook(hook: str) -> Response:
        spec = hooks[hook]
        limit = min(max_body, spec.max_body or max_body)
        # Refused before a byte is read: a provider never sends anything this big.
        if request.content_length is not None and request.content_length > limit:
            return _too_large(limit)
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:  # no Content-Length: Werkzeug stops at the limit
            return _too_large(limit)
        if len(body) > limit:  # chunked: Werkzeug knew only the app's limit
            return _too_large(limit)
        form = FormFields(())
        if spec.reads_form and request.mimetype == _FORM:
            try:
                form = _form(body)
            except ValueError:  # parse_qsl's max_num_fields
                return _plain(f"too many form fields (limit {TWILIO_MAX_FIELDS})", 413)
        incoming = WebhookRequest(
            url=_signed_url(public_url),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            form=form,
        )
        if not spec.verify(incoming):
            log.warning("webhook %s: verification failed, refused", spec.name)
            return _plain("forbidden: the signature or secret token does not match", 403)
        try:
            items = spec.parse(incoming, clock())
        except BadRequest as exc:
            log.warning("webhook %s: bad request: %s", spec.name, exc)
            return _plain(f"bad request: {exc}", 400)
        counts = Counter(handle_parsed(service, item) for item in items)
        log.info(
            "webhook %s: %s",
            spec.name,
            ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "empty",
        )
        return spec.ok()

    for name in hooks:
        bp.add_url_rule(
            f"/{name}",
            endpoint=name.replace("/", "_"),
            view_func=webhook,
            methods=["POST"],
            defaults={"hook": name},
        )
    return bp


def handle_parsed(service: Service, item: Parsed) -> str:
    """Give one parsed item to the service, made fit for the database first (its texts
    cleaned, each cut to its column); what happened, for the log line."""
    item = storable(item)
    if isinstance(item, ButtonPress):
        received = service.receive_press(item)
        return "duplicate" if received.duplicate else "button"
    if isinstance(item, InboundMessage):
        # A redelivery is a no-op that still answers 200: providers retry on anything else.
        return "duplicate" if service.receive(item).duplicate else "inbound"
    if isinstance(item, StatusUpdate):
        return "status" if service.record_status(item) else "status unchanged"
    assert isinstance(item, Ignored)
    if item.notify is not None and service.notify_ignored(item):
        return "ignored, asked for text"
    # The reason names a kind of update ("sticker message"), never its content.
    log.info("ignored: %s", item.reason)
    return "ignored"


def _messages(channel: str) -> Callable[[WebhookRequest, datetime], list[Parsed]]:
    def parse(req: WebhookRequest, now: datetime) -> list[Parsed]:
        return twilio_webhook.parse_message(req, channel, now)

    return parse


def _statuses(req: WebhookRequest, _now: datetime) -> list[Parsed]:
    return twilio_webhook.parse_status(req)


def _signed_url(public_url: str) -> str:
    """The URL as the provider called it: behind a proxy, ``server.public_url`` knows the
    scheme and host the provider used (and signed); the path and query are ours."""
    base = public_url or request.host_url.rstrip("/")
    query = request.query_string.decode("utf-8", "replace")
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def _form(body: bytes) -> FormFields:
    # Blank values are kept, and every value of a repeated name: Twilio signs them all.
    fields = parse_qsl(
        body.decode("utf-8", "replace"),
        keep_blank_values=True,
        max_num_fields=TWILIO_MAX_FIELDS,
    )
    return FormFields(fields)


def _too_large(limit: int) -> Response:
    return _plain(f"request body too large (limit {limit} bytes)", 413)


def _telegram_ok() -> Response:
    return jsonify({})


def _twiml_ok() -> Response:
    return Response(TWIML_EMPTY, mimetype="text/xml")


def _plain(message: str, status: int) -> Response:
    return Response(message, status=status, mimetype="text/plain")
