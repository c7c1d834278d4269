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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NamedTuple, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from channels import errors
from channels.base import SendReceipt
from storage import repo
from storage.db import is_sqlite, transaction
from storage.models import Address, Message, SendBudget
from storage.prepared import Prepared

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

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

    @property
    def per_address_rows(self) -> bool:
        """Whether a claim needs the addresses' rows (their gap or their window)."""
        return self.per_address is not None or self.session_window is not None


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
    #: Rows one claim takes per channel, at most.
    batch: int = 100
    concurrency: int = 32
    #: A claim takes what its pacing lets leave within this; the rest waits for a later claim.
    horizon: timedelta = timedelta(seconds=1)
    #: A dispatcher prunes delivery reports that never matched a message after this.
    report_ttl: timedelta = timedelta(hours=1)
    #: Outcomes wait at most this long for their group's transaction ...
    record_interval: timedelta = timedelta(milliseconds=10)
    #: ... or until this many have finished; no send starts while twice this many wait or
    #: are being recorded (docs/delivery.md: the duplicate window).
    record_group: int = 50
    #: Claim again once fewer claimed messages than this are left to send (0: the larger of
    #: ``concurrency`` and half a ``batch``).
    refill_below: int = 0


@dataclass(frozen=True)
class Outcome:
    job: Job
    receipt: SendReceipt | None = None
    error: errors.SendError | None = None
    #: Not tried: an earlier message to the same address failed, and order matters.
    deferred: bool = False


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


# --- prebuilt statements: built once, their compiled form cached by SQLAlchemy --------------

_messages: Table = Message.__table__  # type: ignore[assignment]
_addresses: Table = Address.__table__  # type: ignore[assignment]
_budgets: Table = SendBudget.__table__  # type: ignore[assignment]
_m, _a, _b = _messages.c, _addresses.c, _budgets.c


def _claim_query(status: str, skip_locked: bool) -> Any:
    """Due rows in ``status``, in claiming order.

    Queued rows are due at ``next_attempt_at``; a ``sending`` row is due again when its
    lease ran out (its dispatcher died mid-send). Both are asked through the
    (status, channel, priority, next_attempt_at, id) index, read in its order up to the
    limit: a ``sending`` row's ``next_attempt_at`` is the time it was due before its claim,
    never NULL nor later than now (only a claim sets ``sending``, and FORGET fails unsent
    rows). One query with both as an OR went through the (direction, channel, provider_id)
    index on SQLite instead: every message the channel ever sent, on every claim.
    """
    now = bindparam("now", type_=_m.next_attempt_at.type)
    due = [_m.status == status, _m.next_attempt_at <= now]
    if status == "sending":
        due.append(_m.lease_until < now)
    stmt = (
        select(
            _m.id,
            _m.channel,
            _m.address,
            _m.kind,
            _m.text,
            _m.payload,
            _m.attempts,
            _m.next_attempt_at,
            _m.priority,
        )
        .where(_m.direction == "out", _m.channel == bindparam("channel"), *due)
        # The order of the (status, channel, priority, next_attempt_at, id) index: the claim
        # reads the rows it takes, and stops at the limit.
        .order_by(_m.priority, _m.next_attempt_at, _m.id)
        .limit(bindparam("limit"))
    )
    return stmt.with_for_update(skip_locked=True) if skip_locked else stmt


_CLAIM = {
    (status, locked): _claim_query(status, locked)
    for status in ("queued", "sending")
    for locked in (False, True)
}
_LEASE = Prepared(
    update(_messages)
    .where(_m.id == bindparam("row_id"))
    .values(
        status="sending",
        lease_until=bindparam("lease_until", type_=_m.lease_until.type),
        attempts=bindparam("claimed_attempts"),
    )
)
_SET_STATUS = Prepared(
    update(_messages)
    .where(_m.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        error=func.coalesce(bindparam("new_error", type_=_m.error.type), _m.error),
        lease_until=None,
    )
)
_BUDGET = select(_b.next_free_at).where(_b.key == bindparam("key"))
_SET_BUDGET = (
    update(_budgets)
    .where(_b.key == bindparam("budget_key"))
    .values(next_free_at=bindparam("next_free", type_=_b.next_free_at.type))
)


def _pacing_addresses_query(skip_locked: bool) -> Any:
    stmt = (
        select(_a.id, _a.value, _a.next_send_at, _a.last_inbound_at)
        .where(
            _a.channel == bindparam("channel"), _a.value.in_(bindparam("values", expanding=True))
        )
        .order_by(_a.id)  # every claimer locks in the same order: no deadlock
    )
    return stmt.with_for_update() if skip_locked else stmt


_PACING_ADDRESSES = {False: _pacing_addresses_query(False), True: _pacing_addresses_query(True)}
_SET_NEXT_SEND = Prepared(
    update(_addresses)
    .where(_a.id == bindparam("address_id"))
    .values(next_send_at=bindparam("next_send", type_=_a.next_send_at.type))
)


def _owned_query(lock: bool) -> Any:
    stmt = (
        select(_m.id, _m.status, _m.attempts)
        .where(_m.id.in_(bindparam("ids", expanding=True)))
        .order_by(_m.id)  # one locking order for every dispatcher
    )
    return stmt.with_for_update() if lock else stmt


_OWNED = {False: _owned_query(False), True: _owned_query(True)}
#: A send the provider accepted. The guard repeats what :data:`_OWNED` found: a record that
#: comes late never touches a row another dispatcher took over.
_SENT = Prepared(
    update(_messages)
    .where(
        _m.id == bindparam("row_id"),
        _m.status == "sending",
        _m.attempts == bindparam("claimed_attempts"),
    )
    .values(
        status="sent",
        sent_at=bindparam("sent_at", type_=_m.sent_at.type),
        provider_id=bindparam("provider", type_=_m.provider_id.type),
        segments=func.coalesce(bindparam("billed", type_=_m.segments.type), _m.segments),
        error=None,
        lease_until=None,
    )
)


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
        self._on_sqlite = bind is None or is_sqlite(bind.url)
        self._skip_locked = not self._on_sqlite
        self._pruned_at: datetime | None = None
        #: The last claim left messages waiting for their pacing until this.
        self._soonest: datetime | None = None
        #: The last claim left due messages alone because their address was still busy here.
        self._skipped_busy = False

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
        with transaction(self._sessions) as s:
            conn = s.connection()
            jobs: list[Job] = []
            for channel in self._transports:
                jobs += self._claim_channel(
                    s, conn, channel, now, limit or self._settings.batch, busy
                )
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
        rows = conn.execute(_CLAIM["queued", self._skip_locked], params).all()
        expired = conn.execute(_CLAIM["sending", self._skip_locked], params).all()
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
        for row in rows:
            if row.address is None:  # erased by FORGET before it could be sent
                settled.append(
                    {"row_id": row.id, "new_status": "failed", "new_error": "address erased"}
                )
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
                if _outside_window(pacing, job, address, now):
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
            _LEASE.executemany(conn, leased)
        if settled:
            _SET_STATUS.executemany(conn, settled)
        if pacing is not None and budget is not None and budget.next_free_at != budget.loaded:
            conn.execute(_SET_BUDGET, {"budget_key": pacing.key, "next_free": budget.next_free_at})
        moved = [
            {"address_id": a.id, "next_send": a.next_send_at}
            for a in addresses.values()
            if a.next_send_at != a.loaded_next_send_at
        ]
        if moved:
            _SET_NEXT_SEND.executemany(conn, moved)
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
        stmt = _BUDGET.with_for_update() if self._skip_locked else _BUDGET
        found = conn.execute(stmt, {"key": pacing.key}).scalar_one_or_none()
        if found is None:
            repo.init_send_budget(s, pacing.key, now)
            found = conn.execute(stmt, {"key": pacing.key}).scalar_one()
        return _Budget(max(found, now), found)

    def _addresses(
        self, conn: Connection, channel: str, values: set[str | None]
    ) -> dict[str, _AddressRow]:
        query = _PACING_ADDRESSES[self._skip_locked]
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
            return Outcome(job, error=exc)
        except Exception as exc:
            log.exception("message %d: unexpected error while sending", job.id)
            return Outcome(job, error=errors.Unknown(f"{type(exc).__name__}"))
        return Outcome(job, receipt=receipt)

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
                    await _first(stop.wait(), pipeline.room(refill_below))
                    continue
                # Cleared before the claim looks: a commit or a record after it wakes us.
                wake.clear()
                pipeline.recorded.clear()
                try:
                    jobs = await pipeline.in_db(self.claim, None, pipeline.busy())
                except Exception:
                    # The database went away for a moment: wait, then carry on; never die.
                    log.exception("dispatcher claim failed; retrying")
                    await _first(stop.wait(), timeout=idle_poll)
                    continue
                if jobs:
                    pipeline.start(jobs)
                    continue
                wait = idle_poll
                if self._soonest is not None:
                    # Messages wait for their pacing: look again when the first may go.
                    until = (self._soonest - self._clock()).total_seconds()
                    wait = min(wait, max(until, 0.01))
                waits = [wake.wait(), stop.wait()]
                if self._skipped_busy:
                    # Due messages wait for their address's earlier ones to be recorded.
                    waits.append(pipeline.recorded.wait())
                await _first(*waits, timeout=wait)
            await pipeline.drain()

    @contextlib.asynccontextmanager
    async def _pipeline(self) -> AsyncIterator[_Pipeline]:
        pipeline = _Pipeline(self)
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
            current = {
                row.id: (row.status, row.attempts)
                for row in conn.execute(_OWNED[self._skip_locked], {"ids": ids})
            }
            # Our lease ran out and another dispatcher took the row over: not ours to record.
            mine = [o for o in outcomes if current.get(o.job.id) == ("sending", o.job.attempts)]
            plain = [o for o in mine if o.receipt is not None and o.receipt.template is None]
            if plain:
                _SENT.executemany(
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
            if self._pruned_at is None or now - self._pruned_at > timedelta(minutes=1):
                repo.prune_status_reports(s, now - self._settings.report_ttl)
                self._pruned_at = now

    def _record_rest(self, s: Session, outcomes: list[Outcome], now: datetime) -> list[Message]:
        """Failures, deferrals and templates, through the ORM (they are few); the rows sent."""
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


class _Pipeline:
    """One run of a dispatcher: its transactions, ``concurrency`` senders working through
    the claimed messages (one citizen's in order), and the outcomes waiting for their group's
    transaction."""

    #: Waits between tries of a group's record that failed (the database went away).
    RETRIES: Final = (0.05, 0.25, 1.0)

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._settings = dispatcher._settings
        self._loop = asyncio.get_running_loop()
        # Claims and records run one at a time, never queueing for each other's write lock
        # in SQLite's sleeping busy handler. PostgreSQL's round trips go to a thread of their
        # own, so that sends go on meanwhile. SQLite runs in this process, a statement in
        # microseconds: on the event loop it saves the two threads' fight for the GIL
        # (18% more messages a second, docs/performance.md). The loop then waits only when
        # another process holds the write lock (at most busy_timeout, 5 s: well within the
        # send timeouts), and the sends would soon wait for their records then anyway.
        self._db: ThreadPoolExecutor | None = None
        if not dispatcher._on_sqlite:
            self._db = ThreadPoolExecutor(1, thread_name_prefix="voxpop-dispatch-db")
        #: Claimed and not yet sent (also those waiting for their pacing).
        self.in_flight = 0
        self._room = asyncio.Event()
        self._room_below = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Addresses with messages claimed, sent or being sent and not yet recorded.
        self._owned: dict[tuple[str, str], int] = {}
        #: One citizen's messages each, in order, due now; and those due later.
        self._due: asyncio.Queue[tuple[list[Job], float]] = asyncio.Queue()
        self._later: set[asyncio.TimerHandle] = set()
        #: Finished outcomes waiting for their group, one list per citizen.
        self._finished: list[list[Outcome]] = []
        self._waiting = 0
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        #: Set after each group's transaction.
        self.recorded = asyncio.Event()
        self._recording = False
        #: Finished outcomes not yet committed, and how many there may be before sends wait.
        self._unrecorded = 0
        self._most_unrecorded = 2 * self._settings.record_group
        self._closing = False
        self._recorder = asyncio.ensure_future(self._record_groups())
        self._senders = [
            asyncio.ensure_future(self._sender()) for _ in range(self._settings.concurrency)
        ]

    async def in_db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn``, a transaction: on the database thread, or here on SQLite."""
        if self._db is None:
            return fn(*args, **kwargs)
        return await self._loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def busy(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._owned)

    async def room(self, below: int) -> None:
        """Until fewer than ``below`` claimed messages are left to send."""
        while self.in_flight >= below:
            self._room.clear()
            self._room_below = below
            await self._room.wait()

    def start(self, jobs: list[Job]) -> None:
        """Send ``jobs``: one citizen's one after the other (an intro before its first
        question), different citizens' in parallel, each when its pacing lets it go."""
        claimed = time.monotonic()
        queues: dict[tuple[str, str], list[Job]] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            queues.setdefault((job.channel, job.address), []).append(job)
        for key, queue in queues.items():
            self._owned[key] = self._owned.get(key, 0) + len(queue)
            self.in_flight += len(queue)
            self._idle.clear()
            self._when_due(queue, claimed)

    def _when_due(self, queue: list[Job], claimed: float) -> None:
        """Hand ``queue`` to a sender when its first message's turn has come; no sender
        waits for a turn meanwhile."""
        wait = queue[0].delay - (time.monotonic() - claimed)
        if wait <= 0:
            self._due.put_nowait((queue, claimed))
            return

        def due() -> None:
            self._later.discard(timer)
            self._due.put_nowait((queue, claimed))

        timer = self._loop.call_later(wait, due)
        self._later.add(timer)

    async def _sender(self) -> None:
        while True:
            queue, claimed = await self._due.get()
            await self._in_order(queue, claimed)

    async def _in_order(self, queue: list[Job], claimed: float) -> None:
        send = self._dispatcher.send
        outcomes: list[Outcome] = []
        rest: list[Job] = []
        try:
            for index, job in enumerate(queue):
                if index and job.delay - (time.monotonic() - claimed) > 0:
                    rest = queue[index:]  # the next one's turn is later: free this sender
                    self._when_due(rest, claimed)
                    break
                if self._unrecorded >= self._most_unrecorded:
                    # The database lags: what a kill could resend stays bounded.
                    await self._recorded_some()
                outcome = await send(job)
                outcomes.append(outcome)
                self._sent(1)
                if outcome.error is not None:
                    later = queue[index + 1 :]
                    outcomes += [Outcome(job, deferred=True) for job in later]
                    self._sent(len(later))
                    break
        finally:
            # Finished outcomes join the next group; a send cancelled by close() leaves its
            # row to the lease, like a dispatcher killed mid-send.
            if outcomes:
                self._finish(outcomes)
            if not rest:
                self._release(queue[len(outcomes) :])

    async def _recorded_some(self) -> None:
        while self._unrecorded >= self._most_unrecorded:
            self._full.set()  # no point waiting for the interval
            self.recorded.clear()
            await self.recorded.wait()

    def _sent(self, count: int) -> None:
        self.in_flight -= count
        if self.in_flight < self._room_below:
            self._room.set()
        if self.in_flight <= 0:
            self._idle.set()

    def _finish(self, outcomes: list[Outcome]) -> None:
        self._finished.append(outcomes)
        self._waiting += len(outcomes)
        self._unrecorded += len(outcomes)
        self._ready.set()
        if self._waiting >= self._settings.record_group:
            self._full.set()

    def _release(self, jobs: list[Job]) -> None:
        for job in jobs:
            key = (job.channel, job.address)
            left = self._owned.get(key, 0) - 1
            if left > 0:
                self._owned[key] = left
            else:
                self._owned.pop(key, None)

    async def _record_groups(self) -> None:
        """Record what has finished, every ``record_interval`` or ``record_group``."""
        interval = self._settings.record_interval.total_seconds()
        while True:
            await self._ready.wait()
            if self._waiting < self._settings.record_group and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._full.wait()
            group, self._finished, self._waiting = self._finished, [], 0
            self._ready.clear()
            self._full.clear()
            self._recording = True
            try:
                await self._record(group)
            finally:
                self._recording = False
            for outcomes in group:
                self._release([outcome.job for outcome in outcomes])
                self._unrecorded -= len(outcomes)
            self.recorded.set()

    async def _record(self, group: list[list[Outcome]]) -> None:
        """One transaction for the group; if the database refuses it, a few more tries, then
        each citizen's outcomes apart, so that one bad outcome cannot hold back the rest.
        What still fails is left ``sending``: sent again once its lease runs out."""
        record = self._dispatcher.record
        flat = [outcome for outcomes in group for outcome in outcomes]
        for wait in (*self.RETRIES, None):
            try:
                await self.in_db(record, flat)
                return
            except Exception:
                log.exception("recording %d outcomes failed", len(flat))
                if wait is None:
                    break
                await asyncio.sleep(wait)
        for outcomes in group:
            try:
                await self.in_db(record, outcomes)
            except Exception:
                log.exception("recording %d outcomes failed; left to the lease", len(outcomes))

    async def drain(self) -> None:
        """Until every claimed message is sent and every outcome recorded."""
        await self._idle.wait()
        await self._flush()

    async def _flush(self) -> None:
        while (self._finished or self._recording) and not self._recorder.done():
            self._full.set()
            self.recorded.clear()
            await self.recorded.wait()

    async def close(self) -> None:
        """Stop: sends still under way are cancelled and messages not yet sent dropped
        (their rows wait for the lease); what has finished is recorded."""
        self._closing = True
        for sender in self._senders:
            sender.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        for timer in self._later:
            timer.cancel()
        self._later.clear()
        try:
            if not self._recorder.done():
                await self._flush()
        finally:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            if self._db is not None:
                self._db.shutdown(wait=True)


async def _first(*waits: Awaitable[Any], timeout: float | None = None) -> None:
    """Until the first of ``waits`` is done, or ``timeout``."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


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
