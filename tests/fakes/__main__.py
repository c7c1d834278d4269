"""``python -m tests.fakes`` (``make phone``): try the real channels without any account.

Starts loopback fakes of Telegram and Twilio, writes ``fake-channels.toml`` (a config that
points Voxpop at them), starts ``voxpop serve`` with it (unless ``--no-serve``: then start it
yourself with ``voxpop --config fake-channels.toml serve``), and reads citizens' messages from
the terminal or a pipe (see :mod:`tests.fakes.phone`)::

    printf 'sms +32470000091 LIGHTS\\nsms +32470000091 1\\n' | .venv/bin/python -m tests.fakes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.error import URLError
from urllib.request import ProxyHandler, build_opener

from sqlalchemy import select

from storage.db import make_engine
from storage.models import Message
from tests.fakes.phone import QUIET, Phone, write_config
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

HELP = """Type a citizen's message as: CHANNEL ADDRESS TEXT
  telegram 4242 PARK           (a Telegram chat id; "/start PARK" works too)
  tap 4242 2                   (taps button 2 of the last keyboard sent to chat 4242)
  sms +32470000091 LIGHTS
  whatsapp +32470000002 PARK
  wait 90                      (shows what the bot sends on its own: a push, a reminder)
Ctrl-D or "quit" to stop."""


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    # Not make run's 8080: both may run at once, each with its own database.
    parser.add_argument("--voxpop", default="http://127.0.0.1:8090", help="Voxpop's address")
    parser.add_argument("--config", default="fake-channels.toml", help="the config to write")
    parser.add_argument("--database", default="sqlite:///voxpop-fakes.db", help="for Voxpop")
    parser.add_argument(
        "--no-serve", action="store_true", help="do not start voxpop serve (it runs already)"
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET,
        help="seconds of silence that end the replies when Voxpop's outbox cannot be read",
    )
    return parser.parse_args()


def _outbox_sending(database: str) -> Callable[[], bool]:
    """Whether Voxpop's outbox still holds a reply that is queued or on its way."""
    engine = make_engine(database)
    waiting = (
        select(Message.id)
        .where(Message.direction == "out", Message.status.in_(("queued", "sending")))
        .limit(1)
    )

    def sending() -> bool:
        with engine.connect() as conn:
            return conn.execute(waiting).first() is not None

    return sending


@contextlib.contextmanager
def _voxpop(config: Path, url: str) -> Iterator[None]:
    """``voxpop serve`` with ``config``, until the block ends."""
    voxpop = Path(sys.executable).with_name("voxpop")
    command = [str(voxpop), "--config", str(config)]
    # The server shares the terminal with the phone: only its warnings, unless asked.
    env = {"VOXPOP_LOGGING__LEVEL": "WARNING"} | dict(os.environ)
    subprocess.run([*command, "db", "upgrade"], check=True, env=env)
    server = subprocess.Popen([*command, "serve"], env=env)
    try:
        opener = build_opener(ProxyHandler({}))
        # Generous: a cold start on a busy machine is slow; a server that exits is seen at once.
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                # Its own server, not another one answering on the same port.
                raise SystemExit("voxpop serve did not start; see its messages above")
            try:
                with opener.open(url.rstrip("/") + "/healthz", timeout=1):
                    pass
            except (URLError, OSError):
                time.sleep(0.2)
                continue
            time.sleep(0.3)  # a server that failed to bind has exited by now
            if server.poll() is None:
                break
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    args = _arguments()
    config = Path(args.config)
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        phone = Phone(
            args.voxpop,
            telegram,
            twilio,
            secrets.token_urlsafe(24),
            quiet=args.quiet,
            sending=_outbox_sending(args.database),
        )
        write_config(phone, config, args.database)
        print(f"Fake Telegram at {telegram.url}, fake Twilio at {twilio.url}.")
        print(f"Wrote {config} for Voxpop at {args.voxpop}.")
        serving = contextlib.nullcontext() if args.no_serve else _voxpop(config, args.voxpop)
        with serving:
            interactive = sys.stdin.isatty()
            if interactive:
                if args.no_serve:
                    print(
                        f"Start Voxpop: {Path(sys.executable).with_name('voxpop')} "
                        f"--config {config} serve"
                    )
                print(HELP)
            while True:
                if interactive:
                    print("phone> ", end="", flush=True)
                line = sys.stdin.readline()
                if not line or line.strip() in ("quit", "exit"):
                    break
                phone.handle(line.strip())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
