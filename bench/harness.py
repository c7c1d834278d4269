"""What the server benches share: a fresh database, the environment that points Voxpop at the
loopback fakes, gunicorn and ``voxpop serve`` as child processes, and signed Twilio webhooks.

Everything listens on 127.0.0.1 only. Configuration goes to the children as
``VOXPOP_<SECTION>__<KEY>`` variables with ``VOXPOP_CONFIG`` set to the null device, so a
``voxpop.toml`` in the working directory never leaks into a measurement.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO
from urllib.error import URLError
from urllib.parse import parse_qsl

from sqlalchemy import text
from twilio.request_validator import RequestValidator

from bot.config import Config, DatabaseConfig, DispatchConfig, TelegramConfig, TwilioConfig
from bot.runtime import build_runtime
from bot.service import read_survey_sources
from storage.db import make_engine, with_schema
from storage.migrate import upgrade
from surveys.loader import EXAMPLES_DIR
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PUBLIC_URL = "https://voxpop.example.city"
SMS_FROM = "+15555550199"
TELEGRAM_SECRET = "bench-webhook-secret"
#: The webhook bench's baseline: a Flask route that does nothing (:mod:`bench.webhook_app`).
NOOP_PATH = "/bench/noop"
#: The least a signed SMS reply costs in this stack: the SDK's signature check, then the
#: statements of a reply on the bare driver (:mod:`bench.webhook_app`).
FLOOR_PATH = "/bench/floor"
#: Inbound SMS as Twilio posts it (a real payload; From, Body and the ids are replaced).
SMS_FIXTURE = ROOT / "tests" / "channels" / "fixtures" / "twilio" / "sms_inbound.txt"
#: A whole consultation as a citizen texts it: the keyword, then one answer per question.
CONSULTATION = ("PARK", "2", "1,3", "4", "yes", "1980", "More benches by the pond")
#: Answers stored by one CONSULTATION (visits, activities, clean, playground, year, idea;
#: a question added after these is asked but left unanswered).
ANSWERS_PER_CONSULTATION = 6
#: Any sending limit ([telegram] messages_per_second...) is set this high: the benches
#: measure our overhead, not the provider's allowance.
UNLIMITED = "1000000"


def phone(i: int) -> str:
    """A distinct sender number per ``i``: Belgian mobile numbers, which ``phonenumbers``
    knows as valid (Voxpop answers only real phone numbers; the +1 555 fiction range has
    only a hundred)."""
    return f"+3247{i:07d}"


#: The PostgreSQL server for ``--database postgresql``: as the tests find it.
POSTGRES_URL = os.environ.get("VOXPOP_TEST_POSTGRES_URL") or (
    "postgresql+psycopg://root@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def database(kind: str, directory: str) -> Iterator[str]:
    """A fresh database URL: a SQLite file in ``directory``, or a throwaway PostgreSQL
    schema (dropped afterwards); migrated, with the example surveys."""
    if kind == "sqlite":
        url = f"sqlite:///{directory}/bench.db"
        prepare_db(url)
        yield url
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database {kind!r}: sqlite or postgresql")
    schema = f"voxpop_bench_{os.getpid()}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = with_schema(POSTGRES_URL, schema)
        prepare_db(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def prepare_db(url: str) -> None:
    """Migrate an empty database and load the example surveys (central-park, ...)."""
    upgrade(url)
    runtime = build_runtime(Config(database=DatabaseConfig(url=url)))
    try:
        runtime.service.load_surveys(read_survey_sources([str(EXAMPLES_DIR)]))
    finally:
        runtime.close()


def unthrottled() -> dict[str, str]:
    """``VOXPOP_…`` variables lifting every per-second sending limit the config knows."""
    env: dict[str, str] = {}
    for section, kind in (("telegram", TelegramConfig), ("twilio", TwilioConfig)):
        for f in fields(kind):
            if f.name.endswith("per_second"):
                env[f"VOXPOP_{section.upper()}__{f.name.upper()}"] = UNLIMITED
    for f in fields(DispatchConfig):
        if f.name.endswith("per_second"):
            env[f"VOXPOP_DISPATCH__{f.name.upper()}"] = UNLIMITED
    return env


def voxpop_env(
    db_url: str,
    *,
    twilio: FakeTwilio | None = None,
    telegram: FakeTelegram | None = None,
    log_level: str = "INFO",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a Voxpop child process aimed at the given fakes."""
    env = {
        **os.environ,
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_LOGGING__LEVEL": log_level,
        "VOXPOP_SERVER__PUBLIC_URL": PUBLIC_URL,
        "VOXPOP_SERVER__SIMULATOR": "false",
        **unthrottled(),
    }
    if twilio is not None:
        env |= {
            "VOXPOP_TWILIO__ACCOUNT_SID": twilio.account_sid,
            "VOXPOP_TWILIO__AUTH_TOKEN": twilio.auth_token,
            "VOXPOP_TWILIO__API_BASE_URL": twilio.url,
            "VOXPOP_TWILIO__SMS_FROM": SMS_FROM,
        }
    if telegram is not None:
        env |= {
            "VOXPOP_TELEGRAM__TOKEN": telegram.token,
            "VOXPOP_TELEGRAM__WEBHOOK_SECRET": TELEGRAM_SECRET,
            "VOXPOP_TELEGRAM__API_BASE_URL": telegram.api_root,
        }
    return env | dict(extra or {})


# --- signed Twilio webhooks -------------------------------------------------------------------

_sids = itertools.count(1)


@functools.cache
def _fixture_form() -> dict[str, str]:
    return dict(parse_qsl(SMS_FIXTURE.read_text(encoding="utf-8").strip(), keep_blank_values=True))


def sms_form(sender: str, text: str) -> dict[str, str]:
    """The form of an inbound SMS from ``sender``, with a fresh MessageSid."""
    form = dict(_fixture_form())
    sid = f"SM{next(_sids):032x}"
    form |= {"From": sender, "Body": text, "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid}
    return form


def twilio_headers(auth_token: str, path: str, form: Mapping[str, str]) -> dict[str, str]:
    """The headers Twilio sends with ``form``, signed over ``PUBLIC_URL + path``."""
    signature = RequestValidator(auth_token).compute_signature(PUBLIC_URL + path, dict(form))
    return {
        "X-Twilio-Signature": signature,
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
        "I-Twilio-Idempotency-Token": form["MessageSid"],
    }


# --- child servers ----------------------------------------------------------------------------


@dataclass
class Server:
    """A child process serving HTTP on ``port``; its output goes to ``log``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def _wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RuntimeError(f"server did not start (looked for {pattern!r}); its output:\n{tail}")


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    """Until ``url/healthz`` answers 200."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@contextlib.contextmanager
def gunicorn(
    app: str, env: Mapping[str, str], log: Path, *, workers: int = 2, extra: tuple[str, ...] = ()
) -> Iterator[Server]:
    """``gunicorn app`` with ``workers`` workers on a free loopback port."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        # Settings every supported gunicorn accepts (a file ignores the names it does not know).
        "--config",
        "python:bench.gunicorn_conf",
        "--workers",
        str(workers),
        "--bind",
        f"{HOST}:0",
        *extra,
        app,
    ]
    with _child(command, env, log) as process:
        port = int(_wait_for(log, r"Listening at: http://127\.0\.0\.1:(\d+)", process, 30))
        server = Server(process, port, log)
        wait_healthy(server.url)
        yield server


@contextlib.contextmanager
def voxpop_serve(env: Mapping[str, str], log: Path, port: int) -> Iterator[Server]:
    """``voxpop serve`` (waitress and the dispatcher thread) on ``port``."""
    command = [sys.executable, "-m", "bot.cli.main", "serve", "--host", HOST, "--port", str(port)]
    with _child(command, env, log) as process:
        server = Server(process, port, log)
        wait_healthy(server.url)
        yield server


@contextlib.contextmanager
def voxpop_dispatch(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``voxpop dispatch``, until the block ends."""
    command = [sys.executable, "-m", "bot.cli.main", "dispatch"]
    with _child(command, env, log) as process:
        _wait_for(log, r"(dispatching)", process, 30)
        yield process


@contextlib.contextmanager
def _child(
    command: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    out: IO[bytes]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            # Unbuffered: the start-up lines waited for must reach the log at once.
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
