"""The WSGI entry point for gunicorn (:mod:`bot.wsgi`): built from the environment's config,
refusing a database without the schema or a half-configured channel, served by gunicorn."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.request import ProxyHandler, build_opener

import pytest
from flask import Flask

from bench import harness
from bot import wsgi
from bot.config import ConfigError
from bot.runtime import Runtime
from bot.service import read_survey_sources
from surveys.loader import EXAMPLES_DIR
from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No config file and no VOXPOP_* settings but those a test sets."""
    for name in list(os.environ):
        if name.startswith("VOXPOP_") and "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXPOP_CONFIG", os.devnull)
    monkeypatch.setenv("VOXPOP_LOGGING__LEVEL", "WARNING")
    return monkeypatch


def _close(app: Flask) -> None:
    runtime = app.extensions["voxpop.runtime"]
    assert isinstance(runtime, Runtime)
    runtime.close()


def test_the_app_is_built_from_the_environment(
    environment: pytest.MonkeyPatch, db_url: str
) -> None:
    environment.setenv("VOXPOP_DATABASE__URL", db_url)

    app = wsgi.build_app()
    try:
        answer = app.test_client().get("/healthz")
    finally:
        _close(app)

    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}


def test_the_production_app_serves_the_console_and_says_how_to_make_the_first_admin(
    environment: pytest.MonkeyPatch, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    environment.setenv("VOXPOP_DATABASE__URL", db_url)
    with caplog.at_level(logging.WARNING, logger="bot.wsgi"):
        app = wsgi.build_app()
    try:
        client = app.test_client()
        assert client.get("/").headers["Location"] == "/login?next=/"
        assert "Sign in to Voxpop" in client.get("/login").get_data(as_text=True)
    finally:
        _close(app)
    assert "voxpop staff add EMAIL --role admin" in caplog.text


@pytest.fixture
def fresh_module() -> Iterator[None]:
    """``bot.wsgi`` as if just imported: no app built yet, and none left behind."""
    vars(wsgi).pop("app", None)
    wsgi._app = None
    try:
        yield
    finally:
        built = vars(wsgi).pop("app", None)
        wsgi._app = None
        if isinstance(built, Flask):
            _close(built)


@pytest.mark.usefixtures("fresh_module")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_app_is_built_once_on_first_use(environment: pytest.MonkeyPatch, db_url: str) -> None:
    environment.setenv("VOXPOP_DATABASE__URL", db_url)

    first = wsgi.app
    again = wsgi.app

    assert first is again
    assert first.test_client().get("/healthz").status_code == 200


def test_a_database_without_the_schema_is_refused(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment.setenv("VOXPOP_DATABASE__URL", f"sqlite:///{tmp_path}/empty.db")

    with pytest.raises(ConfigError, match="run `voxpop db upgrade` first"):
        wsgi.build_app()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_half_configured_channel_is_refused(environment: pytest.MonkeyPatch, db_url: str) -> None:
    environment.setenv("VOXPOP_DATABASE__URL", db_url)
    environment.setenv("VOXPOP_SERVER__PUBLIC_URL", "https://voxpop.example.city")
    environment.setenv("VOXPOP_TELEGRAM__TOKEN", "7000000001:AAF-test-token")

    with pytest.raises(ConfigError, match="webhook_secret is required"):
        wsgi.build_app()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_gunicorn_serves_it(db_url: str, tmp_path: Path) -> None:
    # gunicorn ignores settings it does not know: this works with and without a control socket.
    settings = tmp_path / "gunicorn.conf.py"
    settings.write_text("control_socket_disable = True\n", encoding="utf-8")
    env = {
        **os.environ,
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_LOGGING__LEVEL": "WARNING",
    }
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--config", str(settings)]
    command += ["--workers", "1", "--bind", "127.0.0.1:0", "bot.wsgi:app"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        port = _listening_port(log, server)
        opener = build_opener(ProxyHandler({}))  # loopback, whatever the environment says
        deadline = time.monotonic() + 20
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    status, body = answer.status, answer.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)

    assert status == 200
    assert b'"status":"ok"' in body.replace(b" ", b"")


def _listening_port(log: Path, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"gunicorn did not start:\n{log.read_text()[-2000:]}")


def test_a_webhook_answered_here_wakes_voxpop_dispatch_in_another_process(
    environment: pytest.MonkeyPatch, db_url: str, tmp_path: Path
) -> None:
    # gunicorn's workers start no dispatcher: `voxpop dispatch` runs beside them. With its
    # idle poll at a minute, only the outbox bell rung after the webhook's commit can make
    # the reply leave within seconds.
    with FakeTwilio(keep_alive=True) as twilio:
        settings = {
            "VOXPOP_DATABASE__URL": db_url,
            "VOXPOP_SERVER__PUBLIC_URL": harness.PUBLIC_URL,
            "VOXPOP_TWILIO__ACCOUNT_SID": twilio.account_sid,
            "VOXPOP_TWILIO__AUTH_TOKEN": twilio.auth_token,
            "VOXPOP_TWILIO__API_BASE_URL": twilio.url,
            "VOXPOP_TWILIO__SMS_FROM": harness.SMS_FROM,
            "VOXPOP_DISPATCH__IDLE_POLL_SECONDS": "60",
        }
        for name, value in settings.items():
            environment.setenv(name, value)
        app = wsgi.build_app()
        log = tmp_path / "dispatch.log"
        with log.open("wb") as out:
            dispatcher = subprocess.Popen(
                [sys.executable, "-m", "bot.cli.main", "dispatch"],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        try:
            runtime = app.extensions["voxpop.runtime"]
            runtime.service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
            _wait_for_line(log, dispatcher, "dispatching")
            time.sleep(0.5)  # past its first claim: from here it waits a minute, or a ring
            form = harness.sms_form("+15555550123", "PARK")
            headers = harness.twilio_headers(twilio.auth_token, "/webhooks/twilio/sms", form)
            posted = time.monotonic()
            answer = app.test_client().post("/webhooks/twilio/sms", data=form, headers=headers)
            assert answer.status_code == 200
            while not twilio.calls_to("messages.create"):
                assert time.monotonic() - posted < 10, f"no reply sent:\n{log.read_text()}"
                time.sleep(0.02)
            waited = time.monotonic() - posted
        finally:
            dispatcher.send_signal(signal.SIGTERM)
            dispatcher.wait(timeout=20)
            _close(app)
    first = twilio.calls_to("messages.create")[0]
    assert first.params["To"] == "+15555550123"
    assert "Central Park" in first.params["Body"]
    assert waited < 5, f"the reply left after {waited:.1f} s: the dispatcher was not woken"


def _wait_for_line(log: Path, process: subprocess.Popen[bytes], text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"voxpop dispatch did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
