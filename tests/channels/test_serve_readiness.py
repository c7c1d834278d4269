"""``voxpop serve`` with a Telegram token that Telegram rejects: the process still answers,
SMS replies still go out, and ``/readyz`` says Telegram is the part that fails (the bug:
the dispatcher thread died, nothing was sent, and /healthz said ok)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, build_opener

import pytest

from tests.channels.test_serve import ROOT, _free_port
from tests.fakes.phone import Phone
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

WRONG_TOKEN = "987654321:AAWrongTokenWrongTokenWrongToken_x"
PATIENCE = 60.0
_opener = build_opener(ProxyHandler({}))


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with _opener.open(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[tuple[Phone, str]]:
    url = f"http://127.0.0.1:{_free_port()}"
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        phone = Phone(url, telegram, twilio, "webhook-secret-for-tests")
        config = tmp_path / "voxpop.toml"
        toml = phone.config_toml(db_url).replace(telegram.token, WRONG_TOKEN)
        config.write_text(toml + "[scheduler]\ntick_seconds = 1\n", encoding="utf-8")
        voxpop = [sys.executable, "-m", "bot.cli.main", "--config", str(config)]
        env = os.environ | {"VOXPOP_LOGGING__LEVEL": "WARNING"}
        env.pop("VOXPOP_CONFIG", None)
        subprocess.run([*voxpop, "db", "upgrade"], check=True, cwd=ROOT, env=env, timeout=60)
        server = subprocess.Popen(
            [*voxpop, "serve"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + PATIENCE
            while True:
                assert server.poll() is None, "voxpop serve stopped"
                assert time.monotonic() < deadline, "voxpop serve did not answer"
                try:
                    _get(f"{url}/healthz")
                    break
                except (URLError, OSError):
                    time.sleep(0.1)
            yield phone, url
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=30)
        assert WRONG_TOKEN not in errors
        assert "the token was rejected by Telegram" in errors  # said loudly, once at least


def test_sms_is_answered_and_readiness_names_telegram(serve: tuple[Phone, str]) -> None:
    phone, url = serve
    lines: list[str] = []
    phone.print_line = lines.append

    phone.handle("sms +32470000001 LIGHTS")

    assert lines[-1].startswith("bot> (+32470000001) Is there a street near you that is too dark")
    assert _get(f"{url}/healthz") == (200, {"status": "ok"})  # alive ...
    deadline = time.monotonic() + PATIENCE
    while (answer := _get(f"{url}/readyz"))[1]["parts"] != {
        "database": "ok",
        "scheduler": "ok",
        "dispatcher": "ok",
        "telegram": "the token was rejected by Telegram",
        "sms": "ok",
        "whatsapp": "ok",
    }:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert answer == (503, answer[1])  # ... but not ready, and says why
    assert answer[1]["status"] == "not ready"
