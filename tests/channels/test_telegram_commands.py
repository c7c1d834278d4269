"""``voxpop telegram set-webhook`` and ``poll`` say in one line why Telegram did not answer,
and exit 1: no traceback, and a DNS failure is not called a refusal."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from click.testing import CliRunner, Result

from bot.cli.main import main
from tests.fakes import closed_port
from tests.fakes.telegram_api import TOKEN, FakeTelegram

SECRET = "webhook-secret-for-tests"


def _voxpop(
    db_url: str,
    api: str,
    *args: str,
    token: str = TOKEN,
    secret: str = SECRET,
    public_url: str = "https://voxpop.example.org",
) -> Result:
    env = {
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_SERVER__PUBLIC_URL": public_url,
        "VOXPOP_TELEGRAM__TOKEN": token,
        "VOXPOP_TELEGRAM__WEBHOOK_SECRET": secret,
        "VOXPOP_TELEGRAM__API_BASE_URL": api,
    }
    return CliRunner().invoke(main, ["telegram", *args], env=env, catch_exceptions=False)


@contextmanager
def _fake() -> Iterator[str]:
    with FakeTelegram() as fake:
        yield fake.url


@contextmanager
def _nowhere() -> Iterator[str]:
    # .invalid is reserved (RFC 2606): no resolver ever finds it.
    yield "http://voxpop-test.invalid"


Where = Callable[[], AbstractContextManager[str]]
#: (case, where Telegram is, the token, what the command says)
CASES: list[tuple[str, Where, str, str]] = [
    ("token", _fake, "123:not-the-bot-token", "Telegram rejected the token"),
    ("refused", closed_port, TOKEN, "refused the connection"),
    ("dns", _nowhere, TOKEN, "could not be resolved (DNS failure)"),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("where", "token", "said"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
@pytest.mark.parametrize("command", ["set-webhook", "poll"])
def test_a_command_says_why_telegram_did_not_answer(
    db_url: str, command: str, where: Where, token: str, said: str
) -> None:
    with where() as api:
        result = _voxpop(db_url, api, command, token=token)

    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert said in last, result.output
    assert "Traceback" not in result.output
    assert "refused the webhook" not in result.output  # not for a network failure
    if command == "set-webhook":
        assert result.output.strip() == last  # one line
    assert TOKEN not in result.output
    assert SECRET not in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_set_webhook_gives_telegrams_reason_for_a_refusal(db_url: str) -> None:
    with FakeTelegram() as fake:
        # Telegram calls webhooks on four ports only (the secret's rules Voxpop checks itself).
        public_url = "https://voxpop.example.org:8080"
        result = _voxpop(db_url, fake.url, "set-webhook", public_url=public_url)

    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: Telegram refused the webhook: Bad webhook: webhook can be set up only on "
        "ports 80, 88, 443 or 8443"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_set_webhook_registers_the_url(db_url: str) -> None:
    with FakeTelegram() as fake:
        result = _voxpop(db_url, fake.url, "set-webhook")
        webhook = fake.webhook

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "webhook set: https://voxpop.example.org/webhooks/telegram"
    assert (webhook.url, webhook.secret_token) == (
        "https://voxpop.example.org/webhooks/telegram",
        SECRET,
    )
