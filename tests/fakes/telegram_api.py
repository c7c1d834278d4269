"""A fake Telegram Bot API: ``POST /bot<token>/<method>`` with form or JSON bodies.

Answers are the Bot API's own shapes: ``{"ok": true, "result": ...}`` on success, and
``{"ok": false, "error_code": ..., "description": ...}`` (plus ``parameters`` for flood
control) on failure. A wrong token gets 401 ``Unauthorized``, as from the real API.

Refusal kinds for :meth:`~tests.fakes.FakeServer.fail_next` and :meth:`FakeTelegram.refuse`:
``blocked`` (403 bot was blocked by the user), ``deactivated`` (403 user is deactivated),
``chat_not_found`` (400), ``bad_request`` (400 message is too long), ``unauthorized`` (401).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeServer, json_response

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghij"

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
#: Parameters Telegram takes as JSON-serialized strings in a form body.
_JSON_FIELDS = frozenset({"reply_markup", "allowed_updates", "entities", "reply_parameters"})
_METHODS = (
    "getMe",
    "sendMessage",
    "answerCallbackQuery",
    "editMessageReplyMarkup",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "getUpdates",
)
_ERRORS: Mapping[str, tuple[int, str]] = {
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "deactivated": (403, "Forbidden: user is deactivated"),
    "chat_not_found": (400, "Bad Request: chat not found"),
    "bad_request": (400, "Bad Request: message is too long"),
    "unauthorized": (401, "Unauthorized"),
    "500": (500, "Internal Server Error"),
    "503": (503, "Service Unavailable"),
}
#: What a 502 from Telegram's front proxy looks like: HTML, not JSON.
_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class Webhook:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = 40


def error(status: int, description: str, **parameters: Any) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json_response(body, status)


def ok(result: Any, description: str | None = None) -> Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return json_response(body)


class FakeTelegram(FakeServer):
    """The Bot API for one bot; the SDK's ``base_url`` is ``f"{fake.url}/bot"``."""

    REFUSALS: ClassVar[frozenset[str]] = frozenset(
        {"blocked", "deactivated", "chat_not_found", "bad_request", "unauthorized"}
    )

    def __init__(
        self,
        token: str = TOKEN,
        *,
        retry_after: int = 3,
        timeout_delay: float = 2.0,
        slow_delay: float = 0.2,
        failure_rate: float = 0.0,
        seed: int = 0,
        failure_kinds: Iterable[str] = ("5xx", "429"),
        keep_alive: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        #: ``parameters.retry_after`` of a 429.
        self.retry_after = retry_after
        self.webhook = Webhook()
        self._clock = clock
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(100_000_001)
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}
        self._refused: dict[str, str] = {}
        self._updates: list[dict[str, Any]] = []
        self._updates_ready = threading.Condition()
        super().__init__(
            timeout_delay=timeout_delay,
            slow_delay=slow_delay,
            failure_rate=failure_rate,
            seed=seed,
            failure_kinds=failure_kinds,
            keep_alive=keep_alive,
        )

    @property
    def api_root(self) -> str:
        """What ``[telegram] api_base_url`` is set to in tests."""
        return self.url

    # --- test controls ----------------------------------------------------------------------

    def refuse(self, chat_id: str | int, kind: str) -> None:
        """Refuse every message to ``chat_id`` with ``kind`` (``blocked``, ...) from now on."""
        if kind not in self.REFUSALS:
            raise ValueError(f"unknown refusal {kind!r}")
        with self._lock:
            self._refused[str(chat_id)] = kind

    def push_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Queue an update for ``getUpdates``; an ``update_id`` is added if missing."""
        queued = dict(update)
        queued.setdefault("update_id", next(self._update_ids))
        with self._updates_ready:
            self._updates.append(queued)
            self._updates_ready.notify_all()
        return queued

    def message(self, chat_id: str | int, message_id: int) -> dict[str, Any] | None:
        """A message the bot sent, as stored (``reply_markup`` reflects later edits)."""
        with self._lock:
            found = self._messages.get((str(chat_id), message_id))
            return None if found is None else dict(found)

    def close(self) -> None:
        with self._updates_ready:
            self._updates_ready.notify_all()
        super().close()

    # --- FakeServer -------------------------------------------------------------------------

    def route(self, request: Request) -> str | None:
        match = _PATH.match(request.path)
        if match is None:
            return None
        method = match["method"]
        # The Bot API matches method names case-insensitively.
        return next((m for m in _METHODS if m.lower() == method.lower()), method)

    def params(self, request: Request) -> dict[str, Any]:
        params = super().params(request)
        for name in _JSON_FIELDS & params.keys():
            # Unparsable JSON stays a string: the method answers 400, as Telegram does.
            if isinstance(params[name], str):
                with contextlib.suppress(ValueError):
                    params[name] = json.loads(params[name])
        return params

    def not_found(self, request: Request) -> Response:
        return error(404, "Not Found")

    def handle(self, name: str, request: Request, params: dict[str, Any]) -> Response:
        match = _PATH.match(request.path)
        assert match is not None
        if match["token"] != self.token:
            return error(401, "Unauthorized")
        if request.method not in ("GET", "POST"):
            return error(405, "Method Not Allowed")
        handler = self._handlers_by_name.get(name)
        if handler is None:
            return error(404, "Not Found")
        return handler(self, params)

    def fault_response(self, kind: str, name: str, params: dict[str, Any]) -> Response:
        if kind == "429":
            return error(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                retry_after=self.retry_after,
            )
        if kind in ("5xx", "500", "502", "503"):
            status = self._status_of(kind)
            if status == 502:
                return Response(_BAD_GATEWAY, status=502, mimetype="text/html")
            return error(*_ERRORS[str(status)])
        return error(*_ERRORS[kind])

    # --- methods ----------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Voxpop Test",
            "username": "voxpop_test_bot",
        }

    def _get_me(self, params: dict[str, Any]) -> Response:
        return ok(
            self._bot_user()
            | {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        )

    def _send_message(self, params: dict[str, Any]) -> Response:
        chat_id = str(params.get("chat_id", "")).strip()
        text = params.get("text")
        if not chat_id:
            return error(400, "Bad Request: chat_id is empty")
        if not text:
            return error(400, "Bad Request: message text is empty")
        if len(str(text)) > 4096:
            return error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            problem = _markup_problem(markup)
            if problem:
                return error(400, f"Bad Request: {problem}")
        with self._lock:
            refusal = self._refused.get(chat_id)
        if refusal is not None:
            return error(*_ERRORS[refusal])
        chat: dict[str, Any]
        if chat_id.startswith("-"):
            chat = {"id": int(chat_id), "title": "Test group", "type": "group"}
        elif chat_id.isdigit():
            chat = {"id": int(chat_id), "first_name": "Test", "type": "private"}
        else:
            return error(400, "Bad Request: chat not found")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": self._bot_user(),
            "chat": chat,
            "date": int(self._clock()),
            "text": str(text),
        }
        if markup is not None:
            message["reply_markup"] = markup
        with self._lock:
            self._messages[(chat_id, message["message_id"])] = message
        return ok(message)

    def _answer_callback_query(self, params: dict[str, Any]) -> Response:
        if not params.get("callback_query_id"):
            return error(400, "Bad Request: query is too old and response timeout expired")
        return ok(True)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> Response:
        chat_id = str(params.get("chat_id", ""))
        try:
            message_id = int(params.get("message_id", ""))
        except ValueError:
            return error(400, "Bad Request: message identifier is not specified")
        markup = params.get("reply_markup")
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                return error(400, "Bad Request: message to edit not found")
            if message.get("reply_markup") == markup or (
                markup is None and "reply_markup" not in message
            ):
                return error(
                    400,
                    "Bad Request: message is not modified: specified new message content "
                    "and reply markup are exactly the same as a current content and reply "
                    "markup of the message",
                )
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            edited = dict(message) | {"edit_date": int(self._clock())}
        return ok(edited)

    def _set_webhook(self, params: dict[str, Any]) -> Response:
        url = str(params.get("url", ""))
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            return error(400, "Bad Request: secret token contains unallowed characters")
        try:
            port = urlsplit(url).port
        except ValueError:
            port = None
        if port not in (None, 80, 88, 443, 8443):
            return error(
                400,
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
            )
        allowed = params.get("allowed_updates")
        with self._lock:
            self.webhook = Webhook(
                url=url,
                secret_token=None if secret is None else str(secret),
                allowed_updates=list(allowed) if isinstance(allowed, list) else None,
                max_connections=int(params.get("max_connections", 40)),
            )
        return ok(True, "Webhook was set" if url else "Webhook was deleted")

    def _delete_webhook(self, params: dict[str, Any]) -> Response:
        with self._lock:
            existed = bool(self.webhook.url)
            self.webhook = Webhook()
        return ok(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def _get_webhook_info(self, params: dict[str, Any]) -> Response:
        with self._updates_ready:
            pending = len(self._updates)
        with self._lock:
            hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": pending,
        }
        if hook.url:
            info |= {"max_connections": hook.max_connections, "ip_address": "127.0.0.1"}
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
        return ok(info)

    def _get_updates(self, params: dict[str, Any]) -> Response:
        if self.webhook.url:
            return error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 100))
        wait = float(params.get("timeout", 0))
        with self._updates_ready:
            # An offset confirms every update below it: Telegram forgets them.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and wait > 0 and not self._closing.is_set():
                self._updates_ready.wait(wait)
            batch = self._updates[:limit]
        return ok(batch)

    _handlers_by_name: ClassVar[dict[str, Callable[[FakeTelegram, dict[str, Any]], Response]]] = {
        "getMe": _get_me,
        "sendMessage": _send_message,
        "answerCallbackQuery": _answer_callback_query,
        "editMessageReplyMarkup": _edit_message_reply_markup,
        "setWebhook": _set_webhook,
        "deleteWebhook": _delete_webhook,
        "getWebhookInfo": _get_webhook_info,
        "getUpdates": _get_updates,
    }


def _markup_problem(markup: Any) -> str | None:
    """Telegram's complaint about an inline keyboard, or ``None`` if it is acceptable."""
    if not isinstance(markup, dict):
        return "can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None  # another keyboard kind; not used by Voxpop
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return 'field "inline_keyboard" must be an Array of Arrays'
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return "can't parse inline keyboard button: Text buttons are unallowed"
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                return "BUTTON_DATA_INVALID"
    return None


# --- updates, as Telegram delivers them -------------------------------------------------------


def message_update(
    chat_id: int, text: str, *, message_id: int = 1, date: int = 1_700_000_000
) -> dict[str, Any]:
    """An ``Update`` carrying a private text message from ``chat_id``."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": "en"}
    return {
        "message": {
            "message_id": message_id,
            "from": user,
            "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
            "date": date,
            "text": text,
        }
    }


def callback_update(
    chat_id: int,
    data: str,
    *,
    message_id: int = 1,
    query_id: str = "4382bfdwdsb323b2d9",
    bot_id: int = 123456789,
) -> dict[str, Any]:
    """An ``Update`` carrying a pressed inline button on the bot's message ``message_id``."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": "en"}
    return {
        "callback_query": {
            "id": query_id,
            "from": user,
            "message": {
                "message_id": message_id,
                "from": {"id": bot_id, "is_bot": True, "first_name": "Voxpop Test"},
                "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
                "date": 1_700_000_000,
                "text": "…",
            },
            "chat_instance": "-1234567890123456789",
            "data": data,
        }
    }
