"""SMS and WhatsApp, outbound: the twilio SDK against the REST API at ``[twilio] api_base_url``.

One :class:`TwilioSender` serves both channels: SMS goes from the Messaging Service when one
is configured (it picks the sender), else from ``sms_from``; WhatsApp goes from
``whatsapp:<whatsapp_from>`` to ``whatsapp:<number>``. Each message asks Twilio for status
callbacks at the URL given to the constructor.

The SDK's own async client sends: :class:`_HttpClient` is its ``AsyncTwilioHttpClient``
(aiohttp) with our API root, our timeouts (connecting and reading apart), and its connection
pool opened in the loop that sends (:mod:`channels.http`). The SDK's synchronous client ran
in a thread per send, and recording its answers queued behind those threads.

Failures become :mod:`channels.errors`::

    21610 unsubscribed recipient            ContactOptedOut
    21211, 21614 invalid or not mobile      InvalidAddress
    63016 outside the WhatsApp window       OutsideSessionWindow
    20003 (401), 21606, 21659 our sender    ConfigError
    429 / 20429                             Throttled(Retry-After, else 1 s)
    5xx                                     Unreachable
    cannot connect, connect timeout         Unreachable  the request never left
    read timeout, connection lost after     Unknown      it may have been delivered, so it
      the request was sent                               is not blindly resent
      (see channels/http.py for which transport error is which)
    any other refusal                       Rejected

Error messages name the code, never Twilio's text: it can quote the phone number.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final, Protocol

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels import errors, http
from channels.base import Lifecycle, Rendered, SendReceipt
from messages import Address

#: Where the SDK sends REST API requests; :class:`_HttpClient` moves them to the config's root.
SDK_API_ROOT: Final = "https://api.twilio.com"
#: Waited when a 429 gives no usable ``Retry-After``.
DEFAULT_RETRY_AFTER: Final = 1.0
#: Connections kept open to the API; the dispatcher's concurrency stays below it.
POOL_SIZE: Final = 100


class TwilioAccount(Protocol):
    """What the sender reads of the ``[twilio]`` settings (``bot.config.TwilioConfig`` is one).

    Declared here so that the channel depends on no application module.
    """

    @property
    def account_sid(self) -> str: ...
    @property
    def auth_token(self) -> str: ...
    @property
    def api_base_url(self) -> str: ...
    @property
    def sms_from(self) -> str: ...
    @property
    def messaging_service_sid(self) -> str: ...
    @property
    def whatsapp_from(self) -> str: ...


_OPTED_OUT = frozenset({21610})
_INVALID_ADDRESS = frozenset({21211, 21614})
_OUTSIDE_WINDOW = frozenset({63016})
_CONFIG = frozenset({20003, 21606, 21659})
_THROTTLED = frozenset({20429})


class _RateLimitedError(Exception):
    """A 429, raised by :class:`_HttpClient` so that its ``Retry-After`` is not lost.

    The SDK's ``TwilioRestException`` keeps the status and body but drops the headers.
    """

    def __init__(self, retry_after: float, code: int | None) -> None:
        super().__init__(f"429 (retry after {retry_after:g} s)")
        self.retry_after = retry_after
        self.code = code


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's aiohttp client, sending to ``api_root`` instead of api.twilio.com.

    Twilio's documented way to aim the SDK elsewhere is a custom HTTP client; the SDK's
    ``/2010-04-01/...`` paths are kept and appended to the configured root. Unlike the
    SDK's own, the session is opened by :meth:`open` in the loop that sends (the SDK opens
    it in the constructor), ``timeout`` bounds connecting and reading each on its own (the
    SDK's is one total), credentials go in the header directly (aiohttp deprecates its
    ``auth`` argument) and requests are not narrated at INFO (the dispatcher logs outcomes).
    """

    def __init__(self, api_root: str, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self.api_root = api_root.rstrip("/")
        self._timeouts = http.timeouts(timeout, timeout, timeout)
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._authorization: tuple[tuple[str, str], str] | None = None

    async def open(self) -> None:
        if self._session is None or self._session.closed:
            self._session = http.new_session(POOL_SIZE)
            self._proxy = http.env_proxy(self.api_root)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _basic(self, auth: tuple[str, str]) -> str:
        if self._authorization is None or self._authorization[0] != auth:
            pair = f"{auth[0]}:{auth[1]}".encode()
            self._authorization = (auth, "Basic " + base64.b64encode(pair).decode("ascii"))
        return self._authorization[1]

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(SDK_API_ROOT + "/"):
            url = self.api_root + url[len(SDK_API_ROOT) :]
        await self.open()
        assert self._session is not None
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = self._basic(auth)
        body: bytes | None = None
        if data is not None:
            body = http.form_body(data)
            sent.setdefault("Content-Type", http.FORM)
        limits = self._timeouts if timeout is None else http.timeouts(timeout, timeout, timeout)
        async with self._session.request(
            method,
            url,
            params=params,
            data=body,
            headers=sent,
            timeout=limits,
            allow_redirects=allow_redirects,
            proxy=self._proxy,
        ) as answer:
            content = await answer.read()
        response = Response(answer.status, content.decode("utf-8", "replace"), answer.headers)
        if answer.status == 429:
            raise _RateLimitedError(_retry_after(answer.headers), _error_code(response.text))
        return response


def _retry_after(headers: Mapping[str, str] | None) -> float:
    # Retry-After may also be an HTTP date; Twilio sends seconds, anything else gets the default.
    try:
        seconds = float((headers or {}).get("Retry-After", ""))
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if seconds > 0 else DEFAULT_RETRY_AFTER


def _error_code(body: str) -> int | None:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def to_send_error(exc: Exception) -> errors.SendError:
    """The :mod:`channels.errors` counterpart of an SDK or transport error (see above)."""
    if isinstance(exc, _RateLimitedError):
        limited = str(exc.code or 20429)
        return errors.Throttled(
            f"twilio: HTTP 429, error {limited}", retry_after=exc.retry_after, code=limited
        )
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(exc.status)
        code = exc.code if isinstance(exc.code, int) else status
        reason = f"twilio: HTTP {status}, error {code}"
        if code in _OPTED_OUT:
            return errors.ContactOptedOut(reason, code=str(code))
        if code in _INVALID_ADDRESS:
            return errors.InvalidAddress(reason, code=str(code))
        if code in _OUTSIDE_WINDOW:
            return errors.OutsideSessionWindow(reason, code=str(code))
        if code in _CONFIG or status in (401, 403):
            return errors.ConfigError(reason, code=str(code))
        if code in _THROTTLED or status == 429:
            return errors.Throttled(reason, retry_after=DEFAULT_RETRY_AFTER, code=str(code))
        if status >= 500:
            return errors.Unreachable(reason, code=str(code))
        return errors.Rejected(reason, code=str(code))
    reason = f"twilio: {type(exc).__name__}"
    if isinstance(exc, http.NEVER_LEFT):
        return errors.Unreachable(reason)
    # A read timeout, a connection lost after the request was written, a broken answer or
    # anything else after the request left.
    return errors.Unknown(reason)


class TwilioSender(Lifecycle):
    """Sends SMS and WhatsApp messages through one twilio ``Client``; one per process.

    ``status_callback`` is the URL Twilio reports delivery to
    (``<public_url>/webhooks/twilio/status``); ``timeout`` bounds both connecting and
    waiting for the answer.
    """

    def __init__(
        self,
        config: TwilioAccount,
        *,
        status_callback: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not (config.account_sid and config.auth_token):
            raise ValueError("[twilio] account_sid and auth_token are required")
        self._config = config
        self._status_callback = status_callback
        self._http = _HttpClient(config.api_base_url, timeout)
        self._client = Client(
            config.account_sid,
            config.auth_token,
            http_client=self._http,
            # The config, not TWILIO_EDGE / TWILIO_REGION in the environment, decides where
            # requests go (a non-empty mapping, or the SDK falls back to os.environ).
            environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
        )
        # The Messages resource of the account, built once rather than on every send.
        self._messages = self._client.messages

    # --- lifecycle --------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the connection pool in this event loop (connections are made on first use)."""
        await self._http.open()

    async def shutdown(self) -> None:
        """Close the pooled connections."""
        await self._http.close()

    # --- sending ----------------------------------------------------------------------------

    async def send(self, address: Address, rendered: Rendered) -> SendReceipt:
        """Send ``rendered.text`` as an SMS or a WhatsApp message, by ``address.channel``."""
        return await self._create(address, {"body": rendered.text}, rendered.segments)

    async def send_template(
        self, address: Address, content_sid: str, variables: Mapping[str, str]
    ) -> SendReceipt:
        """Send an approved content template (WhatsApp outside the 24-hour window)."""
        fields = {
            "content_sid": content_sid,
            "content_variables": json.dumps(dict(variables), ensure_ascii=False),
        }
        return await self._create(address, fields, None)

    async def _create(
        self, address: Address, fields: dict[str, str], counted: int | None
    ) -> SendReceipt:
        arguments = self._route(address) | fields
        if self._status_callback:
            arguments["status_callback"] = self._status_callback
        try:
            message = await self._messages.create_async(**arguments)
        except (
            TwilioRestException,
            TwilioServiceException,
            _RateLimitedError,
            aiohttp.ClientError,
            OSError,  # TimeoutError among them
        ) as exc:
            # from None: the SDK's message can quote the phone number, aiohttp's the URL.
            raise to_send_error(exc) from None
        segments: int | None = None
        if address.channel == "sms":
            # A Messaging Service answers 0 until it has picked a sender: keep our own count.
            billed = int(message.num_segments or 0)
            segments = billed if billed > 0 else counted
        return SendReceipt(provider_id=str(message.sid), segments=segments)

    def _route(self, address: Address) -> dict[str, str]:
        """``to`` and the sender (``from_`` or ``messaging_service_sid``) for one address."""
        config = self._config
        if address.channel == "whatsapp":
            if not config.whatsapp_from:
                raise errors.ConfigError("twilio: [twilio] whatsapp_from is not set")
            return {
                "to": f"whatsapp:{address.value}",
                "from_": f"whatsapp:{config.whatsapp_from}",
            }
        if address.channel == "sms":
            if config.messaging_service_sid:
                return {"to": address.value, "messaging_service_sid": config.messaging_service_sid}
            if not config.sms_from:
                raise errors.ConfigError("twilio: [twilio] needs sms_from or messaging_service_sid")
            return {"to": address.value, "from_": config.sms_from}
        raise ValueError(f"Twilio does not carry the {address.channel!r} channel")
