"""docs/deployment.md followed on this machine, as an operator would, without systemd: the
shipped settings and environment file filled in, ``voxpop db upgrade`` and ``survey load``,
then each unit's own command line with its own environment (only the install folder and the
port changed), behind what the proxy would send. A citizen's signed SMS and Telegram message
reach the loopback fakes of Twilio and Telegram as replies; the services stop cleanly."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

import pytest

from bench import harness
from bot.config import load_config
from tests.deploy.guide import (
    ENV_EXAMPLE,
    ETC_ENV,
    ETC_TOML,
    ROOT,
    TOML_EXAMPLE,
    UNITS,
    VENV_BIN,
    local_command,
    read_env_file,
    read_unit,
)
from tests.fakes.telegram_api import FakeTelegram, message_update
from tests.fakes.twilio_api import FakeTwilio

CITIZEN = "+32470123456"
CHAT_ID = 4242001
#: The longest systemd waits for a service to stop (TimeoutStopSec in the units).
STOP_SECONDS = 30
_opener = build_opener(ProxyHandler({}))


@contextmanager
def service(name: str, env: dict[str, str], workdir: Path, log: Path) -> Iterator[Path]:
    """The unit's ExecStart in its environment; stopped with SIGTERM as systemd does."""
    command = local_command(read_unit(name).exec_start())
    if "--bind" in command:
        command[command.index("--bind") + 1] = "127.0.0.1:0"  # no fixed port in tests
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        assert code == 0, f"{name} stopped with {code}:\n{log.read_text()[-2000:]}"


def wait_for(log: Path, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(found.lastindex or 0)
        assert time.monotonic() < deadline, f"{pattern!r} not in {log.name}:\n{log.read_text()}"
        time.sleep(0.05)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    # What nginx hands on: the public host and scheme in the forwarded headers.
    proxy = {"Host": "voxpop.example.city", "X-Forwarded-Proto": "https"}
    request = Request(url, data=body, headers=headers | proxy, method="POST")
    with _opener.open(request, timeout=10) as answer:
        return int(answer.status)


def get_status(url: str) -> int:
    try:
        with _opener.open(url, timeout=10) as answer:
            return int(answer.status)
    except HTTPError as error:
        return error.code


def filled_env_file(example: dict[str, str], fills: dict[str, str]) -> str:
    """The example's keys with this machine's values (every key must be filled)."""
    assert set(example) <= set(fills), f"unfilled: {set(example) - set(fills)}"
    return "".join(f"{key}={fills[key]}\n" for key in example)


def test_the_guide_followed_on_loopback_answers_citizens_through_the_fakes(
    db_url: str, tmp_path: Path
) -> None:
    etc, workdir = tmp_path / "etc-voxpop", tmp_path / "var-lib-voxpop"
    etc.mkdir()
    workdir.mkdir()
    settings = load_config(str(TOML_EXAMPLE), environ={})
    assert settings.server.public_url == harness.PUBLIC_URL  # what the signatures are over
    with FakeTwilio(keep_alive=True) as twilio, FakeTelegram() as telegram, ExitStack() as up:
        webhook_secret = secrets.token_urlsafe(32)
        secrets_file = filled_env_file(
            read_env_file(ENV_EXAMPLE),
            {
                "VOXPOP_DATABASE__URL": db_url,
                "VOXPOP_PRIVACY__PSEUDONYM_KEY": secrets.token_hex(32),
                "VOXPOP_TELEGRAM__TOKEN": telegram.token,
                "VOXPOP_TELEGRAM__WEBHOOK_SECRET": webhook_secret,
                "VOXPOP_TWILIO__ACCOUNT_SID": twilio.account_sid,
                "VOXPOP_TWILIO__AUTH_TOKEN": twilio.auth_token,
            },
        )
        # Not in the guide: the providers' addresses, pointed at the fakes.
        secrets_file += f"VOXPOP_TELEGRAM__API_BASE_URL={telegram.url}\n"
        secrets_file += f"VOXPOP_TWILIO__API_BASE_URL={twilio.url}\n"
        (etc / "voxpop.env").write_text(secrets_file, encoding="utf-8")
        (etc / "voxpop.toml").write_text(TOML_EXAMPLE.read_text(encoding="utf-8"))

        def environment(unit: str) -> dict[str, str]:
            # As systemd starts a service: a clean environment with the user's home (the
            # guide's useradd makes it the working directory), then the unit's own.
            found = read_unit(unit)
            env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(workdir)}
            env |= found.environment()
            assert env["VOXPOP_CONFIG"] == ETC_TOML
            assert found.one("Service", "EnvironmentFile") == ETC_ENV
            env["VOXPOP_CONFIG"] = str(etc / "voxpop.toml")
            return env | read_env_file(etc / "voxpop.env")

        # Section 3: the schema and the consultations, with the services' settings.
        for args in (["db", "upgrade"], ["survey", "load", str(ROOT / "surveys" / "examples")]):
            subprocess.run(
                [str(VENV_BIN / "voxpop"), *args],
                env=environment("voxpop-dispatch.service"),
                cwd=workdir,
                check=True,
                capture_output=True,
            )

        # Section 4: the three services.
        logs = {unit: tmp_path / f"{unit}.log" for unit in UNITS}
        # Type=notify: systemd counts the web service started when gunicorn says READY=1.
        assert read_unit("voxpop-web.service").one("Service", "Type") == "notify"
        notify = up.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(60)
        for unit in UNITS:
            env = environment(unit)
            if unit == "voxpop-web.service":
                env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
            up.enter_context(service(unit, env, workdir, logs[unit]))
        assert b"READY=1" in notify.recv(4096).split(b"\n")
        port = wait_for(logs["voxpop-web.service"], r"Listening at: http://127\.0\.0\.1:(\d+)")
        wait_for(logs["voxpop-dispatch.service"], "dispatching")
        wait_for(logs["voxpop-scheduler.service"], "scheduler starting")
        web = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while get_status(f"{web}/healthz") != 200:
            assert time.monotonic() < deadline, "gunicorn never answered /healthz"
            time.sleep(0.05)

        form = harness.sms_form(CITIZEN, "PARK")
        signed = harness.twilio_headers(twilio.auth_token, "/webhooks/twilio/sms", form)
        sms = post(
            f"{web}/webhooks/twilio/sms",
            urlencode(form).encode(),
            signed | {"Content-Type": "application/x-www-form-urlencoded"},
        )
        chat = post(
            f"{web}/webhooks/telegram",
            json.dumps({"update_id": 1, **message_update(CHAT_ID, "/start PARK")}).encode(),
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": webhook_secret},
        )
        simulator = get_status(f"{web}/simulator")
        deadline = time.monotonic() + 30
        while not (twilio.calls_to("messages.create") and telegram.calls_to("sendMessage")):
            assert time.monotonic() < deadline, logs["voxpop-dispatch.service"].read_text()
            time.sleep(0.05)

    assert (sms, chat, simulator) == (200, 200, 404)
    texted = twilio.calls_to("messages.create")[0].params
    assert (texted["To"], texted["From"]) == (CITIZEN, settings.twilio.sms_from)
    assert "Central Park" in texted["Body"]
    assert telegram.calls_to("sendMessage")[0].params["chat_id"] in (CHAT_ID, str(CHAT_ID))
    for log in logs.values():  # stopped cleanly (checked on the way out); nothing personal
        said = log.read_text(encoding="utf-8", errors="replace")
        assert CITIZEN.removeprefix("+") not in said
        assert str(CHAT_ID) not in said


@pytest.mark.parametrize("name", ["voxpop-web.service", "voxpop-scheduler.service"])
def test_a_service_started_before_the_upgrade_says_so_and_stops(name: str, tmp_path: Path) -> None:
    # The guide's promise: a forgotten `voxpop db upgrade` shows in the journal, and systemd
    # (Restart=always) tries again until it is done.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": f"sqlite:///{tmp_path / 'voxpop.db'}",
    }
    command = local_command(read_unit(name).exec_start())
    if "--bind" in command:
        command[command.index("--bind") + 1] = "127.0.0.1:0"

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode != 0
    assert "run `voxpop db upgrade` first" in done.stderr
