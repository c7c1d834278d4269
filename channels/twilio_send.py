"""SMS and WhatsApp, outbound: the twilio SDK against the REST API at ``[twilio] api_base_url``.

One :class:`TwilioSender` serves both channels: SMS goes from the Messaging Service when one
is configured (it picks the sender), else from ``sms_from``; WhatsApp goes from
``whatsapp:<whatsapp_from>`` to ``whatsapp:<number>``. Each message asks Twilio for status
callbacks at the URL given to the constructor.

The SDK is synchronous (requests), so :meth:`TwilioSender.send` runs it in a worker thread
with :func:`asyncio.to_thread`; the requests session and its connection pool are shared by
those threads. The SDK's ``AsyncTwilioHttpClient`` (aiohttp) was not chosen: it opens its
aiohttp session in its constructor (so it must be built inside the running loop and is tied
to it), turns our timeout into one total timeout, and reports every timeout alike, while
requests tells a connect timeout (never sent: retry) from a read timeout (maybe delivered:
do not resend).

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
    any other refusal                       Rejected

Error messages name the code, never Twilio's text: it can quote the phone number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError

from bot.config import TwilioConfig
from bot.messages import Address
from channels import errors
from channels.base import Lifecycle, Rendered, SendReceipt

#: Where the SDK sends REST API requests; :class:`_HttpClient` moves them to the config's root.
SDK_API_ROOT: Final = "https://api.twilio.com"
#: Waited when a 429 gives no usable ``Retry-After``.
DEFAULT_RETRY_AFTER: Final = 1.0

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


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's requests client, sending to ``api_root`` instead of api.twilio.com.

    Twilio's documented way to aim the SDK elsewhere is a custom HTTP client; the SDK's
    ``/2010-04-01/...`` paths are kept and appended to the configured root.
    """

    def __init__(self, api_root: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.api_root = api_root.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(SDK_API_ROOT + "/"):
            url = self.api_root + url[len(SDK_API_ROOT) :]
        response: Response = super().request(method, url, *args, **kwargs)
        if response.status_code == 429:
            raise _RateLimitedError(_retry_after(response.headers), _error_code(response.text))
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


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
    if isinstance(exc, requests.ConnectTimeout):  # before ConnectionError: it is one too
        return errors.Unreachable(reason)
    if isinstance(exc, requests.ConnectionError):
        # requests wraps connect failures (refused, DNS, TLS, proxy) in urllib3's
        # MaxRetryError; a connection aborted after the request was sent is not wrapped.
        if exc.args and isinstance(exc.args[0], MaxRetryError):
            return errors.Unreachable(reason)
        return errors.Unknown(reason)
    # A read timeout, a broken answer or anything else after the request left.
    return errors.Unknown(reason)


class TwilioSender(Lifecycle):
    """Sends SMS and WhatsApp messages through one twilio ``Client``; one per process.

    ``status_callback`` is the URL Twilio reports delivery to
    (``<public_url>/webhooks/twilio/status``); ``timeout`` bounds both connecting and
    waiting for the answer.
    """

    def __init__(
        self,
        config: TwilioConfig,
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

    # --- lifecycle --------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Nothing to open: connections are made on first use. Here for a uniform lifecycle."""

    async def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

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
            message = await asyncio.to_thread(self._client.messages.create, **arguments)
        except (TwilioRestException, TwilioServiceException, _RateLimitedError) as exc:
            # from None: the SDK's message can quote the phone number.
            raise to_send_error(exc) from None
        except requests.RequestException as exc:
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
