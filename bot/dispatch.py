"""The dispatcher: claims due outbox rows with a lease, sends them, records the outcome.

Delivery is at least once (docs/delivery.md). A row is claimed by setting it ``sending``
with ``lease_until``; a dispatcher killed mid-send leaves the row ``sending`` and any
dispatcher reclaims it once the lease has expired. On PostgreSQL several dispatchers claim
with ``FOR UPDATE SKIP LOCKED``; on SQLite ``BEGIN IMMEDIATE`` makes claiming one at a time.

Pacing (:class:`Pacing`, per channel) holds for all dispatchers together, because it lives in
the database and is taken inside the claim's transaction: a sender's budget
(``send_budgets``: the earliest time its next message may leave, a GCRA meter counting SMS
segments) and a per-address gap (``addresses.next_send_at``: Telegram's one message a second
per chat). A claim takes only what may leave within ``horizon``, each job with the delay to
wait before it is sent; a message whose address is not free by the sender's next slot waits
for a later claim. On a channel with a session window (WhatsApp, 24 hours), a row
outside the window is ``held`` until the citizen writes again, except an invitation's
opening message, which goes as an approved template (``Job.template``).

Outcomes follow the :mod:`channels.errors` tree: retryable errors come back ``queued`` with
exponential backoff and jitter (a 429 waits at least its ``retry_after``, and holds back the
sender and the address as long) until ``max_attempts``; a send whose request left without an
answer is ``unknown``, never blindly resent; refusals about the contact change the address
(opted out, blocked, invalid); a send refused for the session window is ``held``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session, sessionmaker

from channels import errors
from channels.base import SendReceipt
from storage import repo
from storage.db import is_sqlite, transaction
from storage.models import Address, Message, SendBudget

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Kinds that are messages a citizen sees, paced per address; others are chores (button
#: answers, keyboard removals) that no chat limit applies to.
MESSAGE_KINDS: Final = frozenset({"reply", "push"})
#: Held rows wait for the citizen's next message (WhatsApp's window).
HELD: Final = "held"


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
    #: Seconds after the claim before it may be sent (the sender's and the address's pacing).
    delay: float = 0.0
    #: Outside the session window: send the approved template instead of the text.
    template: bool = False

    @property
    def opens_invitation(self) -> bool:
        """The first message of an invitation, which may go as a template."""
        return (
            self.kind == "push"
            and isinstance(self.payload, Mapping)
            and isinstance(self.payload.get("invitation"), Mapping)
        )


def _one(job: Job) -> int:
    return 1


@dataclass(frozen=True)
class Pacing:
    """How one channel may send, for all dispatchers together."""

    #: The shared budget (``send_budgets.key``): the sender, e.g. ``sms:+3247...``.
    key: str
    per_second: float
    #: The least time between two messages to one address (Telegram: a second per chat).
    per_address: timedelta | None = None
    #: What a job uses of the budget: an SMS's segments; 0 for a chore that is not limited.
    cost: Callable[[Job], int] = _one
    #: Free-form messages only this long after the citizen's last message (WhatsApp).
    session_window: timedelta | None = None
    #: A 429 holds back the whole sender for its ``retry_after`` (else the address only).
    throttle_holds_sender: bool = True


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
    #: A claim takes what its pacing lets leave within this; the rest waits for a later claim.
    horizon: timedelta = timedelta(seconds=1)
    #: A dispatcher prunes delivery reports that never matched a message after this.
    report_ttl: timedelta = timedelta(hours=1)


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
        pacing: Mapping[str, Pacing] | None = None,
    ) -> None:
        self._sessions = sessions
        self._transports = dict(transports)
        self._clock = clock
        self._settings = settings or DispatchSettings()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._pacing = dict(pacing or {})
        bind = sessions.kw.get("bind")
        self._skip_locked = bind is not None and not is_sqlite(bind.url)
        self._pruned_at: datetime | None = None
        #: The last claim left messages waiting for their pacing until this.
        self._soonest: datetime | None = None

    # --- claiming ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[Job]:
        """Lease up to ``limit`` due rows per channel: button answers, then replies, then
        pushes, oldest first; as many as each channel's pacing lets leave within the horizon."""
        now = self._clock()
        self._soonest = None
        with transaction(self._sessions) as s:
            jobs: list[Job] = []
            for channel in self._transports:
                jobs += self._claim_channel(s, channel, now, limit or self._settings.batch)
            return jobs

    def _claim_channel(self, s: Session, channel: str, now: datetime, limit: int) -> list[Job]:
        due = or_(
            and_(Message.status == "queued", Message.next_attempt_at <= now),
            # A dispatcher died mid-send: its lease ran out, so the row is due again.
            and_(Message.status == "sending", Message.lease_until < now),
        )
        stmt = (
            select(Message)
            .where(Message.direction == "out", Message.channel == channel, due)
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
        rows = list(s.scalars(stmt))
        if not rows:
            return []
        pacing = self._pacing.get(channel)
        budget = self._budget(s, pacing, now) if pacing is not None else None
        addresses = self._addresses(s, channel, rows) if pacing is not None else {}
        waiting: set[str] = set()  # addresses whose next message must wait: keep their order
        jobs = []
        for row in rows:
            if row.address is None:  # erased by FORGET before it could be sent
                row.status, row.error = "failed", "address erased"
                continue
            if row.address in waiting:
                continue
            job = Job(
                row.id,
                row.channel,
                row.address,
                row.kind or "reply",
                row.text,
                row.payload,
                row.attempts + 1,
            )
            start = now
            if pacing is not None:
                address = addresses.get(row.address)
                if _outside_window(pacing, job, address, now):
                    if not job.opens_invitation:
                        row.status, row.lease_until = HELD, None
                        continue
                    job = _with(job, template=True)
                turn = self._take_turn(pacing, job, budget, address, now)
                if turn == "spent":
                    break  # the sender's budget is spent for now; the rest comes later
                if turn == "wait":
                    waiting.add(row.address)
                    continue
                start = turn
            row.status = "sending"
            row.lease_until = start + self._settings.lease
            row.attempts = job.attempts
            jobs.append(_with(job, delay=(start - now).total_seconds()))
        return jobs

    def _take_turn(
        self,
        pacing: Pacing,
        job: Job,
        budget: SendBudget | None,
        address: Address | None,
        now: datetime,
    ) -> datetime | Literal["spent", "wait"]:
        """When ``job`` may leave, taking its share of the budget and its address's gap;
        ``"spent"`` if the sender has nothing left within the horizon, ``"wait"`` if its
        address is not free by then."""
        start = now
        cost = pacing.cost(job)
        if cost and budget is not None:
            if budget.next_free_at > now + self._settings.horizon:
                self._wait_until(budget.next_free_at - self._settings.horizon)
                return "spent"
            start = max(start, budget.next_free_at)
        gap = pacing.per_address if job.kind in MESSAGE_KINDS else None
        if gap is not None and address is not None:
            if address.next_send_at is not None and address.next_send_at > start:
                # Not before the sender's next slot is free for it too: a slot kept while
                # the chat waits would let a burst out later.
                self._wait_until(address.next_send_at)
                return "wait"
            address.next_send_at = start + gap
        if cost and budget is not None:
            budget.next_free_at = start + timedelta(seconds=cost / pacing.per_second)
        return start

    def _wait_until(self, moment: datetime) -> None:
        if self._soonest is None or moment < self._soonest:
            self._soonest = moment

    def _budget(self, s: Session, pacing: Pacing, now: datetime) -> SendBudget:
        """The sender's budget row, locked until the claim commits (PostgreSQL; SQLite's
        claim holds the only write lock anyway)."""
        stmt = select(SendBudget).where(SendBudget.key == pacing.key).with_for_update()
        budget = s.scalars(stmt).one_or_none()
        if budget is None:
            repo.init_send_budget(s, pacing.key, now)
            budget = s.scalars(stmt).one()
        budget.next_free_at = max(budget.next_free_at, now)
        return budget

    def _addresses(self, s: Session, channel: str, rows: list[Message]) -> dict[str, Address]:
        values = {row.address for row in rows if row.address is not None}
        stmt = (
            select(Address)
            .where(Address.channel == channel, Address.value.in_(values))
            .order_by(Address.id)  # every claimer locks in the same order: no deadlock
            .with_for_update()
        )
        return {address.value: address for address in s.scalars(stmt)}

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
        claimed = time.monotonic()
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
                # Wait for the job's turn under the pacing, in real time since the claim.
                wait = job.delay - (time.monotonic() - claimed)
                if wait > 0:
                    await asyncio.sleep(wait)
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
            wait = idle_poll
            if self._soonest is not None:
                # Messages wait for their pacing: look again when the first may go.
                until = (self._soonest - self._clock()).total_seconds()
                wait = min(wait, max(until, 0.01))
            wake.clear()
            waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    # --- recording --------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> None:
        """Store outcomes; deferred ones must follow the failure they wait behind."""
        now = self._clock()
        # Per address: when its failed message is due again, so the rest queue behind it.
        held: dict[tuple[str, str], datetime] = {}
        sent: list[Message] = []
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
                    receipt = outcome.receipt
                    row.status, row.sent_at = "sent", now
                    row.provider_id = receipt.provider_id or None
                    row.segments = receipt.segments or row.segments
                    row.error = None
                    if receipt.template is not None and isinstance(row.payload, Mapping):
                        row.payload = {**row.payload, "template": receipt.template}
                    sent.append(row)
                    continue
                assert outcome.error is not None
                self._failed(s, row, outcome.error, now)
                if row.status == "queued" and row.next_attempt_at is not None:
                    held[key] = row.next_attempt_at + timedelta(microseconds=1)
            # Delivery reports that came back before we knew the provider ids.
            repo.apply_early_reports(s, [m for m in sent if m.provider_id])
            if self._pruned_at is None or now - self._pruned_at > timedelta(minutes=1):
                repo.prune_status_reports(s, now - self._settings.report_ttl)
                self._pruned_at = now

    def _failed(self, s: Session, row: Message, error: errors.SendError, now: datetime) -> None:
        settings = self._settings
        row.error = f"{type(error).__name__}: {error.code or ''} {error}".strip()[:500]
        if isinstance(error, errors.ConfigError):
            # Our credentials, not the citizen's message: wait for the operator to fix them.
            log.error("channel %s refused our credentials: %s", row.channel, row.error)
            row.status, row.attempts = "queued", row.attempts - 1
            row.next_attempt_at = now + settings.config_error_wait
            return
        if isinstance(error, errors.Throttled):
            # The provider says we go too fast: every message of this sender and to this
            # address waits, not just this one (docs/delivery.md).
            self._hold_back(s, row, now + timedelta(seconds=error.retry_after))
        if error.retryable and row.attempts < settings.max_attempts:
            wait = backoff(row.attempts, settings, self._rng)
            if isinstance(error, errors.Throttled):
                wait = max(wait, timedelta(seconds=error.retry_after))
            row.status, row.next_attempt_at = "queued", now + wait
            return
        if isinstance(error, errors.OutsideSessionWindow) and not isinstance(
            error, errors.NoTemplate
        ):
            # Never retried as free text outside the window: it waits for the citizen.
            row.status, row.attempts = HELD, row.attempts - 1
            log.info("message %d held: outside the session window", row.id)
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

    def _hold_back(self, s: Session, row: Message, until: datetime) -> None:
        pacing = self._pacing.get(row.channel)
        if pacing is None:
            return
        if pacing.throttle_holds_sender:
            budget = s.get(SendBudget, pacing.key, with_for_update=True)
            if budget is not None and budget.next_free_at < until:
                budget.next_free_at = until
        address = self._address_of(s, row)
        if address is not None and (address.next_send_at is None or address.next_send_at < until):
            address.next_send_at = until

    def _address_of(self, s: Session, row: Message) -> Address | None:
        return s.scalars(
            select(Address).where(Address.channel == row.channel, Address.value == row.address)
        ).one_or_none()

    def _mark_address(
        self, s: Session, row: Message, error: errors.SendError, now: datetime
    ) -> None:
        address = self._address_of(s, row)
        if address is None:
            return
        if isinstance(error, errors.InvalidAddress):
            address.invalid_at = now
        else:
            # Opted out at the carrier, or blocked the bot: nothing more may go there.
            address.opted_out_at = address.opted_out_at or now


def _with(job: Job, **changes: Any) -> Job:
    return replace(job, **changes)


def _outside_window(pacing: Pacing, job: Job, address: Address | None, now: datetime) -> bool:
    if pacing.session_window is None or job.kind not in MESSAGE_KINDS:
        return False
    last = address.last_inbound_at if address is not None else None
    return last is None or now - last > pacing.session_window


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
