"""Telegram's webhook: check the secret token, turn one ``Update`` into what Voxpop acts on.

Telegram POSTs one JSON ``Update`` per request and sends the secret given to ``setWebhook``
back in the ``X-Telegram-Bot-Api-Secret-Token`` header. The shared webhook view
(:mod:`bot.webhooks`) calls :func:`verify` before :func:`parse`.

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
from typing import Any

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType

from bot.messages import Address, InboundMessage
from channels.base import BadRequest, ButtonPress, Ignored, Parsed, WebhookRequest

__all__ = ["KEY_PREFIX", "SECRET_HEADER", "name", "parse", "text_of", "verify"]

name = "telegram"
#: Lower case, as :class:`~channels.base.WebhookRequest` carries header names.
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name
#: Callback data ``k:<key>`` stands for the citizen typing ``<key>``: used when the real
#: payload would not fit in Telegram's 64 bytes of callback data.
KEY_PREFIX = "k:"
#: ``/command`` or ``/command@BotName``, then optional arguments.
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)
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
    """What the update carries: at most one item. Raises :class:`BadRequest` on input that
    is not a Telegram update."""
    try:
        data = json.loads(request.body)
    except ValueError:  # also UnicodeDecodeError
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise BadRequest("not a Telegram update: no integer update_id")
    try:
        update = Update.de_json(data, None)
    except (TypeError, KeyError, ValueError, AttributeError):
        # The exception text may quote the payload; the reason stays generic.
        raise BadRequest("not a Telegram update: a field is missing or malformed") from None
    return [_parse_update(update, data, now)]


def _parse_update(update: Update, data: dict[str, Any], now: datetime) -> Parsed:
    update_id = str(update.update_id)
    if update.message is not None:
        return _message(update.message, update_id, now)
    if update.callback_query is not None:
        return _button(update.callback_query, update_id, now)
    if update.my_chat_member is not None:
        # Blocking the bot is learnt when a send fails (ContactBlocked); nothing to store here.
        status = update.my_chat_member.new_chat_member.status
        return Ignored(f"my_chat_member: bot is now {status}", provider_id=update_id)
    kind = next((key for key in data if key != "update_id"), "empty")
    return Ignored(f"{kind} is not handled", provider_id=update_id)


def _message(message: Message, update_id: str, now: datetime) -> Parsed:
    if message.chat.type != ChatType.PRIVATE:
        # Consultations are one-to-one: a group's answers could not be told apart.
        return Ignored(f"message in a {message.chat.type} chat", provider_id=update_id)
    address = Address(name, str(message.chat.id))
    text = message.text if message.text is not None else message.caption
    if text is not None:
        return InboundMessage(address, text_of(text), update_id, now)
    kind = next((k for k in _ATTACHMENTS if getattr(message, k, None)), None)
    if kind is None:
        # A service message (pinned, payment, ...): nothing the citizen typed or sent.
        return Ignored("service message", provider_id=update_id)
    return Ignored(f"{kind} message", notify=address, provider_id=update_id)


def _button(query: CallbackQuery, update_id: str, now: datetime) -> Parsed:
    message = query.message
    if message is None:
        return Ignored("button on an inline-mode message", provider_id=update_id)
    if message.chat.type != ChatType.PRIVATE:
        return Ignored(f"button in a {message.chat.type} chat", provider_id=update_id)
    if query.data is None:
        return Ignored("button without callback data", provider_id=update_id)
    chat = str(message.chat.id)
    address = Address(name, chat)
    data = query.data
    if data.startswith(KEY_PREFIX):
        inbound = InboundMessage(address, data[len(KEY_PREFIX) :], update_id, now)
    else:
        label = _label(message, data) if isinstance(message, Message) else None
        inbound = InboundMessage(address, label or data, update_id, now, payload=data)
    return ButtonPress(inbound, query.id, chat, str(message.message_id))


def _label(message: Message, data: str) -> str | None:
    """The text of the tapped button, found by its data in the message's keyboard."""
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
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
