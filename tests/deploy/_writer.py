"""``python -m tests.deploy._writer URL``: Voxpop at work on a database, for backup tests.

Without ``--hold``: citizens text PARK, one new number after another, through the real
service (each message and its replies in one transaction), printing the count after each,
until stdin closes. With ``--hold``: opens a write transaction, stores a setting in it,
prints ``holding``, and commits only when a line arrives on stdin.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from datetime import UTC, datetime

from sqlalchemy.engine import make_url

from bot.config import Config, DatabaseConfig
from bot.runtime import build_runtime
from messages import Address, InboundMessage
from storage.db import BUSY_TIMEOUT_MS

#: The setting the holding writer stores (committed only when told).
HELD_KEY = "backup-test-held"


def number(i: int) -> str:
    return f"+32470{i:06d}"


def converse(url: str) -> None:
    runtime = build_runtime(Config(database=DatabaseConfig(url=url)))
    closed = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    i = 0
    try:
        while not closed.is_set():
            i += 1
            message = InboundMessage(
                Address("sms", number(i)), "PARK", f"SMbackup{i:024d}", datetime.now(UTC)
            )
            runtime.service.receive(message)
            print(i, flush=True)
    finally:
        runtime.close()


def hold(url: str) -> None:
    database = make_url(url).database
    assert database
    live = sqlite3.connect(database, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    live.execute("BEGIN IMMEDIATE")
    live.execute("INSERT INTO settings (key, value) VALUES (?, 'x')", (HELD_KEY,))
    print("holding", flush=True)
    sys.stdin.readline()
    live.execute("COMMIT")
    live.close()
    print("committed", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hold"]:
        hold(sys.argv[2])
    else:
        converse(sys.argv[1])
