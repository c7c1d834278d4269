"""A test phone for the real channels: citizens' messages go to a running ``voxpop serve`` as
signed provider webhooks, and the replies are read back from the fake providers it sends to.

This is the path a real citizen's message takes (webhook verification, the service, the
outbox, the dispatcher, the real SDKs), with loopback fakes in place of Telegram and Twilio.
``python -m tests.fakes`` starts the fakes, writes a config for ``voxpop serve``, and reads
lines like these from the terminal or a pipe::

    telegram 4242 PARK          a Telegram user (chat id 4242) writes PARK
    tap 4242 1                  taps the first button of the last keyboard sent to chat 4242
    sms +32470000091 LIGHTS     an SMS
    whatsapp +32470000002 hi    a WhatsApp message
    wait 90                     shows what the bot sends on its own meanwhile (a push)
    await Thank you             shows what the bot sends until a message says "Thank you"
    echo done                   prints "done" (for scripts driving the phone)

After each line it prints what the bot sent back (``bot>``), and for Twilio it reports
delivery to Voxpop's status callback, as Twilio would.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

from twilio.request_validator import RequestValidator

from bot.conversation.i18n import SUPPORTED_LANGUAGES
from tests.fakes import Call
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

#: The senders the fake accounts use.
SMS_FROM = "+15555550199"
WHATSAPP_FROM = "+15555550188"
#: Made-up approved templates, one per language Voxpop speaks, so that invitations outside
#: WhatsApp's window can go in each contact's language (the hex of the code, repeated).
TEMPLATE_SIDS = {code: "HX" + code.encode().hex() * 8 for code in SUPPORTED_LANGUAGES}
#: How long to wait for the replies to one message (Telegram paces a chat at 1 a second).
QUIET = 1.6
#: At most this long (a bound for a loaded machine, not waited out when the replies come).
PATIENCE = 60.0

_opener = build_opener(ProxyHandler({}))  # loopback only: never through a proxy


@dataclass
class Phone:
    """Sends citizens' messages to Voxpop at ``voxpop_url`` and reads replies off the fakes."""

    voxpop_url: str
    telegram: FakeTelegram
    twilio: FakeTwilio
    webhook_secret: str
    print_line: Callable[[str], None] = print
    #: Replies are complete once the bot has been quiet this long (a chat's pace is 1/s) ...
    quiet: float = QUIET
    #: ... or, where the phone can see Voxpop's database, once nothing is left to send:
    #: ``sending()`` tells whether any reply is still queued or on its way. A loaded machine
    #: can be quiet for a while mid-reply; the outbox cannot be empty before it is done.
    sending: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        self._ids = itertools.count(int(time.time()))
        self._seen = {"telegram": 0, "twilio": 0}
        self._reported: set[str] = set()
        #: The status callback URL Voxpop asked for, per recipient.
        self._callbacks: dict[str, str] = {}

    # --- the config Voxpop runs with ----------------------------------------------------------

    def config_toml(self, database_url: str) -> str:
        """A config for ``voxpop serve`` that sends to these fakes."""
        url = self.voxpop_url.rstrip("/")
        host, _, port = url.removeprefix("http://").partition(":")
        return "\n".join(
            [
                "# Written by `python -m tests.fakes`: Voxpop with fake Telegram and Twilio.",
                "[database]",
                f'url = "{database_url}"',
                "[server]",
                f'host = "{host}"',
                f"port = {int(port or 80)}",
                f'public_url = "{url}"',
                "[surveys]",
                'load = ["surveys/examples"]',
                "[telegram]",
                f'token = "{self.telegram.token}"',
                f'webhook_secret = "{self.webhook_secret}"',
                f'api_base_url = "{self.telegram.url}"',
                "[twilio]",
                f'account_sid = "{self.twilio.account_sid}"',
                f'auth_token = "{self.twilio.auth_token}"',
                f'api_base_url = "{self.twilio.url}"',
                f'sms_from = "{SMS_FROM}"',
                f'whatsapp_from = "{WHATSAPP_FROM}"',
                '[twilio.whatsapp_templates."*"]',
                *(f'{code} = "{sid}"' for code, sid in TEMPLATE_SIDS.items()),
                "",
            ]
        )

    # --- one line -------------------------------------------------------------------------------

    def handle(self, line: str) -> None:
        """Carry out one line (see the module docstring) and print the replies."""
        words = line.split(maxsplit=2)
        if not words or words[0].startswith("#"):
            return
        if words[0] == "wait":
            self._wait(words[1] if len(words) > 1 else "")
            return
        if words[0] == "await":
            self._await(line.partition(" ")[2].strip())
            return
        if words[0] == "echo":  # a marker for scripts driving the phone
            self.print_line(line.partition(" ")[2])
            return
        if len(words) < 3:
            self.print_line("? write: telegram|sms|whatsapp ADDRESS TEXT, or tap CHAT N")
            return
        command, address, text = words
        self.print_line(f"{command} {address}> {text}")
        if command in ("telegram", "tg"):
            status = self._post_telegram(self._text_update(address, text))
        elif command == "tap":
            update = self._tap_update(address, text)
            if update is None:
                self.print_line(f"? no button {text} in the last keyboard sent to {address}")
                return
            status = self._post_telegram(update)
        elif command in ("sms", "whatsapp", "wa"):
            status = self._post_twilio("whatsapp" if command == "wa" else command, address, text)
        else:
            self.print_line(f"? unknown command {command!r}")
            return
        if status != 200:
            self.print_line(f"! Voxpop answered {status}")
            return
        for reply in self._replies():
            self.print_line(f"bot> {reply}")

    # --- Telegram -------------------------------------------------------------------------------

    def _user(self, chat: str) -> dict[str, Any]:
        return {"id": int(chat), "is_bot": False, "first_name": "Test", "language_code": "en"}

    def _text_update(self, chat: str, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "from": self._user(chat),
            "chat": {"id": int(chat), "first_name": "Test", "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._ids), "message": message}

    def _tap_update(self, chat: str, number: str) -> dict[str, Any] | None:
        keyboards = [
            c for c in self.telegram.calls_to("sendMessage") if str(c.params["chat_id"]) == chat
        ]
        for call in reversed(keyboards):
            markup = call.params.get("reply_markup")
            if not isinstance(markup, dict):
                continue
            buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
            if not number.isdigit() or not 1 <= int(number) <= len(buttons):
                return None
            sent = self._sent_message_id(call)
            if sent is None:
                return None
            return {
                "update_id": next(self._ids),
                "callback_query": {
                    "id": str(next(self._ids)),
                    "from": self._user(chat),
                    "message": {
                        "message_id": sent,
                        "chat": {"id": int(chat), "type": "private"},
                        "date": int(time.time()),
                        "text": call.params.get("text", ""),
                    },
                    "chat_instance": "1",
                    "data": buttons[int(number) - 1]["callback_data"],
                },
            }
        return None

    def _sent_message_id(self, call: Call) -> int | None:
        # The fake numbers each chat's messages from 1: the last one with this text is it.
        chat, found = str(call.params["chat_id"]), None
        for message_id in itertools.count(1):
            message = self.telegram.message(chat, message_id)
            if message is None:
                return found
            if message.get("text") == call.params.get("text"):
                found = message_id
        return found

    def _post_telegram(self, update: dict[str, Any]) -> int:
        return self._post(
            "/webhooks/telegram",
            json.dumps(update).encode(),
            {
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": self.webhook_secret,
            },
        )

    # --- Twilio ---------------------------------------------------------------------------------

    def _post_twilio(self, channel: str, number: str, text: str) -> int:
        prefix = "whatsapp:" if channel == "whatsapp" else ""
        sid = f"SM{secrets.token_hex(16)}"
        form = {
            "AccountSid": self.twilio.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": text,
            "From": f"{prefix}{number}",
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": f"{prefix}{WHATSAPP_FROM if prefix else SMS_FROM}",
        }
        if prefix:
            form |= {"ProfileName": "Test", "WaId": number.lstrip("+"), "MessageType": "text"}
        path = f"/webhooks/twilio/{channel}"
        url = self.voxpop_url.rstrip("/") + path
        signature = RequestValidator(self.twilio.auth_token).compute_signature(url, form)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return self._post(path, urlencode(form).encode(), headers)

    def _report_deliveries(self) -> None:
        """What Twilio does after accepting a message: report it to its status callback."""
        for message in self.twilio.messages:
            callback = self._callbacks.get(message["to"])
            if callback is None or message["sid"] in self._reported:
                continue
            self._reported.add(message["sid"])
            for status in ("sent", "delivered"):
                self.twilio.status_callback(callback, message["sid"], status)

    # --- replies --------------------------------------------------------------------------------

    def _wait(self, seconds: str) -> None:
        """``wait 90``: show what the bot sends on its own (a push, a reminder) meanwhile."""
        try:
            duration = float(seconds)
        except ValueError:
            self.print_line("? write: wait SECONDS")
            return
        self.print_line(f"(waiting {duration:g} s for messages)")
        for message in self._replies(duration, until_quiet=False):
            self.print_line(f"bot> {message}")

    def _await(self, wanted: str, patience: float = PATIENCE) -> None:
        """``await TEXT``: show what the bot sends until a message shown contains TEXT."""
        if not wanted:
            self.print_line("? write: await TEXT")
            return
        started = time.monotonic()
        while time.monotonic() - started < patience:
            found = False
            for shown in self._fresh():
                self.print_line(f"bot> {shown}")
                found = found or wanted in shown
            self._report_deliveries()
            if found:
                return
            time.sleep(0.05)
        self.print_line(f"! nothing with {wanted!r} came within {patience:g} s")

    def _replies(self, patience: float = PATIENCE, *, until_quiet: bool = True) -> Iterator[str]:
        """What the bot sends until it is done (see :attr:`sending`; without it, until it has
        been quiet for a moment), or for ``patience`` seconds."""
        started = last = time.monotonic()
        while time.monotonic() - started < patience:
            # Asked before the fakes are read: once nothing is left to send, what was sent
            # has reached them.
            done = until_quiet and self.sending is not None and not self.sending()
            for shown in self._fresh():
                last = time.monotonic()
                yield shown
            self._report_deliveries()
            if done or (
                until_quiet and self.sending is None and time.monotonic() - last >= self.quiet
            ):
                return
            time.sleep(0.05)
        self._report_deliveries()

    def _fresh(self) -> Iterator[str]:
        """The calls to the fakes not read yet, as the phone shows them, in order."""
        fresh: list[Call] = []
        for name, fake in (("telegram", self.telegram), ("twilio", self.twilio)):
            calls = fake.calls
            fresh += calls[self._seen[name] :]
            self._seen[name] = len(calls)
        for call in sorted(fresh, key=lambda c: c.at):
            shown = self._show(call)
            if shown is not None:
                yield shown

    def _show(self, call: Call) -> str | None:
        params = call.params
        if call.name == "sendMessage":
            markup = params.get("reply_markup")
            text = str(params.get("text", ""))
            if isinstance(markup, dict):
                buttons = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
                text += "\n     " + " ".join(f"[{b}]" for b in buttons)
            return f"(telegram {params.get('chat_id')}) {text}"
        if call.name == "editMessageReplyMarkup":
            return f"(telegram {params.get('chat_id')}: the keyboard is removed)"
        if call.name == "messages.create" and call.fault is None:
            callback = params.get("StatusCallback")
            if isinstance(callback, str):
                self._callbacks[str(params.get("To"))] = callback
            if params.get("ContentSid"):
                variables = params.get("ContentVariables", "{}")
                return f"({params.get('To')}) [template {params['ContentSid']}: {variables}]"
            return f"({params.get('To')}) {params.get('Body', '')}"
        return None

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = Request(self.voxpop_url.rstrip("/") + path, data=body, headers=headers)
        try:
            with _opener.open(request, timeout=10) as answer:
                status: int = answer.status
                return status
        except HTTPError as exc:
            exc.close()
            return exc.code
        except URLError as exc:
            self.print_line(f"! Voxpop is not reachable at {self.voxpop_url}: {exc.reason}")
            return 0


def write_config(phone: Phone, path: Path, database_url: str) -> None:
    path.write_text(phone.config_toml(database_url), encoding="utf-8")
