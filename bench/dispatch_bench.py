"""The dispatcher's throughput: messages per second from a full outbox to a loopback
fake provider, against a raw async HTTP client posting the same requests to the same fake.

``messages`` outbox rows (a question with its choices, each to a different citizen, each
citizen a contact with an address row, as the service leaves them) are queued in a fresh
SQLite database; a child process then runs ``dispatch_forever`` (what ``voxpop dispatch``
runs: claim with a lease, render, send through the provider SDK, record) until every row is
``sent``; the clock runs from the start of ``dispatch_forever`` to the moment a watcher in the
same process (one connection, every 20 ms) finds no row left to send.

The baseline, in a child process of the same shape, is the HTTP library the dispatcher sends
with, aiohttp (the twilio SDK's async client, and python-telegram-bot through our
``BaseRequest``), configured as the senders configure it (:func:`channels.http.new_session`),
posting the same form bodies with the same credentials to the same fake, with the same
concurrency (``[dispatch] concurrency``); no database, no SDK. It runs before and after the
dispatcher and is averaged. A second reference, pre-built requests over raw asyncio streams
(:mod:`bench.httpload`) at the same concurrency, shows what the fake itself can take. A
third, the *SDK alone*, sends the same messages through the channel's sender (the twilio SDK,
or python-telegram-bot's ``Bot.send_message``) at the same concurrency with no database and
no pipeline: its ratio to raw aiohttp is the most any dispatcher using that SDK could reach.
The
fake runs in this process, so no client shares its interpreter with the server; on a
two-core machine the fake and the client share the cores.

Channels: ``sms`` (the twilio SDK) and ``telegram`` (python-telegram-bot). The pacing limits
are set out of the way (:func:`bench.harness.unthrottled`): this measures our overhead.
Targets: at least 1,000 messages/s, and at least 0.7 of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select

from bench import harness, httpload
from bot.config import DispatchConfig, load_config
from bot.delivery.sending import Job
from bot.delivery.transports import Transports, dispatch_forever, outbound
from bot.runtime import build_runtime
from channels import http, sms, telegram
from channels.telegram_send import keyboard
from storage.db import READ_ONLY, make_engine, session_factory, transaction
from storage.migrate import upgrade
from storage.models import Address, Contact, Message
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

CHANNELS = ("sms", "telegram")
#: A question with its choices, as the service queues it (rendered at send time).
TEXT = "How often do you visit the park?"
PAYLOAD = {
    "options": [
        {"key": str(n), "label": label, "payload": f"visits:{key}"}
        for n, (key, label) in enumerate(
            (
                ("weekly", "Every week"),
                ("monthly", "Every month"),
                ("rarely", "Rarely"),
                ("never", "Never"),
            ),
            start=1,
        )
    ]
}


def address(channel: str, i: int) -> str:
    return harness.phone(i) if channel == "sms" else str(700_000_000 + i)


def _job(channel: str, i: int) -> Job:
    return Job(i, channel, address(channel, i), "reply", TEXT, PAYLOAD, 1)


def queue(db_url: str, channel: str, messages: int) -> None:
    """``messages`` due replies on ``channel``, each to another citizen (a contact with an
    address, as the service leaves them: the claim reads and paces the addresses)."""
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    contacts = [
        {"id": i + 1, "created_at": now, "updated_at": now, "attributes": {}, "tags": []}
        for i in range(messages)
    ]
    addresses = [
        {"contact_id": i + 1, "channel": channel, "value": address(channel, i), "created_at": now}
        for i in range(messages)
    ]
    rows = [
        {
            "direction": "out",
            "channel": channel,
            "address": address(channel, i),
            "contact_id": i + 1,
            "kind": "reply",
            "text": TEXT,
            "payload": PAYLOAD,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(messages)
    ]
    try:
        with transaction(session_factory(engine)) as s:
            for model, values in ((Contact, contacts), (Address, addresses), (Message, rows)):
                for start in range(0, len(values), 1000):
                    s.execute(insert(model), values[start : start + 1000])
    finally:
        engine.dispose()


# --- the two child processes ------------------------------------------------------------------


_UNSENT = (
    select(func.count())
    .select_from(Message)
    .where(Message.direction == "out", Message.status.in_(("queued", "sending")))
)


#: Cheaper than counting, for the watcher that shares the dispatcher's process.
_ANY_UNSENT = (
    select(Message.id)
    .where(Message.direction == "out", Message.status.in_(("queued", "sending")))
    .limit(1)
)


def _unsent(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect().execution_options(**READ_ONLY) as conn:
            found: int = conn.execute(_UNSENT).scalar_one()
            return found
    finally:
        engine.dispose()


async def _dispatcher(db_url: str) -> float:
    """Run ``dispatch_forever`` until no row is left to send; the seconds it took."""
    config = load_config()
    runtime = build_runtime(config)
    stop, wake = asyncio.Event(), asyncio.Event()
    # The watcher keeps one connection (opening one per look would cost the dispatcher),
    # and reads in deferred transactions, never holding the write lock.
    watch_engine = make_engine(db_url)
    watch = watch_engine.connect().execution_options(**READ_ONLY)

    def unsent() -> bool:
        found = watch.execute(_ANY_UNSENT).first() is not None
        watch.rollback()  # a fresh snapshot for the next look
        return found

    async def until_done() -> None:
        while await asyncio.to_thread(unsent):
            await asyncio.sleep(0.02)
        stop.set()

    started = time.perf_counter()
    watcher = asyncio.ensure_future(until_done())
    try:
        await dispatch_forever(config, runtime.sessions, stop, wake)
        seconds = time.perf_counter() - started
    finally:
        watcher.cancel()
        watch.close()
        watch_engine.dispose()
        runtime.close()
    return seconds


def baseline_requests(channel: str, messages: int) -> tuple[str, list[dict[str, str]]]:
    """The URL and form bodies the SDK posts for these messages, built by hand."""
    config = load_config()
    forms: list[dict[str, str]] = []
    if channel == "sms":
        twilio = config.twilio
        url = f"{twilio.api_base_url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        callback = config.server.public_url + "/webhooks/twilio/status"
        for i in range(messages):
            body = sms.render(outbound(_job(channel, i))).text
            forms.append(
                {"To": address(channel, i), "From": twilio.sms_from, "Body": body}
                | {"StatusCallback": callback}
            )
        return url, forms
    token = config.telegram.token
    url = f"{config.telegram.api_base_url}/bot{token}/sendMessage"
    for i in range(messages):
        rendered = telegram.render(outbound(_job(channel, i)))
        markup = keyboard(rendered)
        form = {"chat_id": address(channel, i), "text": rendered.text}
        if markup is not None:
            form["reply_markup"] = json.dumps(markup.to_dict())
        forms.append(form)
    return url, forms


def _auth_headers(channel: str) -> dict[str, str]:
    if channel != "sms":
        return {}  # the Bot API token is in the URL
    twilio = load_config().twilio
    pair = f"{twilio.account_sid}:{twilio.auth_token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def _aiohttp(channel: str, messages: int) -> float:
    """Post the same requests with aiohttp as the senders set it up and use it (the form
    encoded by :func:`channels.http.form_body`), ``[dispatch] concurrency`` at a time."""
    url, forms = baseline_requests(channel, messages)
    concurrency = load_config().dispatch.concurrency
    gate = asyncio.Semaphore(concurrency)
    headers = _auth_headers(channel) | {"Content-Type": http.FORM}
    started = time.perf_counter()
    async with http.new_session(concurrency) as client:

        async def post(form: dict[str, str]) -> None:
            body = http.form_body(form)
            async with gate, client.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status not in (200, 201):
                    raise RuntimeError(f"baseline: HTTP {answer.status}")

        await asyncio.gather(*(post(form) for form in forms))
    return time.perf_counter() - started


async def _sdk(channel: str, messages: int) -> float:
    """The same messages through the channel's sender as the dispatcher calls it, with the
    same concurrency: no database, no claims, no pipeline."""
    config = load_config()
    jobs = [_job(channel, i) for i in range(messages)]
    gate = asyncio.Semaphore(config.dispatch.concurrency)
    async with Transports(config) as transports:
        deliver = transports.delivers()[channel]

        async def send(job: Job) -> None:
            async with gate:
                await deliver(job)

        started = time.perf_counter()
        await asyncio.gather(*(send(job) for job in jobs))
        return time.perf_counter() - started


def _streams(channel: str, messages: int) -> float:
    """The same requests, pre-built, over raw asyncio streams (:mod:`bench.httpload`)."""
    url, forms = baseline_requests(channel, messages)
    where = urlsplit(url)
    host, port = where.hostname or harness.HOST, where.port or 80
    headers = _auth_headers(channel)
    requests = [(httpload.encode_post(host, port, where.path, form, headers),) for form in forms]
    load = httpload.run_conversations(host, port, requests, load_config().dispatch.concurrency)
    if set(load.statuses) - {200, 201}:
        raise RuntimeError(f"raw streams: {load.statuses} {dict(load.samples)}")
    return load.seconds


def child_main(argv: Sequence[str]) -> None:
    """``python -m bench.dispatch_bench --child dispatcher|raw ...``: print the seconds."""
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--child", choices=("dispatcher", "aiohttp", "sdk", "streams"), required=True
    )
    parser.add_argument("--channel", choices=CHANNELS, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    if args.child == "dispatcher":
        seconds = asyncio.run(_dispatcher(args.db))
    elif args.child == "aiohttp":
        seconds = asyncio.run(_aiohttp(args.channel, args.messages))
    elif args.child == "sdk":
        seconds = asyncio.run(_sdk(args.channel, args.messages))
    else:
        seconds = _streams(args.channel, args.messages)
    print(json.dumps({"seconds": seconds}))


# --- the bench --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    channel: str
    messages: int
    concurrency: int
    dispatcher_seconds: float
    #: aiohttp before and after the dispatcher.
    raw_seconds: tuple[float, float]
    #: Pre-built requests over raw streams: what the fake takes.
    streams_seconds: float
    #: The channel's sender alone, no database.
    sdk_seconds: float
    provider_calls: int

    @property
    def dispatcher_per_second(self) -> float:
        return self.messages / self.dispatcher_seconds

    @property
    def raw_per_second(self) -> float:
        return sum(self.messages / s for s in self.raw_seconds) / len(self.raw_seconds)

    @property
    def streams_per_second(self) -> float:
        return self.messages / self.streams_seconds

    @property
    def ratio(self) -> float:
        return self.dispatcher_per_second / self.raw_per_second

    @property
    def sdk_per_second(self) -> float:
        return self.messages / self.sdk_seconds

    @property
    def sdk_ratio(self) -> float:
        return self.sdk_per_second / self.raw_per_second


def _child(
    kind: str, channel: str, messages: int, db_url: str, env: dict[str, str], deadline: float
) -> float:
    command = [sys.executable, "-m", "bench.dispatch_bench", "--child", kind]
    command += ["--channel", channel, "--messages", str(messages), "--db", db_url]
    done = subprocess.run(
        command,
        env=env,
        cwd=harness.ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=deadline,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{done.stderr[-3000:]}")
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


def run(channel: str, messages: int = 5000, *, deadline: float = 300.0) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/dispatch.db"
        upgrade(db_url)
        queue(db_url, channel, messages)
        # Keep-alive, as the real APIs: werkzeug's server (the fakes' default) would be the limit.
        fake: FakeTwilio | FakeTelegram = (
            FakeTwilio(keep_alive=True) if channel == "sms" else FakeTelegram(keep_alive=True)
        )
        with fake:
            if isinstance(fake, FakeTwilio):
                env = harness.voxpop_env(db_url, twilio=fake, log_level="WARNING")
            else:
                env = harness.voxpop_env(db_url, telegram=fake, log_level="WARNING")
            streams = _child("streams", channel, messages, db_url, env, deadline)
            before = _child("aiohttp", channel, messages, db_url, env, deadline)
            raw_params = fake.calls[-1].params
            fake.clear_calls()
            dispatcher = _child("dispatcher", channel, messages, db_url, env, deadline)
            calls = fake.calls
            sdk_params = calls[-1].params if calls else {}
            sdk = _child("sdk", channel, messages, db_url, env, deadline)
            after = _child("aiohttp", channel, messages, db_url, env, deadline)
        unsent = _unsent(db_url)
    sends = [c for c in calls if c.name in ("messages.create", "sendMessage")]
    if unsent or len(sends) != messages:
        raise RuntimeError(f"{channel}: {unsent} rows unsent, {len(sends)} provider calls")
    if set(raw_params) != set(sdk_params):
        # The baseline must post what the SDK posts, or the ratio compares different work.
        raise RuntimeError(f"baseline posts {sorted(raw_params)}, the SDK {sorted(sdk_params)}")
    return Result(
        channel=channel,
        messages=messages,
        concurrency=DispatchConfig().concurrency,
        dispatcher_seconds=dispatcher,
        raw_seconds=(before, after),
        streams_seconds=streams,
        sdk_seconds=sdk,
        provider_calls=len(calls),
    )


def report(r: Result) -> str:
    before, after = (r.messages / s for s in r.raw_seconds)
    return (
        f"dispatch {r.channel}: {r.dispatcher_per_second:,.0f} messages/s through the "
        f"Dispatcher and the SDK ({r.messages} in {r.dispatcher_seconds:.1f} s, "
        f"{r.provider_calls} provider calls, concurrency {r.concurrency}); raw aiohttp "
        f"{r.raw_per_second:,.0f}/s ({before:,.0f} before, {after:,.0f} after); ratio "
        f"{r.ratio:.2f} (targets >= 0.7 and >= 1,000/s); the SDK alone, no database, "
        f"{r.sdk_per_second:,.0f}/s, ratio {r.sdk_ratio:.2f}; the fake takes "
        f"{r.streams_per_second:,.0f}/s from pre-built requests on raw streams"
    )


def main(argv: Sequence[str] | None = None, *, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000 if quick else 10000)
    parser.add_argument("--channel", choices=(*CHANNELS, "all"), default="all")
    args = parser.parse_args(argv)
    for channel in CHANNELS if args.channel == "all" else (args.channel,):
        print(report(run(channel, args.messages)))


def _entry(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        child_main(argv)
    else:
        main(argv)


if __name__ == "__main__":
    _entry(sys.argv[1:])
