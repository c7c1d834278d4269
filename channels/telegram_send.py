"""Telegram, outbound: python-telegram-bot against the Bot API at ``[telegram] api_base_url``.

Build one :class:`TelegramSender` per process and keep it open (``async with sender:``): it
owns the connection pool, and closing it releases every connection.

Buttons carry the option's payload as callback data, which Telegram limits to 64 bytes. A
longer payload is replaced by ``k:<key>``, the key the citizen could have typed (the label
before ``". "``, or the whole label); the inbound side treats it as the typed answer ``<key>``
(:func:`typed_key`).

Failures become :mod:`channels.errors`, decided by whether the request can have reached
Telegram::

    429 flood control                          Throttled(retry_after)
    403 blocked, kicked, never started         ContactBlocked
    400 chat not found, user is deactivated    InvalidAddress (also a 403 "user is deactivated")
    other 400                                  Rejected
    401 / 404 (token), 409 (webhook conflict)  ConfigError
    5xx                                        Unreachable
    no connection, connect or pool timeout,    Unreachable  the request never left
      connection closed before writing
    read timeout, connection lost while        Unknown      it left and no answer came: it may
      waiting for the answer, a write that                  have been delivered, so it is not
      failed part-way                                       blindly resent

The HTTP client is aiohttp (:mod:`channels.http`), through :class:`_Request`, a PTB
``BaseRequest``: like PTB's own ``HTTPXRequest`` it raises ``TimedOut`` for timeouts and
``NetworkError`` for other transport errors, with the aiohttp exception as ``__cause__``,
which is what tells these cases apart. A timeout without a recognisable cause counts as
Unknown, the side that never sends twice. (httpx cost about 2.6 ms of CPU per request with
32 in flight, most of the dispatcher's time; aiohttp about 0.15 ms.)
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, Final, Protocol

import aiohttp
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram import error as tg
from telegram.request import BaseRequest, RequestData

from channels import errors, http
from channels.base import Button, Lifecycle, Rendered, SendReceipt
from channels.ids import decimal_id
from messages import Address

log = logging.getLogger(__name__)

#: Telegram's limit on an inline button's callback data, in bytes.
MAX_CALLBACK_DATA: Final = 64
#: Prefix of callback data that stands for a typed answer (see :func:`typed_key`).
KEY_PREFIX: Final = "k:"
#: The updates Voxpop acts on; Telegram does not even send the others.
ALLOWED_UPDATES: Final = ("message", "callback_query")
#: Waited when a 429 gives no ``retry_after``.
DEFAULT_RETRY_AFTER: Final = 1.0


class TelegramBot(Protocol):
    """What the sender reads of the ``[telegram]`` settings (``bot.config.TelegramConfig`` is one).

    Declared here so that the channel depends on no application module.
    """

    @property
    def token(self) -> str: ...
    @property
    def api_base_url(self) -> str: ...


_INVALID_ADDRESS = re.compile(r"chat not found|user is deactivated|peer_id_invalid", re.I)
_ALREADY_DONE = re.compile(r"message is not modified|message to edit not found", re.I)


@dataclass(frozen=True)
class WebhookStatus:
    """What Telegram reports about our webhook (``getWebhookInfo``)."""

    url: str
    pending_update_count: int
    last_error: str | None = None
    last_error_at: datetime | None = None


def callback_data(button: Button) -> str:
    """The callback data for ``button``: its payload, or ``k:<key>`` when that is too long.

    >>> callback_data(Button("1. Every week", "visits:weekly"))
    'visits:weekly'
    >>> callback_data(Button("2. Every month", "q:" + "x" * 70))
    'k:2'
    >>> callback_data(Button("4", "clean:" + "x" * 70))
    'k:4'
    """
    if len(button.payload.encode("utf-8")) <= MAX_CALLBACK_DATA:
        return button.payload
    key = button.label.split(". ", 1)[0]
    data = KEY_PREFIX + key
    if len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
        raise errors.Rejected(f"button key too long for Telegram callback data: {key[:20]!r}")
    return data


def typed_key(data: str) -> str | None:
    """The typed answer a ``k:<key>`` callback stands for, or ``None`` for a real payload.

    >>> typed_key("k:2"), typed_key("visits:weekly")
    ('2', None)
    """
    return data[len(KEY_PREFIX) :] if data.startswith(KEY_PREFIX) else None


def keyboard(rendered: Rendered) -> InlineKeyboardMarkup | None:
    """The inline keyboard for ``rendered.buttons``, row by row; ``None`` without buttons.

    The same question goes to many citizens: its keyboard is built and serialised once.

    >>> from channels.base import Button
    >>> buttons = ((Button("1. Every week", "visits:weekly"),),)
    >>> keyboard(Rendered("How often?", buttons)) is keyboard(Rendered("Again?", buttons))
    True
    """
    if not rendered.buttons:
        return None
    return _keyboard(rendered.buttons)


class _Keyboard(InlineKeyboardMarkup):
    """An inline keyboard that serialises itself once (Telegram objects are immutable)."""

    __slots__ = ("_as_dict",)
    _as_dict: dict[str, Any]

    def __init__(self, rows: list[list[InlineKeyboardButton]]) -> None:
        super().__init__(rows)
        # The object is frozen by now; the slot is ours, outside Telegram's attributes.
        object.__setattr__(self, "_as_dict", super().to_dict())

    def to_dict(self, recursive: bool = True) -> dict[str, Any]:
        return dict(self._as_dict)  # a copy of the top level: PTB may add to it


@functools.lru_cache(maxsize=1024)
def _keyboard(rows: tuple[tuple[Button, ...], ...]) -> _Keyboard:
    return _Keyboard(
        [
            [InlineKeyboardButton(b.label, callback_data=callback_data(b)) for b in row]
            for row in rows
        ]
    )


class _FloodControl(tg.TelegramError):
    """A 429, raised by :class:`_Request` in place of PTB's ``RetryAfter``.

    PTB 22 builds ``RetryAfter`` through a deprecated attribute, which warns on every 429
    (and fails where warnings are errors); reading the answer ourselves avoids that.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Too Many Requests: retry after {retry_after:g}")
        self.retry_after = retry_after


def _seconds(value: object, default: float | None) -> float | None:
    """A timeout PTB passed: a number, ``None`` (no limit) or its "not given" marker."""
    if value is None or isinstance(value, int | float):
        return value
    return default


class _Request(BaseRequest):
    """PTB's transport on aiohttp (see the module docstring), with one session per event loop,
    opened by :meth:`initialize`; a 429 is read here, before PTB does (see
    :class:`_FloodControl`).

    ``pool_size`` requests at most go at once; one that finds no free connection within
    ``pool_timeout`` was never sent (``TimedOut`` from :class:`channels.http.PoolTimeoutError`).
    """

    def __init__(
        self,
        api_root: str,
        *,
        pool_size: int,
        read_timeout: float | None,
        write_timeout: float | None,
        connect_timeout: float | None,
        pool_timeout: float | None,
    ) -> None:
        self._api_root = api_root
        self._pool_size = pool_size
        self._read = read_timeout
        self._write = write_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._timeouts = http.timeouts(connect_timeout, write_timeout, read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._gate: http.Gate | None = None
        self._proxy: str | None = None
        self._agent = {"User-Agent": self.USER_AGENT}
        self._headers = self._agent | {"Content-Type": http.FORM}

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = http.new_session(self._pool_size)
            self._gate = http.Gate(self._pool_size)
            self._proxy = http.env_proxy(self._api_root)

    async def shutdown(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session, gate = self._session, self._gate
        if session is None or session.closed or gate is None:
            raise RuntimeError("this request is not initialized")
        limits = self._timeouts
        given = (read_timeout, write_timeout, connect_timeout)
        if any(t is not BaseRequest.DEFAULT_NONE for t in given):
            limits = http.timeouts(
                _seconds(connect_timeout, self._connect),
                _seconds(write_timeout, self._write),
                _seconds(read_timeout, self._read),
            )
        body: aiohttp.FormData | bytes | None = None
        headers = self._headers
        if request_data is not None:
            if request_data.contains_files:
                body, headers = _multipart(request_data), self._agent
            else:
                body = http.form_body(request_data.json_parameters)
        try:
            await gate.enter(_seconds(pool_timeout, self._pool))
            try:
                async with session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=limits,
                    proxy=self._proxy,
                ) as answer:
                    code, payload = answer.status, await answer.read()
            finally:
                gate.leave()
        except (TimeoutError, http.PoolTimeoutError) as exc:
            # aiohttp's connect and read timeouts are TimeoutErrors.
            raise tg.TimedOut(http.describe(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Described, never aiohttp's message: it can quote the URL, and the token is in it.
            raise tg.NetworkError(http.describe(exc)) from exc
        if code == HTTPStatus.TOO_MANY_REQUESTS:
            raise _FloodControl(_retry_after(payload))
        return code, payload


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData(request_data.json_parameters)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form


def _retry_after(payload: bytes) -> float:
    try:
        answer = json.loads(payload)
        value = answer["parameters"]["retry_after"]
        return float(value) if float(value) > 0 else DEFAULT_RETRY_AFTER
    except (ValueError, KeyError, TypeError):
        return DEFAULT_RETRY_AFTER


def to_send_error(exc: tg.TelegramError, *, token: str = "") -> errors.SendError:
    """The :mod:`channels.errors` counterpart of a PTB exception (see the module docstring)."""
    text = str(exc).replace(token, "<token>") if token else str(exc)
    text = text.splitlines()[0][:200] if text else ""  # a 502 can quote a whole HTML page
    reason = f"telegram: {type(exc).__name__}: {text}"
    if isinstance(exc, _FloodControl):
        return errors.Throttled(reason, retry_after=exc.retry_after, code="429")
    if isinstance(exc, tg.RetryAfter):
        # Not raised through _Request; read without the deprecated property (see above).
        seconds = exc.__reduce__()[1][0]
        return errors.Throttled(reason, retry_after=float(seconds), code="429")
    if isinstance(exc, tg.Forbidden):
        if _INVALID_ADDRESS.search(text):
            return errors.InvalidAddress(reason, code="403")
        return errors.ContactBlocked(reason, code="403")
    if isinstance(exc, tg.InvalidToken | tg.EndPointNotFound):
        return errors.ConfigError(reason, code="401")
    if isinstance(exc, tg.Conflict):
        return errors.ConfigError(reason, code="409")
    if isinstance(exc, tg.ChatMigrated):
        return errors.InvalidAddress(reason, code="400")
    if isinstance(exc, tg.BadRequest):
        if _INVALID_ADDRESS.search(text):
            return errors.InvalidAddress(reason, code="400")
        return errors.Rejected(reason, code="400")
    if isinstance(exc, tg.NetworkError):
        # TimedOut is a NetworkError too; either way the aiohttp error is the cause.
        cause = exc.__cause__
        if isinstance(cause, http.NEVER_LEFT):
            return errors.Unreachable(reason)
        if isinstance(cause, http.MAY_HAVE_ARRIVED) or isinstance(exc, tg.TimedOut):
            return errors.Unknown(reason)
        # No transport error behind it: Telegram answered 5xx (or unreadably), not done.
        return errors.Unreachable(reason)
    # A TelegramError of no known kind: an unreadable 200, say. It may have been delivered.
    return errors.Unknown(reason)


class TelegramSender(Lifecycle):
    """Sends messages and keyboard chores to Telegram through one python-telegram-bot Bot.

    ``timeout`` bounds writing the request and reading the answer; ``connect_timeout`` the
    TCP/TLS connect; ``pool_timeout`` the wait for one of ``pool_size`` pooled connections.
    """

    name = "telegram"

    def __init__(
        self,
        config: TelegramBot,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_timeout: float = 1.0,
        pool_size: int = 256,
    ) -> None:
        if not config.token:
            raise ValueError("[telegram] token is empty")
        self._token = config.token
        #: Why the last :meth:`initialize` could not check the token (Telegram out of reach).
        self.start_error: errors.SendError | None = None
        root = config.api_base_url.rstrip("/")

        def request(pool_size: int) -> _Request:
            return _Request(
                root,
                pool_size=pool_size,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )

        # getUpdates (polling, tests) long-polls on a connection of its own.
        self._requests = (request(pool_size), request(1))
        # PTB composes f"{base_url}{token}/{method}", so the API root plus "/bot" gives the
        # Bot API's own /bot<token>/<method> under any root (a local Bot API server, a fake).
        self._bot = Bot(
            config.token,
            base_url=f"{root}/bot",
            base_file_url=f"{root}/file/bot",
            request=self._requests[0],
            get_updates_request=self._requests[1],
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the connection pool and check the token (``getMe``).

        A refused token raises :class:`~channels.errors.ConfigError`. Telegram being out of
        reach is only logged: a dispatcher should start anyway, and its sends will retry.
        """
        self.start_error = None
        try:
            await self._bot.initialize()
        except tg.TelegramError as exc:
            error = to_send_error(exc, token=self._token)
            if isinstance(error, errors.Unreachable | errors.Unknown | errors.Throttled):
                # PTB opened the pool before calling getMe, so sends work; it retries getMe
                # on the next initialize().
                log.warning("Telegram not reachable at start (%s); sends will retry", error)
                self.start_error = errors.Unreachable(str(error))
                return
            await self.shutdown()
            raise error from None
        except BaseException:
            await self.shutdown()
            raise

    async def shutdown(self) -> None:
        """Close every connection, also after sends without :meth:`initialize`."""
        await self._bot.shutdown()
        # Bot.shutdown() skips requests it did not initialize itself; this is idempotent.
        for request in self._requests:
            await request.shutdown()

    # --- sending ----------------------------------------------------------------------------

    async def send(self, address: Address, rendered: Rendered) -> SendReceipt:
        """Send ``rendered`` to the chat ``address.value``, with its buttons inline."""
        markup = keyboard(rendered)
        try:
            message = await self._bot.send_message(
                chat_id=address.value, text=rendered.text, reply_markup=markup
            )
        except tg.TelegramError as exc:
            # from None: PTB's chained messages can quote the bot URL, token included.
            raise to_send_error(exc, token=self._token) from None
        return SendReceipt(provider_id=str(message.message_id))

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        """Confirm a button press, so the citizen's client stops its spinner."""
        try:
            await self._bot.answer_callback_query(callback_id, text=text)
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None

    async def remove_keyboard(self, chat_id: str, message_id: object) -> None:
        """Remove the inline keyboard of a sent message; a keyboard already gone is fine.

        A ``message_id`` that is not Telegram's (a positive number) is refused before any
        request: :class:`~channels.errors.Rejected`, a final failure, not ``unknown``."""
        number = decimal_id(message_id)
        if not number:
            raise errors.Rejected("telegram: not a message id: the keyboard cannot be named")
        try:
            await self._bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=number, reply_markup=None
            )
        except tg.BadRequest as exc:
            if not _ALREADY_DONE.search(str(exc)):
                raise to_send_error(exc, token=self._token) from None
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None

    # --- webhook ----------------------------------------------------------------------------

    async def set_webhook(self, url: str, secret: str) -> None:
        """Have Telegram POST updates to ``url`` with ``secret`` in its secret-token header."""
        try:
            await self._bot.set_webhook(
                url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES)
            )
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None

    async def get_updates(self, offset: int | None, timeout: int) -> list[dict[str, Any]]:
        """Long-poll for updates after ``offset`` (for local development without a public
        URL); each update as the JSON a webhook would have received."""
        try:
            updates = await self._bot.get_updates(
                offset=offset, timeout=timeout, allowed_updates=list(ALLOWED_UPDATES)
            )
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None
        return [update.to_dict() for update in updates]

    async def delete_webhook(self) -> None:
        try:
            await self._bot.delete_webhook()
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None

    async def webhook_info(self) -> WebhookStatus:
        try:
            info = await self._bot.get_webhook_info()
        except tg.TelegramError as exc:
            raise to_send_error(exc, token=self._token) from None
        return WebhookStatus(
            url=info.url,
            pending_update_count=info.pending_update_count,
            last_error=info.last_error_message,
            last_error_at=info.last_error_date,
        )
