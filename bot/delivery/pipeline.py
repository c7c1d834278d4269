"""One run of a dispatcher (:class:`bot.delivery.dispatcher.Dispatcher`): ``concurrency``
senders work through the claimed messages, one citizen's in order; outcomes wait for their group's
transaction (every ``record_interval``, or ``record_group`` outcomes); claims and records run
one at a time, on the event loop on SQLite and on a database thread on PostgreSQL
(docs/delivery.md, docs/performance.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, ParamSpec, TypeVar

from bot.delivery.sending import DispatchSettings, Job, Outcome

__all__ = ["Pipeline", "first"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Pipeline:
    """One run of a dispatcher: its transactions, ``concurrency`` senders working through
    the claimed messages (one citizen's in order), and the outcomes waiting for their group's
    transaction."""

    #: Waits between tries of a group's record that failed (the database went away).
    RETRIES: Final = (0.05, 0.25, 1.0)

    def __init__(
        self,
        send: Callable[[Job], Awaitable[Outcome]],
        record: Callable[[list[Outcome]], None],
        settings: DispatchSettings,
        *,
        on_sqlite: bool,
    ) -> None:
        self._send = send
        self._record_outcomes = record
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        # Claims and records run one at a time, never queueing for each other's write lock
        # in SQLite's sleeping busy handler. PostgreSQL's round trips go to a thread of their
        # own, so that sends go on meanwhile. SQLite runs in this process, a statement in
        # microseconds: on the event loop it saves the two threads' fight for the GIL
        # (18% more messages a second, docs/performance.md). The loop then waits only when
        # another process holds the write lock (at most busy_timeout, 5 s: well within the
        # send timeouts), and the sends would soon wait for their records then anyway.
        self._db: ThreadPoolExecutor | None = None
        if not on_sqlite:
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
        send = self._send
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
        record = self._record_outcomes
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


async def first(*waits: Awaitable[Any], timeout: float | None = None) -> None:
    """Until the first of ``waits`` is done, or ``timeout``."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
