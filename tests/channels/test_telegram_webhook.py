"""Telegram's webhook: the secret check, and one case per real update in ``fixtures/telegram``.

Every fixture file must have a case (and every case a file), so a new payload cannot be
added without saying what it becomes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels import telegram_webhook
from channels.base import BadRequest, ButtonPress, Ignored, Parsed, WebhookRequest
from messages import Address, InboundMessage

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
URL = "https://voxpop.example.city/webhooks/telegram"
SECRET = "kT7-rq_2vX9pLw4ZsN8m"
ANA = Address("telegram", "100000001")


def inbound(text: str, update_id: int, payload: str | None = None) -> InboundMessage:
    return InboundMessage(ANA, text, str(update_id), NOW, payload)


CASES: dict[str, list[Parsed]] = {
    "text_message": [inbound("Every week", 880000001)],
    # A deep link t.me/VoxpopCityBot?start=PARK: the payload is the survey keyword.
    "start_deep_link": [inbound("PARK", 880000002)],
    # The Start button: START gives the help with the open keywords (and rejoins after STOP).
    "start_plain": [inbound("START", 880000003)],
    "command_lang": [inbound("lang nl", 880000004)],
    # The tapped button's label is the text; its callback data is the payload.
    "callback_query": [
        ButtonPress(
            inbound("1. Every week", 880000005, payload="visits:weekly"),
            callback_id="4382716153049125001",
            keyboard_chat="100000001",
            keyboard_message="5021",
        )
    ],
    # k:<key> stands for typing the key (a payload too long for 64 bytes of callback data).
    "callback_query_key": [
        ButtonPress(
            inbound("2", 880000006),
            callback_id="4382716153049125002",
            keyboard_chat="100000001",
            keyboard_message="5022",
        )
    ],
    "sticker": [Ignored("sticker message", notify=ANA, provider_id="880000007")],
    "photo": [Ignored("photo message", notify=ANA, provider_id="880000008")],
    # A caption is text the citizen typed: it counts, like a WhatsApp image with a Body.
    "photo_with_caption": [inbound("2", 880000009)],
    "voice": [Ignored("voice message", notify=ANA, provider_id="880000010")],
    "document": [Ignored("document message", notify=ANA, provider_id="880000011")],
    # An edit does not change an answer already given; silently ignored.
    "edited_message": [Ignored("edited_message is not handled", provider_id="880000012")],
    "group_message": [Ignored("message in a supergroup chat", provider_id="880000013")],
    "channel_post": [Ignored("channel_post is not handled", provider_id="880000014")],
    "my_chat_member": [Ignored("my_chat_member: bot is now kicked", provider_id="880000015")],
}


def request(body: bytes, secret: str | None = SECRET) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[telegram_webhook.SECRET_HEADER] = secret
    return WebhookRequest(URL, headers, body)


def test_every_fixture_has_a_case() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse(name: str) -> None:
    body = (FIXTURES / f"{name}.json").read_bytes()
    assert telegram_webhook.parse(request(body), NOW) == CASES[name]


@pytest.mark.parametrize(
    ("configured", "sent", "ok"),
    [
        (SECRET, SECRET, True),
        (SECRET, SECRET + "x", False),
        (SECRET, "", False),
        (SECRET, None, False),
        # An empty configured secret must not accept an empty (or any) header.
        ("", "", False),
        ("", SECRET, False),
    ],
)
def test_verify(configured: str, sent: str | None, ok: bool) -> None:
    assert telegram_webhook.verify(request(b"{}", sent), configured) is ok


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is not JSON"),
        (b"update_id=1", "the body is not JSON"),
        (b"\xff\xfe{", "the body is not JSON"),
        (b'{"update_id": 1' + b"9" * 5000 + b"}", "the body is not JSON"),
        (b'{"update_id": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b"[1, 2]", "not a Telegram update: no integer update_id"),
        (b'{"message": {}}', "not a Telegram update: no integer update_id"),
        (b'{"update_id": "1"}', "not a Telegram update: no integer update_id"),
        (b'{"update_id": true}', "not a Telegram update: no integer update_id"),
        (b'{"update_id": 1.5}', "not a Telegram update: no integer update_id"),
    ],
)
def test_what_is_not_an_update_is_a_bad_request(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        telegram_webhook.parse(request(body), NOW)


_CHAT = '"message_id": 5, "chat": {"id": 42, "type": "private"}'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('"message": {"text": "hi"}', "message cannot be read (KeyError)"),
        ('"message": 5', "message cannot be read (AttributeError)"),
        ('"callback_query": {"id": "1"}', "callback_query cannot be read (TypeError)"),
        # Found by fuzzing: a date beyond any calendar, fields of the wrong type.
        (f'"message": {{{_CHAT}, "date": 1e300, "text": "x"}}', "message.date cannot be read"),
        (f'"message": {{{_CHAT}, "date": {10**30}, "text": "x"}}', "message.date cannot be read"),
        (f'"message": {{{_CHAT}, "date": 1, "text": "x", "entities": 5}}', "message.entities"),
        ('"message": {"message_id": 5, "chat": [], "date": 1}', "message.chat cannot be read"),
        (f'"message": {{{_CHAT}, "date": 1, "text": 7}}', "message.text is not text"),
        (f'"message": {{{_CHAT}, "date": 1, "caption": ["x"]}}', "message.caption is not text"),
        (
            '"message": {"message_id": 5, "chat": {"id": "42", "type": "private"}, "date": 1}',
            "message.chat.id is not a number",
        ),
        (
            f'"message": {{"message_id": 5, "chat": {{"id": {10**25}, "type": "private"}}, '
            '"date": 1, "text": "x"}',
            "message.chat.id is not a Telegram chat id",
        ),
        (
            '"callback_query": {"id": "c", "from": {"id": 42, "is_bot": false, "first_name": "A"},'
            f' "chat_instance": "1", "data": 5, "message": {{{_CHAT}, "date": 1}}}}',
            "callback_query.data is not text",
        ),
        (
            '"callback_query": {"id": 7, "from": {"id": 42, "is_bot": false, "first_name": "A"},'
            f' "chat_instance": "1", "data": "x", "message": {{{_CHAT}, "date": 1}}}}',
            "callback_query.id is not text",
        ),
        (
            '"callback_query": {"id": "c", "from": {"id": 42, "is_bot": false, "first_name": "A"},'
            ' "chat_instance": "1", "data": "x", "message": {"message_id": "5", "date": 1,'
            ' "chat": {"id": 42, "type": "private"}}}',
            "callback_query.message.message_id is not a number",
        ),
    ],
)
def test_an_unusable_update_is_acknowledged_with_the_field(body: str, reason: str) -> None:
    """Telegram delivers an update again until it gets a 2xx: one Voxpop cannot use is
    ignored (answered 200) and the log names the field, never its content."""
    (item,) = telegram_webhook.parse(request(f'{{"update_id": 9, {body}}}'.encode()), NOW)
    assert isinstance(item, Ignored)
    assert item.reason.startswith("unusable update: ")
    assert reason in item.reason
    assert item.provider_id == "9"
    assert item.notify is None


def test_an_unknown_field_is_not_named() -> None:
    body = rb'{"update_id": 9, "\u001b[2Jx": {"a": 1}}'
    assert telegram_webhook.parse(request(body), NOW) == [
        Ignored("an unknown field is not handled", provider_id="9")
    ]


def test_an_update_without_content_is_ignored() -> None:
    assert telegram_webhook.parse(request(b'{"update_id": 7}'), NOW) == [
        Ignored("empty is not handled", provider_id="7")
    ]


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("/start PARK", "PARK"),
        ("/start", "START"),
        ("/start@VoxpopCityBot", "START"),
        ("/START park", "park"),
        ("/help", "help"),
        ("/stop", "stop"),
        ("/lang@VoxpopCityBot nl", "lang nl"),
        # Not commands: answers that happen to hold a slash.
        ("1/2", "1/2"),
        ("/ 3", "/ 3"),
        ("every week / month", "every week / month"),
    ],
)
def test_commands_lose_their_slash(typed: str, read: str) -> None:
    assert telegram_webhook.text_of(typed) == read


def test_button_without_its_label_in_the_message_uses_the_data() -> None:
    data = json.loads((FIXTURES / "callback_query.json").read_text())
    del data["callback_query"]["message"]["reply_markup"]
    (press,) = telegram_webhook.parse(request(json.dumps(data).encode()), NOW)
    assert isinstance(press, ButtonPress)
    assert (press.message.text, press.message.payload) == ("visits:weekly", "visits:weekly")


def test_button_in_a_group_is_ignored() -> None:
    data = json.loads((FIXTURES / "callback_query.json").read_text())
    data["callback_query"]["message"]["chat"] = {
        "id": -1001234567890,
        "type": "group",
        "title": "x",
    }
    assert telegram_webhook.parse(request(json.dumps(data).encode()), NOW) == [
        Ignored("button in a group chat", provider_id="880000005")
    ]
