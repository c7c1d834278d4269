"""Faults: a provider failing one send in five and a dispatcher killed with SIGKILL, again and
again, while it works through thousands of messages. Nothing may be lost.

``run`` queues ``messages`` SMS in the outbox, starts a loopback fake Twilio that answers 20%
of calls with a 5xx, a 429 or a timeout, then starts ``voxpop dispatch`` and kills it with
SIGKILL ``kills`` times at random moments, and finally lets one dispatcher finish. It reports
how every message ended (``sent``, ``failed``, ``unknown``), how many were lost (none may be),
and how many reached the provider more than once (the documented at-least-once window).
The baseline printed alongside is the same run with no faults and no kills.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from storage.db import make_engine, session_factory, transaction
from storage.migrate import upgrade
from storage.models import Message
from tests.fakes.twilio_api import FakeTwilio

ROOT = Path(__file__).resolve().parents[1]
FINAL = ("sent", "failed", "unknown")


@dataclass(frozen=True)
class Report:
    messages: int
    statuses: dict[str, int]
    lost: int
    duplicates: int
    provider_calls: int
    faults: int
    kills: int
    seconds: float


def _queue(db_url: str, messages: int) -> None:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    rows = [
        {
            "direction": "out",
            "channel": "sms",
            "address": f"+3247{i:07d}",
            "kind": "reply",
            "text": f"message {i}",
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(messages)
    ]
    try:
        with transaction(session_factory(engine)) as s:
            for start in range(0, len(rows), 1000):
                s.execute(insert(Message), rows[start : start + 1000])
    finally:
        engine.dispose()


def _statuses(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine), read_only=True) as s:
            found = s.execute(
                select(Message.status, func.count())
                .where(Message.direction == "out")
                .group_by(Message.status)
            )
            return {status: count for status, count in found}
    finally:
        engine.dispose()


def run(
    db_url: str,
    *,
    messages: int = 5000,
    kills: int = 10,
    failure_rate: float = 0.2,
    seed: int = 1,
    deadline: float = 600.0,
) -> Report:
    """One fault run on ``db_url`` (an empty, migrated database)."""
    rng = random.Random(seed)
    _queue(db_url, messages)
    started = time.perf_counter()
    with FakeTwilio(
        failure_rate=failure_rate,
        seed=seed,
        failure_kinds=("5xx", "429", "timeout"),
        retry_after=1,
        timeout_delay=1.0,
    ) as twilio:
        env = {
            **os.environ,
            "VOXPOP_CONFIG": os.devnull,
            "VOXPOP_DATABASE__URL": db_url,
            "VOXPOP_LOGGING__LEVEL": "ERROR",
            "VOXPOP_SERVER__PUBLIC_URL": "https://voxpop.example.city",
            "VOXPOP_TWILIO__ACCOUNT_SID": twilio.account_sid,
            "VOXPOP_TWILIO__AUTH_TOKEN": twilio.auth_token,
            "VOXPOP_TWILIO__API_BASE_URL": twilio.url,
            "VOXPOP_TWILIO__SMS_FROM": "+15555550199",
            # The fault run measures what survives, not Twilio's pace.
            "VOXPOP_TWILIO__SMS_SEGMENTS_PER_SECOND": "100000",
            # Short leases and waits, so that a run of minutes covers hours of retries.
            "VOXPOP_DISPATCH__LEASE_SECONDS": "5",
            "VOXPOP_DISPATCH__MAX_ATTEMPTS": "10",
            "VOXPOP_DISPATCH__BASE_BACKOFF_SECONDS": "0.05",
            "VOXPOP_DISPATCH__MAX_BACKOFF_SECONDS": "0.5",
            "VOXPOP_DISPATCH__SEND_TIMEOUT_SECONDS": "0.5",
            "VOXPOP_DISPATCH__IDLE_POLL_SECONDS": "0.05",
        }
        command = [sys.executable, "-m", "bot.cli.main", "dispatch"]

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        for _ in range(kills):
            dispatcher = start()
            time.sleep(rng.uniform(0.8, 2.5))
            dispatcher.send_signal(signal.SIGKILL)
            dispatcher.wait()
        dispatcher = start()
        try:
            while time.perf_counter() - started < deadline:
                statuses = _statuses(db_url)
                if set(statuses) <= set(FINAL):
                    break
                time.sleep(0.5)
        finally:
            dispatcher.terminate()
            dispatcher.wait(10)
        seconds = time.perf_counter() - started
        bodies = Counter(m["body"] for m in twilio.messages)
        faults = sum(1 for c in twilio.calls if c.fault)
        calls = len(twilio.calls)
    statuses = _statuses(db_url)
    return Report(
        messages=messages,
        statuses=statuses,
        lost=sum(n for status, n in statuses.items() if status not in FINAL),
        duplicates=sum(n - 1 for n in bodies.values() if n > 1),
        provider_calls=calls,
        faults=faults,
        kills=kills,
        seconds=seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/faults.db"
        upgrade(url)
        report = run(url, messages=args.messages, kills=args.kills)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/clean.db"
        upgrade(url)
        clean = run(url, messages=args.messages, kills=0, failure_rate=0.0)
    print(
        f"delivery faults: {report.messages} messages, {report.kills} SIGKILLs, "
        f"{report.faults} provider faults in {report.provider_calls} calls: "
        f"{report.statuses}, lost {report.lost}, duplicates {report.duplicates}, "
        f"{report.seconds:.1f} s (baseline without faults {clean.seconds:.1f} s; "
        f"ratio {report.seconds / clean.seconds:.1f}x)"
    )


if __name__ == "__main__":
    main()
