"""Inbound webhook throughput: signed Twilio SMS replies through gunicorn, on SQLite.

gunicorn serves :mod:`bench.webhook_app` (Voxpop's production app from :mod:`bot.wsgi`, with a
no-op route added) with 2 workers, on a fresh SQLite database with the example surveys, and
Twilio configured against a loopback fake (nothing is sent: no dispatcher runs). The client,
this process, plays many citizens at once, each texting a whole consultation (the keyword,
then one answer per question, each after the previous answer came back), every request a
properly signed Twilio webhook. Each one is verified, parsed, answered by the engine and
stored with its replies in one transaction.

The baseline, in the same server and the same run, is the same requests posted to the no-op
Flask route; it is measured before and after the webhooks and averaged. The ratio webhook /
no-op is the figure (target: at least 0.5). Every answer must be 200, and the database must
hold every inbound message, every answer and one consultation per citizen.

A reference in the same run, the *floor*: other citizens' consultations posted to
``/bench/floor`` (:mod:`bench.webhook_app`), which checks the signature with the same SDK
validator and runs the statements of a reply on the bare ``sqlite3`` driver, with no ORM and
no engine. Its ratio to the no-op route is what any Python implementation of this webhook
would at best reach on this server.

``--database postgresql`` runs the same on a throwaway schema of the local PostgreSQL server
(``$VOXPOP_TEST_POSTGRES_URL``, as the tests), without the floor, which speaks SQLite's driver.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bench import harness
from bench.httpload import Load, encode_post, run_conversations
from storage.db import make_engine, session_factory, transaction
from storage.models import AnswerRow, Message, SessionRow
from tests.fakes.twilio_api import FakeTwilio

WEBHOOK_PATH = "/webhooks/twilio/sms"
#: The floor's citizens are numbered from here (:func:`bench.harness.phone`).
_FLOOR = 1_000_000


@dataclass(frozen=True)
class Result:
    webhook: Load
    #: None on PostgreSQL: the floor route speaks SQLite's bare driver.
    floor: Load | None
    noop_before: Load
    noop_after: Load
    stored: dict[str, int]
    expected: dict[str, int]
    workers: int
    worker_class: str
    database: str

    @property
    def noop_per_second(self) -> float:
        return (self.noop_before.per_second + self.noop_after.per_second) / 2

    @property
    def ratio(self) -> float:
        return self.webhook.per_second / self.noop_per_second

    @property
    def floor_ratio(self) -> float | None:
        return None if self.floor is None else self.floor.per_second / self.noop_per_second


def _conversations(port: int, auth_token: str, senders: range, path: str) -> list[list[bytes]]:
    """One signed consultation per sender, each request posted to ``path``."""
    found = []
    for i in senders:
        requests = []
        for text in harness.CONSULTATION:
            form = harness.sms_form(harness.phone(i), text)
            # Signed for the real route, also when posted to the no-op one: same bytes.
            headers = harness.twilio_headers(auth_token, WEBHOOK_PATH, form)
            requests.append(encode_post(harness.HOST, port, path, form, headers))
        found.append(requests)
    return found


def _stored(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with transaction(session_factory(engine), read_only=True) as s:
            inbound = s.scalar(select(func.count()).where(Message.direction == "in"))
            outbound = s.scalar(select(func.count()).where(Message.direction == "out"))
            answers = s.scalar(select(func.count()).select_from(AnswerRow))
            sessions = s.scalar(select(func.count()).select_from(SessionRow))
    finally:
        engine.dispose()
    return {
        "inbound": inbound or 0,
        "outbound": outbound or 0,
        "answers": answers or 0,
        "sessions": sessions or 0,
    }


def run(
    senders: int = 600,
    *,
    concurrency: int = 8,
    workers: int = 2,
    worker_class: str = "sync",
    threads: int = 1,
    log_level: str = "INFO",
    warmup: int = 20,
    database: str = "sqlite",
) -> Result:
    with (
        tempfile.TemporaryDirectory() as tmp,
        harness.database(database, tmp) as db_url,
        FakeTwilio(keep_alive=True) as twilio,
    ):
        with_floor = database == "sqlite"
        env = harness.voxpop_env(db_url, twilio=twilio, log_level=log_level)
        extra = ("--worker-class", worker_class, "--threads", str(threads))
        log = Path(tmp) / "gunicorn.log"
        with harness.gunicorn(
            "bench.webhook_app:app", env, log, workers=workers, extra=extra
        ) as server:
            token, port = twilio.auth_token, server.port
            warm = range(senders, senders + warmup)
            measured = range(senders)
            # The floor's citizens are others: its rows are not a consultation the app runs.
            floor_warm, floor_measured = (
                range(r.start + _FLOOR, r.stop + _FLOOR) for r in (warm, measured)
            )
            routes = [(harness.NOOP_PATH, warm), (WEBHOOK_PATH, warm)]
            if with_floor:
                routes.append((harness.FLOOR_PATH, floor_warm))
            # Warm the routes up: imports, caches, database pages, connection pools.
            for path, citizens in routes:
                warmed = run_conversations(
                    harness.HOST, port, _conversations(port, token, citizens, path), concurrency
                )
                _check(warmed, path, log)
            noop_requests = _conversations(port, token, measured, harness.NOOP_PATH)
            webhook_requests = _conversations(port, token, measured, WEBHOOK_PATH)
            noop_before = run_conversations(harness.HOST, port, noop_requests, concurrency)
            webhook = run_conversations(harness.HOST, port, webhook_requests, concurrency)
            floor = None
            if with_floor:
                floor_requests = _conversations(port, token, floor_measured, harness.FLOOR_PATH)
                floor = run_conversations(harness.HOST, port, floor_requests, concurrency)
                _check(floor, harness.FLOOR_PATH, log)
            noop_after = run_conversations(harness.HOST, port, noop_requests, concurrency)
            for load, path in (
                (noop_before, harness.NOOP_PATH),
                (webhook, WEBHOOK_PATH),
                (noop_after, harness.NOOP_PATH),
            ):
                _check(load, path, log)
        people = senders + warmup
        texts = len(harness.CONSULTATION)
        # The floor stores every text as an answer, in one conversation per citizen.
        floors = 1 if with_floor else 0
        expected = {
            "inbound": (1 + floors) * people * texts,
            "answers": people * harness.ANSWERS_PER_CONSULTATION + floors * people * texts,
            "sessions": (1 + floors) * people,
        }
        stored = _stored(db_url)
    for key, count in expected.items():
        if stored[key] != count:
            raise RuntimeError(f"stored {stored[key]} {key}, expected {count}")
    if stored["outbound"] < expected["inbound"]:
        raise RuntimeError(f"only {stored['outbound']} replies for {expected['inbound']} texts")
    return Result(
        webhook, floor, noop_before, noop_after, stored, expected, workers, worker_class, database
    )


def _check(load: Load, path: str, log: Path) -> None:
    if not load.all_ok:
        tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise RuntimeError(
            f"{path}: answers {load.statuses} (first bodies: {load.samples}); server log:\n{tail}"
        )


def report(r: Result) -> str:
    w, n = r.webhook, r.noop_before
    floor = ""
    if r.floor is not None and r.floor_ratio is not None:
        floor = (
            f"; the floor (SDK signature check, bare sqlite3, no engine) "
            f"{r.floor.per_second:,.0f}/s, ratio {r.floor_ratio:.2f}"
        )
    database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[r.database]
    return (
        f"webhook: {w.per_second:,.0f} signed Twilio SMS webhooks/s answered and stored "
        f"({w.requests} in {w.seconds:.1f} s; gunicorn {r.workers} {r.worker_class} workers, "
        f"{database}); no-op Flask route {r.noop_per_second:,.0f}/s "
        f"({r.noop_before.per_second:,.0f} before, {r.noop_after.per_second:,.0f} after); "
        f"ratio {r.ratio:.2f} (target >= 0.5){floor}; all 200, "
        f"stored {r.stored['inbound']} inbound, "
        f"{r.stored['outbound']} replies, {r.stored['answers']} answers; the client used "
        f"{w.client_cpu_seconds / w.seconds:.0%} of a core (no-op: "
        f"{n.client_cpu_seconds / n.seconds:.0%})"
    )


def main(argv: Sequence[str] | None = None, *, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=200 if quick else 600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    result = run(
        args.senders,
        concurrency=args.concurrency,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        log_level=args.log_level,
        database=args.database,
    )
    print(report(result))


if __name__ == "__main__":
    main()
