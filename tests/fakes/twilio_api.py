"""A fake Twilio REST API: the Messages resource of API version 2010-04-01.

``POST /2010-04-01/Accounts/<AccountSid>/Messages.json`` (form: ``To``, ``From`` or
``MessagingServiceSid``, ``Body`` or ``ContentSid`` + ``ContentVariables``, ``StatusCallback``)
with HTTP basic auth answers 201 with the Message resource as Twilio returns it; ``GET
.../Messages/<Sid>.json`` fetches it. Errors carry Twilio's body (``code``, ``message``,
``more_info``, ``status``); a 429 adds ``Retry-After``.

Refusal kinds (Twilio error codes) for :meth:`~tests.fakes.FakeServer.fail_next` and
:meth:`FakeTwilio.refuse`: ``21610`` (unsubscribed recipient), ``21211`` (invalid To),
``21614`` (not a mobile number), ``63016`` (outside the WhatsApp session window), ``21606``
(From not a capable number), ``21659`` (From not a Twilio number) and ``20003`` (401).

:meth:`FakeTwilio.status_callback` posts a delivery report signed as Twilio signs it.
"""

from __future__ import annotations

import email.utils
import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, build_opener
from urllib.request import Request as UrlRequest

from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request, Response

from surveys.sms import sms_cost
from tests.fakes import FakeServer, json_response

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"
API_VERSION = "2010-04-01"

_ACCOUNT = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>AC[0-9a-f]{{32}})/(?P<rest>.+)$")
#: A number in E.164, or on WhatsApp also a user's business-scoped id (WhatsApp usernames).
_TO = re.compile(
    r"^(?:whatsapp:)?\+[1-9][0-9]{5,14}$|^whatsapp:[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$"
)
_FETCH = re.compile(r"^Messages/(?P<sid>(?:SM|MM)[0-9a-f]{32})\.json$")
_REFUSALS: Mapping[str, tuple[int, str]] = {
    "21610": (400, "Attempt to send to unsubscribed recipient"),
    "21211": (400, "Invalid 'To' Phone Number"),
    "21614": (400, "'To' number is not a valid mobile number"),
    "63016": (
        400,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
    "21606": (
        400,
        "The 'From' phone number provided is not a valid message-capable Twilio phone "
        "number for this destination.",
    ),
    "21659": (400, "'From' is not a Twilio phone number or Short Code country mismatch"),
    "20003": (401, "Authenticate"),
    "20429": (429, "Too Many Requests"),
    "20500": (500, "An internal server error has occurred"),
    "20503": (503, "Service unavailable"),
}
_BAD_GATEWAY = "<html><body><h1>502 Bad Gateway</h1></body></html>\n"


def twilio_error(code: str, status: int | None = None, message: str | None = None) -> Response:
    default_status, default_message = _REFUSALS.get(code, (400, "Bad request"))
    status = status or default_status
    body = {
        "code": int(code),
        "message": message or default_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return json_response(body, status)


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment)  # "Thu, 24 Aug 2023 05:01:45 +0000"


class FakeTwilio(FakeServer):
    """One Twilio account; the SDK's API root is ``fake.url``."""

    REFUSALS: ClassVar[frozenset[str]] = frozenset(
        {"21610", "21211", "21614", "63016", "21606", "21659", "20003"}
    )

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        retry_after: int = 2,
        timeout_delay: float = 2.0,
        slow_delay: float = 0.2,
        failure_rate: float = 0.0,
        seed: int = 0,
        failure_kinds: Iterable[str] = ("5xx", "429"),
        keep_alive: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        #: The ``Retry-After`` header of a 429, in seconds.
        self.retry_after = retry_after
        self._clock = clock
        self._messages: dict[str, dict[str, Any]] = {}
        self._refused: dict[str, str] = {}
        self._callbacks = itertools.count(1)
        super().__init__(
            timeout_delay=timeout_delay,
            slow_delay=slow_delay,
            failure_rate=failure_rate,
            seed=seed,
            failure_kinds=failure_kinds,
            keep_alive=keep_alive,
        )

    # --- test controls ----------------------------------------------------------------------

    def refuse(self, to: str, code: str) -> None:
        """Refuse every message to ``to`` (as sent in ``To``) with ``code`` from now on."""
        if code not in self.REFUSALS:
            raise ValueError(f"unknown refusal {code!r}")
        with self._lock:
            self._refused[to] = code

    def clear_refusals(self) -> None:
        """Accept every address again."""
        with self._lock:
            self._refused.clear()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every Message resource created, oldest first."""
        with self._lock:
            return [dict(m) for m in self._messages.values()]

    def message(self, sid: str) -> dict[str, Any] | None:
        """The Message resource as created (``None`` for an unknown sid)."""
        with self._lock:
            found = self._messages.get(sid)
            return None if found is None else dict(found)

    def signed_status_callback(
        self,
        url: str,
        message_sid: str,
        status: str,
        error_code: str | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The form and headers of Twilio's status callback for ``message_sid`` to ``url``.

        For feeding a Flask test client directly; :meth:`status_callback` sends it.
        """
        stored = self.message(message_sid) or {}
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": stored.get("from") or "",
            "MessageSid": message_sid,
            "MessageStatus": status,
            "SmsSid": message_sid,
            "SmsStatus": status,
            "To": stored.get("to") or "",
        }
        if stored.get("messaging_service_sid"):
            params["MessagingServiceSid"] = stored["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = error_code
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": f"fake-{next(self._callbacks)}",
        }
        return params, headers

    def status_callback(
        self,
        url: str,
        message_sid: str,
        status: str,
        error_code: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> int:
        """POST a signed status callback to ``url`` (loopback) and return the HTTP status."""
        if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError("status callbacks go to loopback addresses only in tests")
        params, headers = self.signed_status_callback(url, message_sid, status, error_code)
        request = UrlRequest(url, data=urlencode(params).encode(), headers=headers)
        # No proxies: the callback goes straight to the loopback server under test.
        opener = build_opener(ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as answer:
                status_code: int = answer.status
                return status_code
        except HTTPError as exc:
            exc.close()  # an HTTPError holds the response open
            return exc.code

    # --- FakeServer -------------------------------------------------------------------------

    def route(self, request: Request) -> str | None:
        match = _ACCOUNT.match(request.path)
        if match is None:
            return None
        rest = match["rest"]
        if rest == "Messages.json" and request.method == "POST":
            return "messages.create"
        if _FETCH.match(rest) and request.method == "GET":
            return "messages.fetch"
        return None

    def not_found(self, request: Request) -> Response:
        return twilio_error("20404", 404, f"The requested resource {request.path} was not found")

    def handle(self, name: str, request: Request, params: dict[str, Any]) -> Response:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or auth.username != self.account_sid
            or auth.password != self.auth_token
        ):
            return twilio_error("20003")
        match = _ACCOUNT.match(request.path)
        assert match is not None
        if match["account"] != self.account_sid:
            return self.not_found(request)
        if name == "messages.create":
            return self._create(params)
        fetched = _FETCH.match(match["rest"])
        assert fetched is not None
        stored = self.message(fetched["sid"])
        return self.not_found(request) if stored is None else json_response(stored)

    def fault_response(self, kind: str, name: str, params: dict[str, Any]) -> Response:
        if kind == "429":
            response = twilio_error("20429")
            response.headers["Retry-After"] = str(self.retry_after)
            return response
        if kind in ("5xx", "500", "502", "503"):
            status = self._status_of(kind)
            if status == 502:
                return Response(_BAD_GATEWAY, status=502, mimetype="text/html")
            return twilio_error("20503" if status == 503 else "20500")
        return twilio_error(kind)

    # --- the Messages resource --------------------------------------------------------------

    def _create(self, params: dict[str, Any]) -> Response:
        to = str(params.get("To", ""))
        sender = params.get("From")
        service = params.get("MessagingServiceSid")
        body = params.get("Body")
        content_sid = params.get("ContentSid")
        if not to:
            return twilio_error("21604", 400, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error("21603", 400, "A 'From' phone number is required.")
        if not body and not content_sid and not params.get("MediaUrl"):
            return twilio_error("21602", 400, "Message body is required.")
        if not _TO.match(to):
            return twilio_error("21211", 400, f"Invalid 'To' Phone Number: {to}")
        with self._lock:
            refusal = self._refused.get(to)
        if refusal is not None:
            return twilio_error(refusal)
        now = _rfc2822(self._clock())
        sid = _sid("SM")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        whatsapp = to.startswith("whatsapp:")
        text = str(body or "")
        if service:
            segments = "0"  # a Messaging Service picks the sender later, then counts
        elif whatsapp:
            segments = "1"
        else:
            segments = str(max(1, sms_cost(text).segments))
        message: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None if service and not sender else sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": segments,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        with self._lock:
            self._messages[sid] = message
        return json_response(message, 201)
