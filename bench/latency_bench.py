"""Reply latency: from the start of a signed Twilio webhook POST to the fake provider receiving
the reply's ``Messages.json`` call.

``voxpop serve`` (waitress, and the dispatcher thread woken after each commit) runs on a fresh
SQLite database with the example surveys and Twilio configured against a loopback fake.
Citizens text whole consultations (the keyword, then one answer per question) at a steady
rate: request ``k`` leaves at ``k / rate`` seconds whatever happened to the others (an open
loop, so a slow answer cannot hide the requests queued behind it), each from its own
connection. Every request gets a reply; its latency is the time from the POST's start to the
fake's first ``Messages.json`` call to that citizen after it. Reported: p50, p99 and max,
and the same for the webhook's own answer.

For comparison, the same load against gunicorn (2 workers, :mod:`bot.wsgi`) with
``voxpop dispatch`` beside it, in another process: the workers ring the outbox bell
(:mod:`storage.outbox_bell`) after each commit that queued a reply, which wakes it.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from bench import harness
from bench.httpload import encode_post
from tests.fakes.twilio_api import FakeTwilio

WEBHOOK_PATH = "/webhooks/twilio/sms"
SETUPS = ("serve", "gunicorn")


class TimedTwilio(FakeTwilio):
    """The fake Twilio, noting when each ``Messages.json`` call arrives and for whom."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self._arrivals_lock = threading.Lock()
        super().__init__(keep_alive=True)  # as the real API: connections are reused

    def handle(self, name: str, request: Request, params: dict[str, Any]) -> Response:
        if name == "messages.create":
            at = time.perf_counter()
            with self._arrivals_lock:
                self.arrivals.setdefault(str(params.get("To", "")), []).append(at)
        return super().handle(name, request, params)


@dataclass(frozen=True)
class Sent:
    sender: str
    started: float
    answered: float
    status: int


@dataclass(frozen=True)
class Result:
    setup: str
    rate: float
    requests: int
    #: Seconds from the POST's start to the reply's provider call, sorted.
    reply: list[float]
    #: Seconds from the POST's start to the webhook's answer, sorted.
    answer: list[float]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of already sorted values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    rank = max(1, round(p / 100 * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _post(port: int, data: bytes) -> int:
    reader, writer = await asyncio.open_connection(harness.HOST, port)
    try:
        writer.write(data)
        head = await reader.readuntil(b"\r\n\r\n")
        lowered = head.lower()
        start = lowered.find(b"\r\ncontent-length:")
        if start >= 0:
            end = lowered.index(b"\r\n", start + 2)
            await reader.readexactly(int(lowered[start + 17 : end]))
        return int(head[9:12])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _steady(port: int, plan: list[tuple[str, bytes]], rate: float) -> list[Sent]:
    sent: list[Sent] = []

    async def one(sender: str, data: bytes) -> None:
        started = time.perf_counter()
        status = await _post(port, data)
        sent.append(Sent(sender, started, time.perf_counter(), status))

    tasks = []
    begin = time.perf_counter()
    for k, (sender, data) in enumerate(plan):
        delay = begin + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(sender, data)))
    await asyncio.gather(*tasks)
    return sent


def _plan(port: int, auth_token: str, senders: int) -> list[tuple[str, bytes]]:
    """Round-robin over the citizens: each sends their next text every ``senders`` requests."""
    plan = []
    for text in harness.CONSULTATION:
        for i in range(senders):
            sender = harness.phone(i)
            form = harness.sms_form(sender, text)
            headers = harness.twilio_headers(auth_token, WEBHOOK_PATH, form)
            plan.append((sender, encode_post(harness.HOST, port, WEBHOOK_PATH, form, headers)))
    return plan


def _replies(sent: list[Sent], arrivals: Mapping[str, list[float]]) -> list[float] | None:
    """Each request's latency to its reply's provider call; ``None`` while one is missing."""
    found = []
    for s in sent:
        times = arrivals.get(s.sender, [])
        at = bisect.bisect_left(times, s.started)
        if at == len(times):
            return None
        found.append(times[at] - s.started)
    return sorted(found)


@contextlib.contextmanager
def _server(setup: str, env: dict[str, str], tmp: Path) -> Iterator[int]:
    if setup == "serve":
        with harness.voxpop_serve(env, tmp / "serve.log", harness.free_port()) as server:
            yield server.port
        return
    with (
        harness.gunicorn("bot.wsgi:app", env, tmp / "gunicorn.log") as server,
        harness.voxpop_dispatch(env, tmp / "dispatch.log"),
    ):
        yield server.port


def run(setup: str = "serve", *, senders: int = 40, rate: float = 20.0) -> Result:
    with tempfile.TemporaryDirectory() as tmp, TimedTwilio() as twilio:
        db_url = f"sqlite:///{tmp}/latency.db"
        harness.prepare_db(db_url)
        env = harness.voxpop_env(db_url, twilio=twilio)
        with _server(setup, env, Path(tmp)) as port:
            plan = _plan(port, twilio.auth_token, senders)
            sent = asyncio.run(_steady(port, plan, rate))
            if any(s.status != 200 for s in sent):
                raise RuntimeError(f"answers: {sorted({s.status for s in sent})}")
            deadline = time.perf_counter() + 10
            while (reply := _replies(sent, twilio.arrivals)) is None:
                if time.perf_counter() > deadline:
                    raise RuntimeError("a reply never reached the provider")
                time.sleep(0.05)
    answer = sorted(s.answered - s.started for s in sent)
    return Result(setup, rate, len(sent), reply, answer)


def report(r: Result) -> str:
    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:.0f}"

    where = (
        "voxpop serve (waitress + woken dispatcher thread)"
        if r.setup == "serve"
        else "gunicorn 2 workers + voxpop dispatch (woken by the outbox bell)"
    )
    return (
        f"latency {r.setup}: webhook in -> provider call p50 {ms(r.reply, 50)} ms, "
        f"p99 {ms(r.reply, 99)} ms, max {r.reply[-1] * 1000:.0f} ms, mean "
        f"{statistics.fmean(r.reply) * 1000:.0f} ms ({r.requests} signed SMS webhooks at "
        f"{r.rate:g}/s; {where}); webhook answered p50 {ms(r.answer, 50)} ms, "
        f"p99 {ms(r.answer, 99)} ms"
    )


def main(argv: Sequence[str] | None = None, *, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=20 if quick else 40)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--setup", choices=(*SETUPS, "all"), default="all")
    args = parser.parse_args(argv)
    for setup in SETUPS if args.setup == "all" else (args.setup,):
        print(report(run(setup, senders=args.senders, rate=args.rate)))


if __name__ == "__main__":
    main()
