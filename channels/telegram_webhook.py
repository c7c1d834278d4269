"""Telegram's webhook: check the secret token, turn one ``Update`` into what Voxpop acts on.

Telegram POSTs one JSON ``Update`` per request and sends the secret given to ``setWebhook``
back in the ``X-Telegram-Bot-Api-Secret-Token`` header. The shared webhook view
(:mod:`bot.web.webhooks`) calls :func:`verify` before :func:`parse`.

What an update becomes (docs/channels.md has the same table for operators):

=====================================  ==========================================================
private-chat text                      ``InboundMessage`` (text as typed)
``/start PARK`` (deep link)            ``InboundMessage`` with the text ``PARK``: a keyword
``/start`` alone                       ``InboundMessage`` with the text ``START``: the help and
                                       open keywords, and a way back in after STOP
``/help``, ``/lang nl`` ...            the command without its slash (``help``, ``lang nl``)
a photo or document with a caption     ``InboundMessage`` with the caption
inline-keyboard tap                    ``ButtonPress``; data ``k:<key>`` is a typed ``<key>``
sticker, photo, voice, document ...    ``Ignored`` with ``notify``: ask politely for text
edits, groups, channels, membership    ``Ignored``, silently
a field Voxpop cannot read             ``Ignored`` (answered 200), the reason names the field
=====================================  ==========================================================

>>> req = WebhookRequest("https://x/webhooks/telegram", {SECRET_HEADER: "s3cret"}, b"{}")
>>> verify(req, "s3cret"), verify(req, "other"), verify(req, "")
(True, False, False)
"""

from __future__ import annotations

import hmac
import json
import re
from datetime import datetime
from enum import Enum
from typing import Any

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType

from channels.addresses import address_problem
from channels.base import BadRequest, ButtonPress, Ignored, Parsed, WebhookRequest
from messages import Address, InboundMessage

__all__ = ["KEY_PREFIX", "SECRET_HEADER", "name", "parse", "text_of", "verify"]

name = "telegram"
#: Lower case, as :class:`~channels.base.WebhookRequest` carries header names.
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name
#: Callback data ``k:<key>`` stands for the citizen typing ``<key>``: used when the real
#: payload would not fit in Telegram's 64 bytes of callback data.
KEY_PREFIX = "k:"
#: ``/command`` or ``/command@BotName``, then optional arguments.
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)
#: What a field name looks like in Telegram's API; anything else is not named in logs.
_FIELD = re.compile(r"[a-z][a-z_]{0,40}")
#: Fields of an unreadable object tried one by one to name the broken one.
_MAX_FIELDS = 64
#: Content a citizen sends on purpose but Voxpop cannot read; the first match names it.
#: An animation also carries ``document``, and a venue ``location``: they come first.
_ATTACHMENTS = (
    "sticker",
    "photo",
    "voice",
    "audio",
    "video_note",
    "video",
    "animation",
    "document",
    "venue",
    "location",
    "contact",
    "poll",
    "dice",
)


def verify(request: WebhookRequest, secret: str) -> bool:
    """Whether the request carries our webhook secret (constant-time compare).

    An empty configured secret verifies nothing: it would accept an empty header.
    """
    given = request.headers.get(SECRET_HEADER)
    if not secret or given is None:
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


def parse(request: WebhookRequest, now: datetime) -> list[Parsed]:
    """What the update carries: at most one item.

    Raises :class:`BadRequest` (a 4xx) only for input that is not a Telegram update at all:
    not a JSON object with an integer ``update_id``. An update Voxpop cannot use (a field of
    the wrong type, a date out of range, anything python-telegram-bot cannot read) is
    :class:`Ignored` with the reason, naming the field but never its content: Telegram
    delivers an update again and again until it gets a 2xx.
    """
    try:
        data = json.loads(request.body)
    except RecursionError:
        raise BadRequest("the body is not JSON that can be read: nested too deeply") from None
    except ValueError:  # also UnicodeDecodeError, and integers too long to read
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict) or not _is_int(data.get("update_id")):
        raise BadRequest("not a Telegram update: no integer update_id")
    update_id = str(data["update_id"])
    try:
        update = Update.de_json(data, None)
    except Exception as exc:  # any error here is the payload's, not ours
        # python-telegram-bot reads untrusted JSON: a wrong type raises TypeError or
        # AttributeError, a huge date OverflowError... The exception text may quote the
        # payload; the type and the field do not.
        reason = f"{_broken_field(data)} cannot be read ({type(exc).__name__})"
        return [Ignored(f"unusable update: {reason}", provider_id=update_id)]
    try:
        return [_parse_update(update, data, now)]
    except _UnusableError as exc:
        return [Ignored(f"unusable update: {exc}", provider_id=update_id)]


class _UnusableError(Exception):
    """A field of the update has a shape Voxpop cannot use; the message names the field."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _broken_field(data: dict[str, Any]) -> str:
    """The field python-telegram-bot cannot read (``message.date``), found by trying each
    top-level field alone, then that field with one of its own fields emptied at a time."""
    update_id = data["update_id"]
    for key, value in data.items():
        if key == "update_id" or _readable({"update_id": update_id, key: value}):
            continue
        if isinstance(value, dict):
            for inner in list(value)[:_MAX_FIELDS]:
                emptied = {"update_id": update_id, key: {**value, inner: None}}
                if _FIELD.fullmatch(inner) and _readable(emptied):
                    return f"{_field_name(key)}.{inner}"
        return _field_name(key)
    return "the update"


def _readable(data: dict[str, Any]) -> bool:
    try:
        Update.de_json(data, None)
    except Exception:  # what is being found out
        return False
    return True


def _field_name(key: str) -> str:
    """A key as logs may show it: Telegram's own field names, never arbitrary input."""
    return key if key in Update.ALL_TYPES else "an unknown field"


def _require(value: object, kind: type, field: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _UnusableError(f"{field} is not {'text' if kind is str else 'a number'}")
    return value


def _parse_update(update: Update, data: dict[str, Any], now: datetime) -> Parsed:
    update_id = str(update.update_id)
    if update.message is not None:
        return _message(update.message, update_id, now)
    if update.callback_query is not None:
        return _button(update.callback_query, update_id, now)
    if update.my_chat_member is not None:
        # Blocking the bot is learnt when a send fails (ContactBlocked); nothing to store here.
        status = _known(update.my_chat_member.new_chat_member.status)
        return Ignored(f"my_chat_member: bot is now {status}", provider_id=update_id)
    kind = next((_field_name(key) for key in data if key != "update_id"), "empty")
    return Ignored(f"{kind} is not handled", provider_id=update_id)


def _known(value: object) -> str:
    """An enum value python-telegram-bot recognised, else ``unknown`` (never raw input)."""
    return str(value) if isinstance(value, Enum) else "unknown"


def _chat(message: Message, field: str) -> tuple[Address | None, str]:
    """The chat's address (``None`` unless private) and its type, for the reason."""
    chat_type = _known(message.chat.type)
    if message.chat.type != ChatType.PRIVATE:
        return None, chat_type
    chat_id = str(_require(message.chat.id, int, f"{field}.chat.id"))
    if address_problem(name, chat_id) is not None:
        raise _UnusableError(f"{field}.chat.id is not a Telegram chat id")
    return Address(name, chat_id), chat_type


def _message(message: Message, update_id: str, now: datetime) -> Parsed:
    address, chat_type = _chat(message, "message")
    if address is None:
        # Consultations are one-to-one: a group's answers could not be told apart.
        return Ignored(f"message in a {chat_type} chat", provider_id=update_id)
    text = message.text if message.text is not None else message.caption
    if text is not None:
        field = "message.text" if message.text is not None else "message.caption"
        return InboundMessage(address, text_of(_require(text, str, field)), update_id, now)
    kind = next((k for k in _ATTACHMENTS if getattr(message, k, None)), None)
    if kind is None:
        # A service message (pinned, payment, ...): nothing the citizen typed or sent.
        return Ignored("service message", provider_id=update_id)
    return Ignored(f"{kind} message", notify=address, provider_id=update_id)


def _button(query: CallbackQuery, update_id: str, now: datetime) -> Parsed:
    message = query.message
    if message is None:
        return Ignored("button on an inline-mode message", provider_id=update_id)
    if not isinstance(message, Message):
        return Ignored("button on a message that is no longer accessible", provider_id=update_id)
    address, chat_type = _chat(message, "callback_query.message")
    if address is None:
        return Ignored(f"button in a {chat_type} chat", provider_id=update_id)
    if query.data is None:
        return Ignored("button without callback data", provider_id=update_id)
    data = _require(query.data, str, "callback_query.data")
    callback_id = _require(query.id, str, "callback_query.id")
    message_id = _require(message.message_id, int, "callback_query.message.message_id")
    if data.startswith(KEY_PREFIX):
        inbound = InboundMessage(address, data[len(KEY_PREFIX) :], update_id, now)
    else:
        label = _label(message, data)
        inbound = InboundMessage(address, label or data, update_id, now, payload=data)
    return ButtonPress(inbound, callback_id, address.value, str(message_id))


def _label(message: Message, data: str) -> str | None:
    """The text of the tapped button, found by its data in the message's keyboard."""
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data and isinstance(button.text, str):
                return button.text
    return None


def text_of(text: str) -> str:
    """The text Voxpop reads for a typed Telegram message: bot commands lose their slash.

    >>> text_of("/start PARK"), text_of("/start"), text_of("/lang@VoxpopBot nl"), text_of("1/2")
    ('PARK', 'START', 'lang nl', '1/2')
    """
    found = _COMMAND.fullmatch(text.strip())
    if found is None:
        return text
    command, argument = found.group(1), (found.group(2) or "").strip()
    if command.lower() == "start":
        # A deep link t.me/<bot>?start=PARK arrives as "/start PARK": the payload is a keyword.
        # Plain /start (the Start button) is START: help for everyone, and back in after STOP.
        return argument or "START"
    return f"{command} {argument}" if argument else command
