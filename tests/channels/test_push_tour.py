"""The README's push tour, as a new user runs it: the test phone (``python -m tests.fakes``)
runs ``voxpop serve`` on the fake Telegram and Twilio; staff import the example contacts,
push a consultation to the north district with reminders, some citizens answer, the
consultation closes, and the outcome reaches those who took part."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.models import PushRecipient
from tests.channels.test_serve import _free_port
from tests.fakes.phone import TEMPLATE_SIDS

ROOT = Path(__file__).resolve().parents[2]
VOXPOP = str(Path(sys.executable).with_name("voxpop"))


class Phone:
    """The test phone as a child process, with its output collected as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def until(self, marker: str, timeout: float = 300) -> str:
        """Everything printed until a line equal to ``marker``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.lines.append(line)
            if line == marker:
                return "\n".join(seen)
            seen.append(line)
        raise AssertionError(f"no {marker!r} within {timeout} s:\n" + "\n".join(self.lines))

    def send(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{line}\n" for line in lines))
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def tour(db_url: str, tmp_path: Path) -> Iterator[tuple[Phone, dict[str, str], Path]]:
    config = tmp_path / "fake-channels.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXPOP_")}
    env |= {"VOXPOP_SCHEDULER__TICK_SECONDS": "1", "VOXPOP_LOGGING__LEVEL": "WARNING"}
    url = f"http://127.0.0.1:{_free_port()}"
    phone = Phone(["--voxpop", url, "--config", str(config), "--database", db_url], env)
    try:
        phone.send("echo ready")
        phone.until("ready")
        yield phone, env, config
    finally:
        phone.close()


def _voxpop(env: dict[str, str], config: Path, *args: str) -> str:
    done = subprocess.run(
        [VOXPOP, "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_push_tour(
    tour: tuple[Phone, dict[str, str], Path], db: sessionmaker[Session], tmp_path: Path
) -> None:
    phone, env, config = tour
    imported = _voxpop(env, config, "contacts", "import", "surveys/examples/contacts.csv")
    assert "12 created" in imported
    pushed = _voxpop(
        env,
        config,
        "push",
        "street-lighting",
        "--at",
        "now",
        "--where",
        "district=north",
        "--quiet-hours",
        "",
        "--remind-after",
        "6s",
        "--reminders",
        "2",
    )
    assert "recipients: 4" in pushed

    # Each step waits for what it needs to see, however long a loaded machine takes.
    phone.send(
        "await (+32470000001) De stad",
        "await (+32470000005) The city",
        "await (whatsapp:+32470000006) [template",
        "echo invited",
    )
    invited = phone.until("invited")
    # In their own language; WhatsApp (no message from them in 24 hours) gets the template.
    assert "bot> (+32470000001) De stad bekijkt haar straatverlichting. 4 korte vragen." in invited
    assert "bot> (+32470000005) The city is checking its street lights. 4 quick questions." in (
        invited
    )
    # Promise 1: the Dutch WhatsApp contact gets the Dutch template, with a Dutch title.
    dutch = TEMPLATE_SIDS["nl"]
    assert (
        f'bot> (whatsapp:+32470000006) [template {dutch}: {{"1": "Straatverlichting", '
        '"2": "LIGHTS"}]'
    ) in invited.splitlines()

    phone.send("whatsapp +32470000006 ok", "echo go-ahead")
    # The reply to the template is the go-ahead: the first question follows.
    assert "bot> (whatsapp:+32470000006) Is er bij u in de buurt een straat" in phone.until(
        "go-ahead"
    )

    # A slow typist: the first reminder comes before they answer; they answer at once then.
    phone.send("await (+32470000001) Herinnering: Straatverlichting", "echo reminded once")
    phone.until("reminded once")
    phone.send("sms +32470000001 1", "sms +32470000001 Kerkstraat", "echo answered")
    assert "bot> (+32470000001) Welke straat?" in phone.until("answered")

    # Promise 2: who stopped halfway gets a nudge, 6 s after their last answer.
    phone.send("await (+32470000001) U bent halverwege Straatverlichting.", "echo nudged")
    phone.until("nudged")
    with transaction(db, read_only=True) as s:
        sent = {r.address: r.reminders_sent for r in s.scalars(select(PushRecipient))}
    assert sent["+32470000001"] == 2

    shown = _voxpop(env, config, "push", "show", "1")
    assert "  all                4       4       0       0      4         4      0" in shown

    assert "closes at" in _voxpop(env, config, "survey", "close", "street-lighting")
    outcome = tmp_path / "outcome.toml"
    outcome.write_text(
        'text.en = "Thank you! 40 new lamps in spring."\n'
        'text.nl = "Bedankt! In de lente komen er 40 lampen bij."\n'
    )
    published = _voxpop(
        env,
        config,
        "outcome",
        "publish",
        "street-lighting",
        "--file",
        str(outcome),
        "--quiet-hours",
        "",
    )
    assert "push 2 sends it to 1 person who took part" in published
    phone.send(
        "await (+32470000001) Bedankt! In de lente",
        "sms +32470000001 RESULTATEN",
        "sms +32470000005 1",
        "echo closed",
    )
    closed = phone.until("closed")
    # Who never answered was reminded (long before: the reminders are due with the first).
    assert "bot> (+32470000005) A reminder: Street lighting is waiting for your answers." in (
        "\n".join(phone.lines)
    )
    assert "bot> (+32470000001) Bedankt! In de lente komen er 40 lampen bij." in closed
    assert closed.count("Bedankt! In de lente") == 2  # the push, then RESULTATEN
    assert "bot> (+32470000005) Sorry, this consultation is closed." in closed
    assert "1         1      0" in _voxpop(env, config, "push", "show", "2")
