"""Telegram, outbound: python-telegram-bot end to end against the fake Bot API on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from telegram import error as tg

from bot.config import TelegramConfig
from channels import errors
from channels.base import Button, Rendered, SendReceipt
from channels.http import PoolTimeoutError
from channels.telegram_send import TelegramSender, WebhookStatus, to_send_error, typed_key
from messages import Address
from tests.fakes import closed_port, hangs_up_after_request, unresponsive_port
from tests.fakes.telegram_api import TOKEN, FakeTelegram

T = TypeVar("T")
CHAT = Address("telegram", "81234")
#: Short enough to keep the suite fast; the fake's "timeout" answers after 1 s.
TIMEOUT = 0.5


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(timeout_delay=1.0, slow_delay=0.1) as fake:
        yield fake


def make_sender(api_root: str, token: str = TOKEN, **options: Any) -> TelegramSender:
    config = TelegramConfig(token=token, webhook_secret="s3cret", api_base_url=api_root)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("connect_timeout", TIMEOUT)
    return TelegramSender(config, **options)


def run(api_root: str, action: Callable[[TelegramSender], Awaitable[T]], **options: Any) -> T:
    """Open a sender on ``api_root``, run ``action`` with it, close it."""

    async def main() -> T:
        async with make_sender(api_root, **options) as sender:
            return await action(sender)

    return asyncio.run(main())


def send_to(address: Address, rendered: Rendered) -> Callable[[TelegramSender], Awaitable[Any]]:
    return lambda sender: sender.send(address, rendered)


# --- what Telegram receives -------------------------------------------------------------------

LONG = "q:" + "x" * 70

SEND_CASES: list[tuple[str, Rendered, dict[str, Any] | None]] = [
    ("plain text", Rendered("Thank you!"), None),
    (
        "a button per row",
        Rendered(
            "How often?",
            buttons=(
                (Button("1. Every week", "visits:weekly"),),
                (Button("2. Every month", "visits:monthly"),),
            ),
        ),
        {
            "inline_keyboard": [
                [{"text": "1. Every week", "callback_data": "visits:weekly"}],
                [{"text": "2. Every month", "callback_data": "visits:monthly"}],
            ]
        },
    ),
    (
        "a scale in one row",
        Rendered("Clean? (1-3)", buttons=(tuple(Button(str(n), f"c:{n}") for n in (1, 2, 3)),)),
        {"inline_keyboard": [[{"text": str(n), "callback_data": f"c:{n}"} for n in (1, 2, 3)]]},
    ),
    (
        "a payload over 64 bytes becomes the option key",
        Rendered("Which?", buttons=((Button("1. Park", "q:park"),), (Button("2. Lake", LONG),))),
        {
            "inline_keyboard": [
                [{"text": "1. Park", "callback_data": "q:park"}],
                [{"text": "2. Lake", "callback_data": "k:2"}],
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("rendered", "markup"), [c[1:] for c in SEND_CASES], ids=[c[0] for c in SEND_CASES]
)
def test_send_makes_the_bot_api_call(
    telegram: FakeTelegram, rendered: Rendered, markup: dict[str, Any] | None
) -> None:
    receipt = run(telegram.url, send_to(CHAT, rendered))

    [call] = telegram.calls_to("sendMessage")
    assert call.http_method == "POST"
    assert call.path == f"/bot{TOKEN}/sendMessage"
    expected: dict[str, Any] = {"chat_id": "81234", "text": rendered.text}
    if markup is not None:
        expected["reply_markup"] = markup
    assert call.params == expected
    sent = telegram.message(81234, int(receipt.provider_id))
    assert sent is not None
    assert receipt == SendReceipt(provider_id=str(sent["message_id"]), segments=None)


def test_message_ids_are_the_providers(telegram: FakeTelegram) -> None:
    async def twice(sender: TelegramSender) -> list[SendReceipt]:
        return [await sender.send(CHAT, Rendered(t)) for t in ("one", "two")]

    receipts = run(telegram.url, twice)

    assert [r.provider_id for r in receipts] == ["1", "2"]


@pytest.mark.parametrize(
    ("payload", "label", "data"),
    [
        ("p" * 64, "1. Yes", "p" * 64),  # exactly 64 bytes: kept
        ("p" * 65, "1. Yes", "k:1"),
        ("é" * 33, "2. Née", "k:2"),  # 33 characters, but 66 bytes in UTF-8
        ("clean:" + "x" * 60, "4", "k:4"),  # a scale button's label is its key
        ("q:" + "x" * 70, "B. Bicycle. Or not", "k:B"),  # the key ends at the first ". "
    ],
    ids=["64 bytes", "65 bytes", "multibyte", "scale", "first dot"],
)
def test_callback_data_fits_in_64_bytes(
    telegram: FakeTelegram, payload: str, label: str, data: str
) -> None:
    run(telegram.url, send_to(CHAT, Rendered("Q?", buttons=((Button(label, payload),),))))

    [call] = telegram.calls_to("sendMessage")
    assert call.params["reply_markup"]["inline_keyboard"] == [
        [{"text": label, "callback_data": data}]
    ]
    assert len(data.encode()) <= 64


def test_typed_key_reads_the_replacement_back() -> None:
    assert typed_key("k:2") == "2"
    assert typed_key("visits:weekly") is None


def test_api_base_url_is_the_api_root(telegram: FakeTelegram) -> None:
    run(telegram.url + "/", send_to(CHAT, Rendered("Hi")))

    assert [c.path for c in telegram.calls] == [f"/bot{TOKEN}/getMe", f"/bot{TOKEN}/sendMessage"]


# --- failures ---------------------------------------------------------------------------------

FAULTS: list[tuple[str, type[errors.SendError], str | None]] = [
    ("429", errors.Throttled, "429"),
    ("500", errors.Unreachable, None),
    ("502", errors.Unreachable, None),
    ("503", errors.Unreachable, None),
    ("blocked", errors.ContactBlocked, "403"),
    ("deactivated", errors.InvalidAddress, "403"),
    ("chat_not_found", errors.InvalidAddress, "400"),
    ("bad_request", errors.Rejected, "400"),
    ("unauthorized", errors.ConfigError, "401"),
    ("timeout", errors.Unknown, None),
]


@pytest.mark.parametrize(("kind", "expected", "code"), FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_map_to_send_errors(
    telegram: FakeTelegram, kind: str, expected: type[errors.SendError], code: str | None
) -> None:
    telegram.fail_next(1, kind, method="sendMessage")

    with pytest.raises(expected) as raised:
        run(telegram.url, send_to(CHAT, Rendered("Hi")))

    assert type(raised.value) is expected
    assert raised.value.code == code
    assert raised.value.retryable == (expected in (errors.Throttled, errors.Unreachable))
    # One attempt: retrying is the dispatcher's decision, not the SDK's.
    assert len(telegram.calls_to("sendMessage")) == 1


def test_throttled_carries_retry_after(telegram: FakeTelegram) -> None:
    telegram.retry_after = 7
    telegram.fail_next(1, "429", method="sendMessage")

    with pytest.raises(errors.Throttled) as raised:
        run(telegram.url, send_to(CHAT, Rendered("Hi")))

    assert raised.value.retry_after == 7


def test_slow_answers_within_the_timeout_succeed(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "slow", method="sendMessage")

    receipt = run(telegram.url, send_to(CHAT, Rendered("Hi")))

    assert receipt.provider_id == "1"


def test_read_timeout_is_unknown_because_the_message_may_have_arrived(
    telegram: FakeTelegram,
) -> None:
    telegram.fail_next(1, "timeout", method="sendMessage")

    with pytest.raises(errors.Unknown):
        run(telegram.url, send_to(CHAT, Rendered("Hi")))
    telegram.close()  # lets the slow answer finish

    assert telegram.message(81234, 1) is not None  # it did arrive: resending would duplicate


def test_pool_timeout_is_unreachable_because_the_request_never_left(
    telegram: FakeTelegram,
) -> None:
    # Whichever send reaches the fake first is slow and holds the only pooled connection.
    telegram.fail_next(1, "slow", method="sendMessage")
    telegram.slow_delay = 0.4

    async def two_at_once(sender: TelegramSender) -> list[SendReceipt | BaseException]:
        sends = [sender.send(CHAT, Rendered(text)) for text in ("one", "two")]
        return list(await asyncio.gather(*sends, return_exceptions=True))

    outcomes = run(telegram.url, two_at_once, pool_size=1, pool_timeout=0.1, timeout=2.0)

    [receipt] = [o for o in outcomes if isinstance(o, SendReceipt)]
    [failure] = [o for o in outcomes if not isinstance(o, SendReceipt)]
    assert isinstance(failure, errors.Unreachable)
    [call] = telegram.calls_to("sendMessage")  # the other one never left
    assert call.fault == "slow"
    assert receipt.provider_id == "1"


@pytest.mark.parametrize("place", [closed_port, unresponsive_port], ids=["refused", "no-answer"])
def test_no_connection_is_unreachable(place: Callable[[], Any]) -> None:
    async def main(root: str) -> None:
        sender = make_sender(root)
        try:
            await sender.send(CHAT, Rendered("Hi"))
        finally:
            await sender.shutdown()

    with place() as root, pytest.raises(errors.Unreachable):
        asyncio.run(main(root))


def test_a_connection_lost_after_the_request_left_is_unknown() -> None:
    async def main(root: str) -> None:
        sender = make_sender(root)
        try:
            await sender.initialize()  # getMe is lost too: logged, not raised
            await sender.send(CHAT, Rendered("Hi"))
        finally:
            await sender.shutdown()

    with hangs_up_after_request() as root, pytest.raises(errors.Unknown) as raised:
        asyncio.run(main(root))

    assert TOKEN not in str(raised.value)


def test_start_tolerates_telegram_being_away(caplog: pytest.LogCaptureFixture) -> None:
    async def start_then_send(root: str) -> None:
        async with make_sender(root) as sender:  # getMe fails: logged, not raised
            await sender.send(CHAT, Rendered("Hi"))

    with closed_port() as root, pytest.raises(errors.Unreachable):
        asyncio.run(start_then_send(root))

    assert "not reachable at start" in caplog.text


def test_wrong_token_fails_at_start_without_showing_it(telegram: FakeTelegram) -> None:
    wrong = "987654321:AAWrongTokenWrongTokenWrongToken123"

    with pytest.raises(errors.ConfigError) as raised:
        run(telegram.url, send_to(CHAT, Rendered("Hi")), token=wrong)

    assert wrong not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def _caused(exc: tg.TelegramError, cause: BaseException | None) -> tg.TelegramError:
    exc.__cause__ = cause
    return exc


def _refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))


# How our PTB transport (channels.http, aiohttp) reports failures, and what they mean: did
# the request leave, may it have arrived?
CLASSIFIED: list[tuple[str, tg.TelegramError, type[errors.SendError]]] = [
    (
        "connect timeout",
        _caused(tg.TimedOut(), aiohttp.ConnectionTimeoutError("")),
        errors.Unreachable,
    ),
    ("pool timeout", _caused(tg.TimedOut(), PoolTimeoutError()), errors.Unreachable),
    (
        "closed before writing",
        _caused(tg.NetworkError("x"), aiohttp.ClientConnectionResetError("")),
        errors.Unreachable,
    ),
    ("read timeout", _caused(tg.TimedOut(), aiohttp.SocketTimeoutError("")), errors.Unknown),
    ("whole request timed out", _caused(tg.TimedOut(), TimeoutError()), errors.Unknown),
    ("timeout of unknown origin", tg.TimedOut(), errors.Unknown),
    ("refused", _caused(tg.NetworkError("x"), _refused()), errors.Unreachable),
    (
        "closed before answering",
        _caused(tg.NetworkError("x"), aiohttp.ServerDisconnectedError()),
        errors.Unknown,
    ),
    (
        "reset while reading or writing",
        _caused(tg.NetworkError("x"), aiohttp.ClientOSError(104, "reset")),
        errors.Unknown,
    ),
    (
        "broken answer",
        _caused(tg.NetworkError("x"), aiohttp.ClientPayloadError("")),
        errors.Unknown,
    ),
    ("5xx", tg.NetworkError("Bad Gateway"), errors.Unreachable),
    (
        "not opened",
        _caused(tg.NetworkError("Unknown error in HTTP implementation"), RuntimeError()),
        errors.Unreachable,
    ),
    ("unreadable 200", tg.TelegramError("Invalid server response"), errors.Unknown),
    ("webhook conflict", tg.Conflict("Conflict: terminated by other"), errors.ConfigError),
    ("group migrated", tg.ChatMigrated(-100123), errors.InvalidAddress),
    ("never started the bot", tg.Forbidden("Forbidden: bot can't initiate"), errors.ContactBlocked),
]


@pytest.mark.parametrize(
    ("exc", "expected"), [c[1:] for c in CLASSIFIED], ids=[c[0] for c in CLASSIFIED]
)
def test_classification(exc: tg.TelegramError, expected: type[errors.SendError]) -> None:
    assert type(to_send_error(exc)) is expected


# --- keyboards, callbacks and the webhook -----------------------------------------------------


def test_answer_callback(telegram: FakeTelegram) -> None:
    run(telegram.url, lambda s: s.answer_callback("4382bfdwdsb323b2d9", "Saved"))

    [call] = telegram.calls_to("answerCallbackQuery")
    assert call.params == {"callback_query_id": "4382bfdwdsb323b2d9", "text": "Saved"}


def test_remove_keyboard_is_idempotent(telegram: FakeTelegram) -> None:
    question = Rendered("Q?", buttons=((Button("1. Yes", "q:yes"),),))

    async def answer_then_remove_twice(sender: TelegramSender) -> None:
        receipt = await sender.send(CHAT, question)
        await sender.remove_keyboard(CHAT.value, receipt.provider_id)
        await sender.remove_keyboard(CHAT.value, receipt.provider_id)  # "not modified": fine

    run(telegram.url, answer_then_remove_twice)

    calls = telegram.calls_to("editMessageReplyMarkup")
    assert [c.params for c in calls] == [{"chat_id": "81234", "message_id": "1"}] * 2
    sent = telegram.message(81234, 1)
    assert sent is not None
    assert "reply_markup" not in sent


def test_webhook_set_inspect_delete(telegram: FakeTelegram) -> None:
    url = "https://voxpop.example.city/webhooks/telegram"

    async def cycle(sender: TelegramSender) -> tuple[WebhookStatus, WebhookStatus]:
        await sender.set_webhook(url, "s3cret-Token_1")
        before = await sender.webhook_info()
        await sender.delete_webhook()
        return before, await sender.webhook_info()

    before, after = run(telegram.url, cycle)

    [call] = telegram.calls_to("setWebhook")
    assert call.params == {
        "url": url,
        "secret_token": "s3cret-Token_1",
        "allowed_updates": ["message", "callback_query"],
    }
    assert before == WebhookStatus(url=url, pending_update_count=0)
    assert after.url == ""
    assert len(telegram.calls_to("deleteWebhook")) == 1


def test_webhook_refusal_is_a_send_error(telegram: FakeTelegram) -> None:
    with pytest.raises(errors.Rejected):
        run(telegram.url, lambda s: s.set_webhook("http://127.0.0.1:1/x", "not a secret!"))
