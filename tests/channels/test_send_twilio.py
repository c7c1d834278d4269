"""SMS and WhatsApp, outbound: the twilio SDK end to end against the fake REST API on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from twilio.base.exceptions import TwilioRestException

from bot.config import TwilioConfig, load_config
from channels import errors
from channels.base import Rendered, SendReceipt
from channels.twilio_send import TwilioSender, to_send_error
from messages import Address
from tests.fakes import closed_port, hangs_up_after_request, unresponsive_port
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

SMS = Address("sms", "+32470123456")
WHATSAPP = Address("whatsapp", "+32470123456")
CALLBACK = "https://voxpop.example.city/webhooks/twilio/status"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SENDERS = TwilioConfig(
    account_sid=ACCOUNT_SID,
    auth_token=AUTH_TOKEN,
    sms_from="+15555550199",
    whatsapp_from="+15555550198",
)
#: Short enough to keep the suite fast; the fake's "timeout" answers after 1 s.
TIMEOUT = 0.5


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(timeout_delay=1.0, slow_delay=0.1) as fake:
        yield fake


def send(
    api_root: str,
    address: Address,
    rendered: Rendered,
    *,
    config: TwilioConfig = SENDERS,
    status_callback: str | None = CALLBACK,
) -> SendReceipt:
    """Send one message through a fresh sender on ``api_root``, then close it."""

    async def main() -> SendReceipt:
        sender = TwilioSender(
            replace(config, api_base_url=api_root),
            status_callback=status_callback,
            timeout=TIMEOUT,
        )
        async with sender:
            return await sender.send(address, rendered)

    return asyncio.run(main())


# --- what Twilio receives ---------------------------------------------------------------------


def test_sms_from_a_number(twilio: FakeTwilio) -> None:
    text = "How often do you visit the park? " * 6  # 198 GSM-7 characters: 2 segments

    receipt = send(twilio.url, SMS, Rendered(text, segments=2))

    [call] = twilio.calls
    assert (call.http_method, call.path) == ("POST", MESSAGES)
    assert call.params == {
        "To": "+32470123456",
        "From": "+15555550199",
        "Body": text,
        "StatusCallback": CALLBACK,
    }
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert call.headers["Authorization"] == f"Basic {credentials}"
    stored = twilio.message(receipt.provider_id)
    assert stored is not None
    assert stored["status"] == "queued"
    assert receipt == SendReceipt(provider_id=stored["sid"], segments=2)
    assert receipt.provider_id.startswith("SM")


def test_the_messaging_service_wins_over_the_number(twilio: FakeTwilio) -> None:
    config = replace(SENDERS, messaging_service_sid="MG" + "1" * 32)

    receipt = send(twilio.url, SMS, Rendered("Hello", segments=1), config=config)

    [call] = twilio.calls
    assert call.params == {
        "To": "+32470123456",
        "MessagingServiceSid": "MG" + "1" * 32,
        "Body": "Hello",
        "StatusCallback": CALLBACK,
    }
    stored = twilio.message(receipt.provider_id)
    assert stored is not None
    assert (stored["status"], stored["num_segments"]) == ("accepted", "0")
    # The service answers 0 segments until it picks a sender: our own count stands.
    assert receipt.segments == 1


def test_whatsapp_addresses_are_prefixed(twilio: FakeTwilio) -> None:
    receipt = send(twilio.url, WHATSAPP, Rendered("Hello 👋"))

    [call] = twilio.calls
    assert call.params == {
        "To": "whatsapp:+32470123456",
        "From": "whatsapp:+15555550198",
        "Body": "Hello 👋",
        "StatusCallback": CALLBACK,
    }
    assert receipt.segments is None  # WhatsApp is not billed per segment


def test_a_whatsapp_user_without_a_number_is_answered_at_their_user_id(
    twilio: FakeTwilio,
) -> None:
    """WhatsApp usernames hide the number: Twilio names the user ``whatsapp:<user id>``,
    and the reply goes back to exactly that."""
    send(twilio.url, Address("whatsapp", "US.13491208655302741918"), Rendered("Hello"))

    [call] = twilio.calls
    assert call.params["To"] == "whatsapp:US.13491208655302741918"


@pytest.mark.parametrize(
    ("written", "environment"),
    [
        ('"whatsapp:+14155238886"', {}),  # as Twilio's console shows the sender
        ('"+14155238886"', {}),
        ('"+15555550100"', {"VOXPOP_TWILIO__WHATSAPP_FROM": "whatsapp:+14155238886"}),
    ],
)
def test_whatsapp_sender_in_either_form_sends_from_that_number(
    twilio: FakeTwilio, tmp_path: Path, written: str, environment: dict[str, str]
) -> None:
    path = tmp_path / "voxpop.toml"
    path.write_text(f"[twilio]\nwhatsapp_from = {written}\n", encoding="utf-8")
    config = load_config(str(path), environ=environment).twilio
    assert config.whatsapp_from == "+14155238886"

    send(
        twilio.url,
        WHATSAPP,
        Rendered("Hello"),
        config=replace(SENDERS, whatsapp_from=config.whatsapp_from),
    )

    [call] = twilio.calls
    assert call.params["From"] == "whatsapp:+14155238886"


def test_whatsapp_template(twilio: FakeTwilio) -> None:
    template = "HX" + "a" * 32

    async def main() -> SendReceipt:
        config = replace(SENDERS, api_base_url=twilio.url)
        async with TwilioSender(config, status_callback=CALLBACK, timeout=TIMEOUT) as sender:
            return await sender.send_template(WHATSAPP, template, {"1": "Central Park", "2": "é"})

    receipt = asyncio.run(main())

    [call] = twilio.calls
    assert call.params == {
        "To": "whatsapp:+32470123456",
        "From": "whatsapp:+15555550198",
        "ContentSid": template,
        "ContentVariables": json.dumps({"1": "Central Park", "2": "é"}, ensure_ascii=False),
        "StatusCallback": CALLBACK,
    }
    assert json.loads(call.params["ContentVariables"]) == {"1": "Central Park", "2": "é"}
    assert twilio.message(receipt.provider_id) is not None


def test_no_status_callback_unless_given(twilio: FakeTwilio) -> None:
    send(twilio.url, SMS, Rendered("Hi"), status_callback=None)

    assert "StatusCallback" not in twilio.calls[0].params


def test_api_base_url_is_the_api_root(twilio: FakeTwilio) -> None:
    send(twilio.url + "/", SMS, Rendered("Hi"))

    assert [c.path for c in twilio.calls] == [MESSAGES]


# --- failures ---------------------------------------------------------------------------------

FAULTS: list[tuple[str, type[errors.SendError], str | None]] = [
    ("429", errors.Throttled, "20429"),
    ("500", errors.Unreachable, "20500"),
    ("502", errors.Unreachable, "502"),  # the load balancer's HTML page: no Twilio code
    ("503", errors.Unreachable, "20503"),
    ("timeout", errors.Unknown, None),
    ("21610", errors.ContactOptedOut, "21610"),
    ("21211", errors.InvalidAddress, "21211"),
    ("21614", errors.InvalidAddress, "21614"),
    ("63016", errors.OutsideSessionWindow, "63016"),
    ("21606", errors.ConfigError, "21606"),
    ("21659", errors.ConfigError, "21659"),
    ("20003", errors.ConfigError, "20003"),
]


@pytest.mark.parametrize(("kind", "expected", "code"), FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_map_to_send_errors(
    twilio: FakeTwilio, kind: str, expected: type[errors.SendError], code: str | None
) -> None:
    twilio.fail_next(1, kind)

    with pytest.raises(expected) as raised:
        send(twilio.url, SMS, Rendered("Hi"))

    assert type(raised.value) is expected
    assert raised.value.code == code
    assert raised.value.retryable == (expected in (errors.Throttled, errors.Unreachable))
    # One attempt: retrying is the dispatcher's decision, not the SDK's.
    assert len(twilio.calls) == 1


def test_throttled_waits_for_retry_after(twilio: FakeTwilio) -> None:
    twilio.retry_after = 30
    twilio.fail_next(1, "429")

    with pytest.raises(errors.Throttled) as raised:
        send(twilio.url, SMS, Rendered("Hi"))

    assert raised.value.retry_after == 30


def test_slow_answers_within_the_timeout_succeed(twilio: FakeTwilio) -> None:
    twilio.fail_next(1, "slow")

    receipt = send(twilio.url, SMS, Rendered("Hi"))

    assert twilio.message(receipt.provider_id) is not None


def test_read_timeout_is_unknown_because_the_message_may_have_gone(twilio: FakeTwilio) -> None:
    twilio.fail_next(1, "timeout")

    with pytest.raises(errors.Unknown):
        send(twilio.url, SMS, Rendered("Hi"))
    twilio.close()  # lets the slow answer finish

    assert len(twilio.messages) == 1  # it did go: resending would duplicate it


@pytest.mark.parametrize("place", [closed_port, unresponsive_port], ids=["refused", "no-answer"])
def test_no_connection_is_unreachable(place: Callable[[], Any]) -> None:
    with place() as root, pytest.raises(errors.Unreachable):
        send(root, SMS, Rendered("Hi"))


def test_refusals_by_the_api_itself(twilio: FakeTwilio) -> None:
    with pytest.raises(errors.InvalidAddress) as invalid:
        send(twilio.url, Address("sms", "0470123456"), Rendered("Hi"))
    with pytest.raises(errors.Rejected) as empty:
        send(twilio.url, SMS, Rendered(""))

    assert (invalid.value.code, empty.value.code) == ("21211", "21602")
    # Twilio's message quotes the number; ours never does, nor does a chained exception.
    assert "0470123456" not in str(invalid.value)
    assert invalid.value.__cause__ is None
    assert invalid.value.__suppress_context__


def test_wrong_credentials_are_a_config_error(twilio: FakeTwilio) -> None:
    config = replace(SENDERS, auth_token="not-the-token")

    with pytest.raises(errors.ConfigError) as raised:
        send(twilio.url, SMS, Rendered("Hi"), config=config)

    assert raised.value.code == "20003"


@pytest.mark.parametrize(
    ("address", "config"),
    [
        (WHATSAPP, replace(SENDERS, whatsapp_from="")),
        (SMS, replace(SENDERS, sms_from="")),
    ],
    ids=["no whatsapp sender", "no sms sender"],
)
def test_missing_sender_fails_before_any_request(
    twilio: FakeTwilio, address: Address, config: TwilioConfig
) -> None:
    with pytest.raises(errors.ConfigError):
        send(twilio.url, address, Rendered("Hi"), config=config)

    assert twilio.calls == []


def test_other_channels_are_a_programming_error(twilio: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="telegram"):
        send(twilio.url, Address("telegram", "81234"), Rendered("Hi"))


def test_a_connection_lost_after_the_request_left_is_unknown() -> None:
    with hangs_up_after_request() as root, pytest.raises(errors.Unknown):
        send(root, SMS, Rendered("Hi"))


def _refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))


# How aiohttp (under the SDK's async client) and the SDK report failures, and what they mean.
CLASSIFIED: list[tuple[str, Exception, type[errors.SendError]]] = [
    ("connect timeout", aiohttp.ConnectionTimeoutError("Connection timeout"), errors.Unreachable),
    ("refused", _refused(), errors.Unreachable),
    (
        "closed before the request was written",
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        errors.Unreachable,
    ),
    ("aborted after sending", aiohttp.ServerDisconnectedError(), errors.Unknown),
    ("reset while waiting", aiohttp.ClientOSError(104, "Connection reset by peer"), errors.Unknown),
    ("read timeout", aiohttp.SocketTimeoutError("Timeout on reading"), errors.Unknown),
    ("whole request timed out", TimeoutError(), errors.Unknown),
    ("broken answer", aiohttp.ClientPayloadError("not completed"), errors.Unknown),
    ("429 without header", TwilioRestException(429, "/", code=20429), errors.Throttled),
    ("other 4xx", TwilioRestException(400, "/", code=21617), errors.Rejected),
    ("5xx", TwilioRestException(503, "/", code=20503), errors.Unreachable),
    ("401", TwilioRestException(401, "/", code=20003), errors.ConfigError),
]


@pytest.mark.parametrize(
    ("exc", "expected"), [c[1:] for c in CLASSIFIED], ids=[c[0] for c in CLASSIFIED]
)
def test_classification(exc: Exception, expected: type[errors.SendError]) -> None:
    error = to_send_error(exc)

    assert type(error) is expected
    if isinstance(error, errors.Throttled):
        assert error.retry_after == 1.0
