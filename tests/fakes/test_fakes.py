"""The fakes themselves: raw wire formats, fault switches, status callbacks, update queues."""

from __future__ import annotations

import base64
import http.client
import json
import time
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request as WsgiRequest
from werkzeug.wrappers import Response

from tests.fakes import FakeServer
from tests.fakes.telegram_api import TOKEN, FakeTelegram, message_update
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

_OPENER = build_opener(ProxyHandler({}))  # loopback only, whatever the environment says


def call(
    url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """POST ``form`` (or GET) to ``url``: status, headers and the JSON answer."""
    data = None if form is None else urlencode(form).encode()
    request = Request(url, data=data, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


# --- Telegram ---------------------------------------------------------------------------------


def test_telegram_unknown_token_is_unauthorized(telegram: FakeTelegram) -> None:
    status, _, body = call(f"{telegram.url}/bot1:nope/getMe", {})

    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


def test_telegram_429_carries_retry_after(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "429")

    status, _, body = call(f"{telegram.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"})

    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }


def test_telegram_get_updates_is_a_queue(telegram: FakeTelegram) -> None:
    first = telegram.push_update(message_update(81234, "PARK"))
    second = telegram.push_update(message_update(81234, "2", message_id=2))
    url = f"{telegram.url}/bot{TOKEN}/getUpdates"

    _, _, both = call(url, {"timeout": "0"})
    _, _, rest = call(url, {"offset": str(first["update_id"] + 1)})
    _, _, none = call(url, {"offset": str(second["update_id"] + 1)})

    assert [u["message"]["text"] for u in both["result"]] == ["PARK", "2"]
    assert rest["result"] == [second]
    assert none["result"] == []


def test_telegram_get_updates_conflicts_with_a_webhook(telegram: FakeTelegram) -> None:
    call(f"{telegram.url}/bot{TOKEN}/setWebhook", {"url": "https://example.city/hook"})

    status, _, body = call(f"{telegram.url}/bot{TOKEN}/getUpdates", {})

    assert status == 409
    assert body["description"].startswith("Conflict: can't use getUpdates")


def test_telegram_standing_refusal(telegram: FakeTelegram) -> None:
    telegram.refuse(81234, "blocked")

    status, _, body = call(
        f"{telegram.url}/bot{TOKEN}/sendMessage", {"chat_id": "81234", "text": "x"}
    )

    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")


# --- Twilio -----------------------------------------------------------------------------------


def _auth() -> dict[str, str]:
    token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_twilio_message_resource_shape(twilio: FakeTwilio) -> None:
    url = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    status, _, body = call(
        url, {"To": "+32470123456", "From": "+15555550199", "Body": "Hi"}, _auth()
    )

    assert status == 201
    assert body["sid"].startswith("SM")
    assert len(body["sid"]) == 34
    assert body["status"] == "queued"
    assert body["num_segments"] == "1"
    assert body["direction"] == "outbound-api"
    assert body["error_code"] is None
    assert body["date_created"].endswith("+0000")
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{body['sid']}.json"


def test_twilio_429_has_retry_after(twilio: FakeTwilio) -> None:
    twilio.fail_next(1, "429")
    url = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    status, headers, body = call(url, {"To": "+32470123456", "Body": "x"}, _auth())

    assert (status, headers["Retry-After"]) == (429, "2")
    assert body == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


def test_twilio_wrong_credentials(twilio: FakeTwilio) -> None:
    url = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    status, _, body = call(url, {"To": "+32470123456", "From": "+1555", "Body": "x"})

    assert (status, body["code"]) == (401, 20003)


class _Receiver(FakeServer):
    """Any POST, answered 204: a stand-in for Voxpop's status webhook."""

    def route(self, request: WsgiRequest) -> str | None:
        return "callback"

    def handle(self, name: str, request: WsgiRequest, params: dict[str, Any]) -> Response:
        return Response(status=204)


def test_twilio_status_callback_is_signed(twilio: FakeTwilio) -> None:
    url = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    _, _, sent = call(url, {"To": "+32470123456", "From": "+15555550199", "Body": "x"}, _auth())

    with _Receiver() as receiver:
        hook = f"{receiver.url}/webhooks/twilio/status"
        status = twilio.status_callback(hook, sent["sid"], "undelivered", "30003")
        [received] = receiver.calls

    assert status == 204
    assert received.params["MessageSid"] == sent["sid"]
    assert received.params["MessageStatus"] == "undelivered"
    assert received.params["ErrorCode"] == "30003"
    assert received.params["To"] == "+32470123456"
    validator = RequestValidator(AUTH_TOKEN)
    assert validator.validate(hook, received.params, received.headers["X-Twilio-Signature"])
    forged = received.params | {"MessageStatus": "delivered"}
    assert not validator.validate(hook, forged, received.headers["X-Twilio-Signature"])


# --- fault switches ---------------------------------------------------------------------------


def test_fail_next_counts_only_the_named_method(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "500", method="sendMessage")

    me, _, _ = call(f"{telegram.url}/bot{TOKEN}/getMe", {})
    failed, _, _ = call(f"{telegram.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"})
    sent, _, _ = call(f"{telegram.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"})

    assert (me, failed, sent) == (200, 500, 200)
    assert [c.fault for c in telegram.calls] == [None, "500", None]


def test_failure_rate_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[str | None]:
        with FakeTelegram() as fake:
            fake.set_failure_rate(0.3, seed=seed, kinds=("5xx", "429"))
            for _ in range(30):
                call(f"{fake.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"})
            return [c.fault for c in fake.calls]

    first, again = run(seed=11), run(seed=11)

    assert first == again
    assert 0 < sum(f is not None for f in first) < 30


def test_unknown_fault_kinds_are_refused(twilio: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        twilio.fail_next(1, "blocked")  # a Telegram refusal


def test_failure_rate_from_the_constructor() -> None:
    with FakeTwilio(failure_rate=1.0, seed=3, failure_kinds=("503",)) as fake:
        url = f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        status, _, body = call(url, {"To": "+32470123456", "From": "+1555", "Body": "x"}, _auth())

    assert (status, body["code"]) == (503, 20503)


# --- the keep-alive server --------------------------------------------------------------------


def _raw_post(conn: http.client.HTTPConnection, form: dict[str, str]) -> tuple[int, str, Any]:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | _auth()
    conn.request("POST", path, body=urlencode(form), headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.getheader("Connection") or "", json.loads(answer.read())


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with FakeTwilio(keep_alive=True) as fake:
        port = int(fake.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            answers = [
                _raw_post(conn, {"To": "+32470123456", "From": "+15555550199", "Body": str(n)})
                for n in range(3)
            ]
            sock = conn.sock
            assert sock is not None
            local = sock.getsockname()
        finally:
            conn.close()
        calls = fake.calls

    assert [(status, connection) for status, connection, _ in answers] == [(201, "keep-alive")] * 3
    assert [body["body"] for _, _, body in answers] == ["0", "1", "2"]
    assert [c.params["Body"] for c in calls] == ["0", "1", "2"]
    assert local[0] == "127.0.0.1"


def test_keep_alive_speaks_the_same_wire_format() -> None:
    with FakeTelegram(keep_alive=True) as fake:
        fake.fail_next(1, "429")
        limited, headers, body = call(
            f"{fake.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"}
        )
        sent, _, answer = call(f"{fake.url}/bot{TOKEN}/sendMessage", {"chat_id": "1", "text": "x"})
        unknown, _, _ = call(f"{fake.url}/nothing-here", {})

    assert (limited, body["parameters"]) == (429, {"retry_after": 3})
    assert headers["Content-Type"] == "application/json"
    assert (sent, answer["result"]["text"]) == (200, "x")
    assert unknown == 404


def test_keep_alive_reads_chunked_bodies() -> None:
    with FakeTwilio(keep_alive=True) as fake:
        port = int(fake.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = urlencode({"To": "+32470123456", "From": "+15555550199", "Body": "chunked"})
        try:
            conn.request(
                "POST",
                f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                body=iter([body[:10].encode(), body[10:].encode()]),
                headers={"Content-Type": "application/x-www-form-urlencoded"} | _auth(),
                encode_chunked=True,
            )
            answer = conn.getresponse()
            status, sent = answer.status, json.loads(answer.read())
        finally:
            conn.close()

    assert (status, sent["body"]) == (201, "chunked")


def test_keep_alive_close_does_not_wait_for_a_timeout_fault() -> None:
    fake = FakeTwilio(keep_alive=True, timeout_delay=30)
    fake.fail_next(1, "timeout")
    url = f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = {"To": "+32470123456", "From": "+15555550199", "Body": "x"}
    request = Request(url, data=urlencode(form).encode(), headers=_auth())
    with pytest.raises(OSError, match="timed out"):
        _OPENER.open(request, timeout=0.3)

    started = time.monotonic()
    fake.close()

    assert time.monotonic() - started < 5
    assert [c.fault for c in fake.calls] == ["timeout"]
