"""The dispatcher: claims due outbox rows with a lease, sends them, records the outcome.

Delivery is at least once (docs/delivery.md). A row is claimed by setting it ``sending``
with ``lease_until``; a dispatcher killed mid-send leaves the row ``sending`` and any
dispatcher reclaims it once the lease has expired. On PostgreSQL several dispatchers claim
with ``FOR UPDATE SKIP LOCKED``; on SQLite ``BEGIN IMMEDIATE`` makes claiming one at a time.

Pacing (:class:`~bot.delivery.sending.Pacing`, per channel) holds for all dispatchers together,
because it lives in the database and is taken inside the claim's transaction: a sender's budget
(``send_budgets``: the earliest time its next message may leave, a GCRA meter counting SMS
segments) and a per-address gap (``addresses.next_send_at``: Telegram's one message a second
per chat). A claim takes only what may leave within ``horizon``, each job with the delay to
wait before it is sent; a message whose address is not free by the sender's next slot waits
for a later claim. On a channel with a session window (WhatsApp, 24 hours), a row
outside the window is ``held`` until the citizen writes again, except an invitation's
opening message, which goes as an approved template (``Job.template``).

Sending is a pipeline (:meth:`Dispatcher.run`): a claim tops up the work whenever fewer
than ``refill_below`` claimed messages are left, while earlier ones are still being sent;
outcomes are recorded in groups, every ``record_interval`` or ``record_group`` outcomes,
whichever comes first, and no send starts while twice ``record_group`` wait (what a killed
dispatcher may send twice stays bounded: docs/delivery.md). Claims and records run one at a
time (no two of its transactions wait for each other's lock): on the event loop on SQLite,
on a database thread of the dispatcher's own on PostgreSQL; with Core statements where the
ORM would cost per row. A citizen's messages go one after the other, and none of theirs is
claimed again until what went before is recorded.

Outcomes follow the :mod:`channels.errors` tree: retryable errors come back ``queued`` with
exponential backoff and jitter (a 429 waits at least its ``retry_after``, and holds back the
sender and the address as long) until ``max_attempts``; a send whose request left without an
answer is ``unknown``, never blindly resent; refusals about the contact change the address
(opted out, blocked, invalid); a send refused for the session window is ``held``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.pipeline import Pipeline, first
from bot.delivery.sending import (
    HELD,
    MESSAGE_KINDS,
    Deliver,
    DispatchSettings,
    Job,
    Outcome,
    Pacing,
)
from bot.health import Board, send_problem
from bot.log_privacy import log_failure
from bot.service import Clock
from channels import errors
from storage import outbox, repo
from storage.db import is_sqlite, scrub_wal, transaction
from storage.models import Address, Message, SendBudget

log = logging.getLogger(__name__)


#: Failures that change the citizen's address (opted out, blocked, invalid).
_ADDRESS_ERRORS = (errors.ContactOptedOut, errors.ContactBlocked, errors.InvalidAddress)


class _Sent(NamedTuple):
    """A sent message as :func:`storage.repo.apply_early_reports` reads it."""

    channel: str
    provider_id: str


@dataclass
class _Budget:
    """A sender's ``send_budgets`` row while a claim holds it."""

    next_free_at: datetime
    loaded: datetime


@dataclass
class _AddressRow:
    """The pacing columns of an ``addresses`` row while a claim holds it."""

    id: int
    next_send_at: datetime | None
    last_inbound_at: datetime | None
    loaded_next_send_at: datetime | None = field(default=None, repr=False)


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
        board: Board | None = None,
    ) -> None:
        self._sessions = sessions
        # Not copied: it is read at every claim, and a channel whose sender is down (see
        # bot.delivery.transports) is left out of it until it is back.
        self._transports = transports
        self._board = board
        self._clock = clock
        self._settings = settings or DispatchSettings()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._pacing = dict(pacing or {})
        bind = sessions.kw.get("bind")
        self._on_sqlite = bind is None or is_sqlite(bind.url)
        self._skip_locked = not self._on_sqlite
        self._pruned_at: datetime | None = None
        #: When the write-ahead log was last scrubbed or tried (SQLite; ``time.monotonic``).
        self._scrubbed_at: float | None = None
        #: The last claim left messages waiting for their pacing until this.
        self._soonest: datetime | None = None
        #: The last claim left due messages alone because their address was still busy here.
        self._skipped_busy = False
        #: The last claim erased the address of a message owed to someone forgotten.
        self._erased = False

    # --- claiming ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None, busy: Collection[tuple[str, str]] = ()) -> list[Job]:
        """Lease up to ``limit`` due rows per channel: button answers, then replies, then
        pushes, oldest first; as many as each channel's pacing lets leave within the horizon.

        ``busy`` are the (channel, address) pairs this dispatcher is still sending to or
        recording: their rows stay for a later claim, so that one citizen's messages never
        overtake each other.
        """
        now = self._clock()
        self._soonest = None
        self._skipped_busy = False
        self._erased = False
        with transaction(self._sessions) as s:
            conn = s.connection()
            jobs: list[Job] = []
            # Channel by channel in one fixed order, each its budget, then its addresses by
            # id: the order record() locks them in too, so no two transactions deadlock.
            for channel in sorted(self._transports):
                jobs += self._claim_channel(
                    s, conn, channel, now, limit or self._settings.batch, busy
                )
        if self._erased:
            self.scrub()
        return jobs

    def _claim_channel(
        self,
        s: Session,
        conn: Connection,
        channel: str,
        now: datetime,
        limit: int,
        busy: Collection[tuple[str, str]],
    ) -> list[Job]:
        params = {"now": now, "channel": channel, "limit": limit}
        rows = conn.execute(outbox.CLAIM["queued", self._skip_locked], params).all()
        expired = conn.execute(outbox.CLAIM["sending", self._skip_locked], params).all()
        if expired:
            rows = sorted([*rows, *expired], key=lambda r: (r.priority, r.next_attempt_at, r.id))[
                :limit
            ]
        if not rows:
            return []
        pacing = self._pacing.get(channel)
        budget = self._budget(s, conn, pacing, now) if pacing is not None else None
        addresses: dict[str, _AddressRow] = {}
        if pacing is not None and pacing.per_address_rows:
            addresses = self._addresses(conn, channel, {row.address for row in rows})
        waiting: set[str] = set()  # addresses whose next message must wait: keep their order
        leased: list[dict[str, Any]] = []
        settled: list[dict[str, Any]] = []  # failed or held without a send
        jobs: list[Job] = []
        lease = self._settings.lease
        owed: list[int] = []  # settled rows owed to someone forgotten: erase them now
        for row in rows:
            if row.address is None:  # erased by FORGET before it could be sent
                settled.append(
                    {"row_id": row.id, "new_status": "failed", "new_error": "address erased"}
                )
                continue
            if row.contact_id is None and now - row.created_at > self._settings.owed_ttl:
                settled.append(
                    {"row_id": row.id, "new_status": "failed", "new_error": "not sent in time"}
                )
                owed.append(row.id)
                continue
            if row.address in waiting:
                continue
            if (channel, row.address) in busy:
                waiting.add(row.address)
                self._skipped_busy = True
                continue
            job = Job(
                row.id,
                channel,
                row.address,
                row.kind or "reply",
                row.text,
                row.payload,
                row.attempts + 1,
            )
            start = now
            if pacing is not None:
                address = addresses.get(row.address)
                # A goodbye after FORGET answers the message just received: inside the window
                # by definition (its address row, which would say so, is gone).
                if row.contact_id is not None and _outside_window(pacing, job, address, now):
                    if not job.opens_invitation:
                        settled.append({"row_id": row.id, "new_status": HELD, "new_error": None})
                        continue
                    job = _with(job, template=True)
                turn = self._take_turn(pacing, job, budget, address, now)
                if turn == "spent":
                    break  # the sender's budget is spent for now; the rest comes later
                if turn == "wait":
                    waiting.add(row.address)
                    continue
                start = turn
            leased.append(
                {"row_id": row.id, "lease_until": start + lease, "claimed_attempts": job.attempts}
            )
            if start != now:  # built anew: dataclasses.replace costs several times more
                delay = (start - now).total_seconds()
                job = Job(
                    *(job.id, channel, job.address, job.kind, job.text, job.payload),
                    job.attempts,
                    delay,
                    job.template,
                )
            jobs.append(job)
        if leased:
            outbox.LEASE.executemany(conn, leased)
        if settled:
            outbox.SET_STATUS.executemany(conn, settled)
        if owed:
            self._erase_owed(conn, owed)
            self._erased = True
        if pacing is not None and budget is not None and budget.next_free_at != budget.loaded:
            next_free = {"budget_key": pacing.key, "next_free": budget.next_free_at}
            conn.execute(outbox.SET_BUDGET, next_free)
        moved = [
            {"address_id": a.id, "next_send": a.next_send_at}
            for a in addresses.values()
            if a.next_send_at != a.loaded_next_send_at
        ]
        if moved:
            outbox.SET_NEXT_SEND.executemany(conn, moved)
        return jobs

    def _take_turn(
        self,
        pacing: Pacing,
        job: Job,
        budget: _Budget | None,
        address: _AddressRow | None,
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

    def _budget(self, s: Session, conn: Connection, pacing: Pacing, now: datetime) -> _Budget:
        """The sender's budget, its row locked until the claim commits (PostgreSQL; SQLite's
        claim holds the only write lock anyway)."""
        stmt = outbox.BUDGET[self._skip_locked]
        found = conn.execute(stmt, {"key": pacing.key}).scalar_one_or_none()
        if found is None:
            repo.init_send_budget(s, pacing.key, now)
            found = conn.execute(stmt, {"key": pacing.key}).scalar_one()
        return _Budget(max(found, now), found)

    def _addresses(
        self, conn: Connection, channel: str, values: set[str | None]
    ) -> dict[str, _AddressRow]:
        query = outbox.PACING_ADDRESSES[self._skip_locked]
        found = conn.execute(query, {"channel": channel, "values": [v for v in values if v]})
        return {
            row.value: _AddressRow(row.id, row.next_send_at, row.last_inbound_at, row.next_send_at)
            for row in found
        }

    # --- sending ----------------------------------------------------------------------------

    async def send(self, job: Job) -> Outcome:
        try:
            receipt = await self._transports[job.channel](job)
        except errors.SendError as exc:
            self._tell(job.channel, exc)
            return Outcome(job, error=exc)
        except Exception as exc:
            # Without the exception's text: it may quote what the citizen is sent.
            log_failure(f"message {job.id}: sending", exc, log)
            return Outcome(job, error=errors.Unknown(f"{type(exc).__name__}"))
        self._tell(job.channel, None)
        return Outcome(job, receipt=receipt)

    def _tell(self, channel: str, error: errors.SendError | None) -> None:
        """What a send says about its channel goes on the board (readiness)."""
        if self._board is not None:
            state = send_problem(channel, error)
            if state is not None:
                self._board.set(channel, state)

    async def run_once(self) -> int:
        """Claim one batch, send it with bounded concurrency, record every outcome."""
        async with self._pipeline() as pipeline:
            jobs = await pipeline.in_db(self.claim, None, ())
            pipeline.start(jobs)
            await pipeline.drain()
        return len(jobs)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event, idle_poll: float = 0.5) -> None:
        """Work the outbox until ``stop``; ``wake`` (set after a commit that queued messages)
        ends an idle wait at once, so a reply leaves within moments, not at the next poll.

        Claims top the pipeline up while earlier messages are still being sent; on ``stop``
        what is claimed is still sent and recorded."""
        settings = self._settings
        refill_below = settings.refill_below or max(settings.concurrency, settings.batch // 2)
        async with self._pipeline() as pipeline:
            while not stop.is_set():
                if pipeline.in_flight >= refill_below:
                    await first(stop.wait(), pipeline.room(refill_below))
                    continue
                # Cleared before the claim looks: a commit or a record after it wakes us.
                wake.clear()
                pipeline.recorded.clear()
                try:
                    jobs = await pipeline.in_db(self.claim, None, pipeline.busy())
                except Exception:
                    # The database went away for a moment: wait, then carry on; never die.
                    log.exception("dispatcher claim failed; retrying")
                    await first(stop.wait(), timeout=idle_poll)
                    continue
                if jobs:
                    pipeline.start(jobs)
                    continue
                self.scrub(periodic=True)  # idle: a moment to empty the write-ahead log
                wait = idle_poll
                if self._soonest is not None:
                    # Messages wait for their pacing: look again when the first may go.
                    until = (self._soonest - self._clock()).total_seconds()
                    wait = min(wait, max(until, 0.01))
                waits = [wake.wait(), stop.wait()]
                if self._skipped_busy:
                    # Due messages wait for their address's earlier ones to be recorded.
                    waits.append(pipeline.recorded.wait())
                await first(*waits, timeout=wait)
            await pipeline.drain()

    @contextlib.asynccontextmanager
    async def _pipeline(self) -> AsyncIterator[Pipeline]:
        pipeline = Pipeline(self.send, self.record, self._settings, on_sqlite=self._on_sqlite)
        try:
            yield pipeline
        finally:
            await pipeline.close()

    # --- recording --------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> None:
        """Store outcomes in one transaction; deferred ones must follow the failure they wait
        behind, in the same call. Rows another dispatcher took over are left alone."""
        if not outcomes:
            return
        now = self._clock()
        with transaction(self._sessions) as s:
            conn = s.connection()
            ids = [outcome.job.id for outcome in outcomes]
            owned = conn.execute(outbox.OWNED[self._skip_locked], {"ids": ids}).all()
            current = {row.id: (row.status, row.attempts) for row in owned}
            # Our lease ran out and another dispatcher took the row over: not ours to record.
            mine = [o for o in outcomes if current.get(o.job.id) == ("sending", o.job.attempts)]
            plain = [o for o in mine if o.receipt is not None and o.receipt.template is None]
            if plain:
                outbox.SENT.executemany(
                    conn,
                    [
                        {
                            "row_id": o.job.id,
                            "claimed_attempts": o.job.attempts,
                            "sent_at": now,
                            "provider": o.receipt.provider_id or None,
                            "billed": o.receipt.segments or None,
                        }
                        for o in plain
                        if o.receipt is not None
                    ],
                )
            done = {o.job.id for o in plain}
            sent = self._record_rest(s, [o for o in mine if o.job.id not in done], now)
            # Delivery reports that came back before we knew the provider ids. The rows
            # updated above by their id are named by what apply_early_reports reads of a
            # Message (channel, provider_id): building ORM objects would cost more than the
            # whole UPDATE.
            named = [
                _Sent(o.job.channel, o.receipt.provider_id)
                for o in plain
                if o.receipt is not None and o.receipt.provider_id
            ]
            repo.apply_early_reports(s, [*sent, *cast(list[Message], named)])
            owed = [row.id for row in owned if row.contact_id is None]
            if owed:
                s.flush()  # the outcomes _record_rest set decide which rows are final
                self._erase_owed(conn, owed)
            if self._pruned_at is None or now - self._pruned_at > timedelta(minutes=1):
                repo.prune_status_reports(s, now - self._settings.report_ttl)
                self._pruned_at = now
        # An erasure leaves old copies in SQLite's write-ahead log: right after this one,
        # else now and then, for an erasure whose own try a reader held up.
        self.scrub(periodic=not owed)

    def _erase_owed(self, conn: Connection, ids: list[int]) -> None:
        """Rows owed to someone forgotten whose outcome is final lose their address."""
        conn.execute(outbox.ERASE_OWED, {"ids": ids})

    def scrub(self, *, periodic: bool = False) -> bool:
        """Empty SQLite's write-ahead log (:func:`storage.db.scrub_wal`): after recording an
        erasure, or (``periodic``) at most every ``scrub_interval``, which also catches
        erasures by other processes that a reader held up. Whether the log is empty."""
        if not self._on_sqlite:
            return True
        interval = self._settings.scrub_interval.total_seconds()
        started = time.monotonic()
        if periodic and self._scrubbed_at is not None and started - self._scrubbed_at < interval:
            return True
        # An attempt, done or not, waits the interval: a reader that stays (a long export)
        # must not make every idle turn hold writers up while the checkpoint waits.
        self._scrubbed_at = started
        bind = self._sessions.kw.get("bind")
        return bind is None or scrub_wal(bind)

    def _record_rest(self, s: Session, outcomes: list[Outcome], now: datetime) -> list[Message]:
        """Failures, deferrals and templates, through the ORM (they are few); the rows sent."""
        self._lock_pacing_rows(s.connection(), outcomes)
        # Per address: when its failed message is due again, so the rest queue behind it.
        held: dict[tuple[str, str], datetime] = {}
        sent: list[Message] = []
        for outcome in outcomes:
            row = s.get(Message, outcome.job.id)
            if row is None or row.status != "sending" or row.attempts != outcome.job.attempts:
                continue
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
        return sent

    def _lock_pacing_rows(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """Lock the budgets and addresses these failures will change before changing any, in
        the claims' order (channel by channel, its budget, then its addresses by id): the
        ORM would lock them one by one in the order of the outcomes, and a claim holding a
        budget while it waits for an address (or the other way round) would deadlock."""
        if not self._skip_locked:
            return  # SQLite: this transaction holds the database's only write lock
        budgets: set[str] = set()
        addresses: dict[str, set[str]] = {}
        for outcome in outcomes:
            error, job = outcome.error, outcome.job
            if isinstance(error, errors.Throttled):
                pacing = self._pacing.get(job.channel)
                if pacing is None:
                    continue
                if pacing.throttle_holds_sender:
                    budgets.add(job.channel)
            elif not isinstance(error, _ADDRESS_ERRORS):
                continue
            addresses.setdefault(job.channel, set()).add(job.address)
        for channel in sorted(budgets | addresses.keys()):
            if channel in budgets:
                conn.execute(outbox.BUDGET[True], {"key": self._pacing[channel].key})
            if channel in addresses:
                values = sorted(addresses[channel])
                conn.execute(
                    outbox.PACING_ADDRESSES[True], {"channel": channel, "values": values}
                ).all()

    def _failed(self, s: Session, row: Message, error: errors.SendError, now: datetime) -> None:
        settings = self._settings
        row.error = f"{type(error).__name__}: {error.code or ''} {error}".strip()[:500]
        if row.contact_id is None:
            # Owed to someone forgotten: the provider's words may quote their address.
            row.error = f"{type(error).__name__}: {error.code or ''}".strip(" :")
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
        if (
            isinstance(error, errors.OutsideSessionWindow)
            and not isinstance(error, errors.NoTemplate)
            and row.contact_id is not None  # owed to someone forgotten: nobody to wait for
        ):
            # Never retried as free text outside the window: it waits for the citizen.
            row.status, row.attempts = HELD, row.attempts - 1
            log.info("message %d held: outside the session window", row.id)
            return
        row.status = "unknown" if isinstance(error, errors.Unknown) else "failed"
        if isinstance(error, _ADDRESS_ERRORS):
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


def _outside_window(pacing: Pacing, job: Job, address: _AddressRow | None, now: datetime) -> bool:
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
        wait = 1.0
        while not self._stop.is_set():
            try:
                self._loop.run_until_complete(self._work(self._stop, self._wake))
                return
            except Exception as exc:
                # Never die silently while the web server answers: say so, and start again.
                log_failure(f"dispatcher (starting again in {wait:g}s)", exc)
                self._loop.run_until_complete(first(self._stop.wait(), timeout=wait))
                wait = min(wait * 2, 60.0)

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
