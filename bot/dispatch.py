"""The dispatcher: claims due outbox rows with a lease, sends them, records the outcome.

Delivery is at least once (docs/delivery.md). A row is claimed by setting it ``sending``
with ``lease_until``; a dispatcher killed mid-send leaves the row ``sending`` and any
dispatcher reclaims it once the lease has expired. On PostgreSQL several dispatchers claim
with ``FOR UPDATE SKIP LOCKED``; on SQLite ``BEGIN IMMEDIATE`` makes claiming one at a time.

Outcomes follow the :mod:`channels.errors` tree: retryable errors come back ``queued`` with
exponential backoff and jitter (a 429 waits at least its ``retry_after``) until
``max_attempts``; a send whose request left without an answer is ``unknown``, never blindly
resent; refusals about the contact change the address (opted out, blocked, invalid).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session, sessionmaker

from channels import errors
from channels.base import SendReceipt
from storage.db import is_sqlite, transaction
from storage.models import Address, Message

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Job:
    """One claimed outbox row, detached from the database session."""

    id: int
    channel: str
    address: str
    kind: str
    text: str
    payload: Any
    attempts: int


#: Sends one job on its channel; raises a :class:`channels.errors.SendError`.
Deliver = Callable[[Job], Awaitable[SendReceipt]]


@dataclass(frozen=True)
class DispatchSettings:
    #: A send must finish well within this, or another dispatcher may send the row again.
    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 6
    base_backoff: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(minutes=15)
    #: Our own credentials refused: retry later without using up the message's attempts.
    config_error_wait: timedelta = timedelta(minutes=5)
    batch: int = 100
    concurrency: int = 32


@dataclass(frozen=True)
class Outcome:
    job: Job
    receipt: SendReceipt | None = None
    error: errors.SendError | None = None
    #: Not tried: an earlier message to the same address failed, and order matters.
    deferred: bool = False


class Dispatcher:
    """Sends the outbox through ``transports`` (one :data:`Deliver` per channel name)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transports: Mapping[str, Deliver],
        clock: Clock,
        settings: DispatchSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._transports = dict(transports)
        self._clock = clock
        self._settings = settings or DispatchSettings()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        bind = sessions.kw.get("bind")
        self._skip_locked = bind is not None and not is_sqlite(bind.url)

    # --- claiming ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[Job]:
        """Lease up to ``limit`` due rows: replies first, then pushes, oldest first."""
        now = self._clock()
        limit = limit or self._settings.batch
        due = or_(
            and_(Message.status == "queued", Message.next_attempt_at <= now),
            # A dispatcher died mid-send: its lease ran out, so the row is due again.
            and_(Message.status == "sending", Message.lease_until < now),
        )
        stmt = (
            select(Message)
            .where(Message.direction == "out", Message.channel.in_(self._transports), due)
            .order_by(
                # A tapped button spins until answered; pushes wait for every reply.
                case((Message.kind == "callback_answer", 0), (Message.kind == "push", 2), else_=1),
                Message.next_attempt_at,
                Message.id,
            )
            .limit(limit)
        )
        if self._skip_locked:
            stmt = stmt.with_for_update(skip_locked=True)
        with transaction(self._sessions) as s:
            jobs = []
            for row in s.scalars(stmt):
                if row.address is None:  # erased by FORGET before it could be sent
                    row.status, row.error = "failed", "address erased"
                    continue
                row.status = "sending"
                row.lease_until = now + self._settings.lease
                row.attempts += 1
                jobs.append(
                    Job(
                        row.id,
                        row.channel,
                        row.address,
                        row.kind or "reply",
                        row.text,
                        row.payload,
                        row.attempts,
                    )
                )
            return jobs

    # --- sending ----------------------------------------------------------------------------

    async def send(self, job: Job) -> Outcome:
        try:
            receipt = await self._transports[job.channel](job)
        except errors.SendError as exc:
            return Outcome(job, error=exc)
        except Exception as exc:
            log.exception("message %d: unexpected error while sending", job.id)
            return Outcome(job, error=errors.Unknown(f"{type(exc).__name__}"))
        return Outcome(job, receipt=receipt)

    async def run_once(self) -> int:
        """Claim one batch, send it with bounded concurrency, record the outcomes."""
        jobs = self.claim()
        if not jobs:
            return 0
        limit = asyncio.Semaphore(self._settings.concurrency)
        # One citizen's messages go one after the other, in order (an intro before its first
        # question); different citizens' go in parallel.
        queues: dict[tuple[str, str], list[Job]] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            queues.setdefault((job.channel, job.address), []).append(job)

        async def in_order(queue: list[Job]) -> None:
            outcomes: list[Outcome] = []
            for index, job in enumerate(queue):
                async with limit:
                    outcome = await self.send(job)
                outcomes.append(outcome)
                if outcome.error is not None:
                    outcomes += [Outcome(later, deferred=True) for later in queue[index + 1 :]]
                    break
            # Record as soon as this citizen's messages are done, not at the end of the batch:
            # a dispatcher killed now resends only what was in flight (docs/delivery.md).
            await asyncio.to_thread(self.record, outcomes)

        await asyncio.gather(*(in_order(queue) for queue in queues.values()))
        return len(jobs)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, idle_poll: float = 0.5) -> None:
        """Work the outbox until ``stop``; ``wake`` (set after a commit that queued messages)
        ends an idle wait at once, so a reply leaves within moments, not at the next poll."""
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                # The database went away for a moment: wait, then carry on; never die.
                log.exception("dispatcher round failed; retrying")
                busy = 0
            if busy:
                continue
            wake.clear()
            waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=idle_poll, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    # --- recording --------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> None:
        """Store outcomes; deferred ones must follow the failure they wait behind."""
        now = self._clock()
        # Per address: when its failed message is due again, so the rest queue behind it.
        held: dict[tuple[str, str], datetime] = {}
        with transaction(self._sessions) as s:
            for outcome in outcomes:
                row = s.get(Message, outcome.job.id)
                if row is None or row.status != "sending" or row.attempts != outcome.job.attempts:
                    continue  # our lease ran out and another dispatcher took the row over
                row.lease_until = None
                key = (outcome.job.channel, outcome.job.address)
                if outcome.deferred:
                    # Not tried: give the attempt back, and keep the order behind the failure.
                    after = held.get(key, now)
                    row.status, row.attempts = "queued", row.attempts - 1
                    row.next_attempt_at = after
                    held[key] = after + timedelta(microseconds=1)
                    continue
                if outcome.receipt is not None:
                    row.status, row.sent_at = "sent", now
                    row.provider_id = outcome.receipt.provider_id or None
                    row.segments = outcome.receipt.segments or row.segments
                    row.error = None
                    continue
                assert outcome.error is not None
                self._failed(s, row, outcome.error, now)
                if row.status == "queued" and row.next_attempt_at is not None:
                    held[key] = row.next_attempt_at + timedelta(microseconds=1)

    def _failed(self, s: Session, row: Message, error: errors.SendError, now: datetime) -> None:
        settings = self._settings
        row.error = f"{type(error).__name__}: {error.code or ''} {error}".strip()[:500]
        if isinstance(error, errors.ConfigError):
            # Our credentials, not the citizen's message: wait for the operator to fix them.
            log.error("channel %s refused our credentials: %s", row.channel, row.error)
            row.status, row.attempts = "queued", row.attempts - 1
            row.next_attempt_at = now + settings.config_error_wait
            return
        if error.retryable and row.attempts < settings.max_attempts:
            wait = backoff(row.attempts, settings, self._rng)
            if isinstance(error, errors.Throttled):
                wait = max(wait, timedelta(seconds=error.retry_after))
            row.status, row.next_attempt_at = "queued", now + wait
            return
        row.status = "unknown" if isinstance(error, errors.Unknown) else "failed"
        if isinstance(
            error, errors.ContactOptedOut | errors.ContactBlocked | errors.InvalidAddress
        ):
            self._mark_address(s, row, error, now)
        log.warning(
            "message %d %s after %d attempts: %s",
            row.id,
            row.status,
            row.attempts,
            type(error).__name__,
        )

    def _mark_address(
        self, s: Session, row: Message, error: errors.SendError, now: datetime
    ) -> None:
        address = s.scalars(
            select(Address).where(Address.channel == row.channel, Address.value == row.address)
        ).one_or_none()
        if address is None:
            return
        if isinstance(error, errors.InvalidAddress):
            address.invalid_at = now
        else:
            # Opted out at the carrier, or blocked the bot: nothing more may go there.
            address.opted_out_at = address.opted_out_at or now


def backoff(attempt: int, settings: DispatchSettings, rng: random.Random) -> timedelta:
    """Exponential backoff with full jitter between half and the whole step.

    >>> s = DispatchSettings()  # 2 s doubling, at most 15 minutes
    >>> waits = [backoff(3, s, random.Random(n)).total_seconds() for n in range(200)]
    >>> 4 <= min(waits) < 4.5, 7.5 < max(waits) <= 8
    (True, True)
    >>> backoff(30, s, random.Random(1)) <= s.max_backoff
    True
    """
    step = min(
        settings.max_backoff.total_seconds(),
        settings.base_backoff.total_seconds() * 2 ** (attempt - 1),
    )
    return timedelta(seconds=step * (0.5 + rng.random() / 2))


#: What a dispatcher thread runs: work until ``stop``; an idle wait ends early on ``wake``.
Work = Callable[[asyncio.Event, asyncio.Event], Awaitable[None]]


class DispatcherThread:
    """Runs dispatcher ``work`` on its own event loop in a background thread (inside
    ``voxpop serve``); :meth:`wake` may be called from any thread."""

    def __init__(self, work: Work) -> None:
        self._work = work
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._thread = threading.Thread(target=self._main, name="voxpop-dispatcher", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._work(self._stop, self._wake))

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
