"""The scheduler: ONE active per database wakes :class:`bot.pushes.service.Pushes` up.

A :class:`Scheduler` first takes the database's scheduler lock (:func:`scheduler_lock`): a
session-level advisory lock on PostgreSQL, an OS file lock next to the database file on SQLite.
Both vanish when their holder dies, so a scheduler that cannot take the lock stands by, retries
every ``[scheduler] standby_retry_seconds`` and takes over.

While it holds the lock it runs APScheduler with two jobs stores:

- ``default``: :class:`SQLAlchemyJobStore` on the ``apscheduler_jobs`` table (Alembic creates
  it), one date job ``push:<id>`` per scheduled push, calling :func:`fire_push`;
- ``memory``: the ``tick`` interval job, re-created at every start with the configured interval
  (persisting it would only write a row every tick), calling :func:`tick`.

The push rows are the truth: the CLI only writes rows, and every tick *reconciles* the jobs
with them (APScheduler 3 cannot share a job store between processes, and a job added by
another process would not wake this one). Jobs never give up on lateness
(``misfire_grace_time=None``): :meth:`Pushes.fire` applies the documented misfire policy, and
firing is idempotent, so a double fire plans nobody twice. See ``docs/scheduler.md``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from apscheduler.executors.base import BaseExecutor, run_job  # type: ignore[import-untyped]
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from bot.config import SchedulerConfig
from bot.health import OK, Heartbeat
from bot.log_privacy import log_failure
from bot.pushes.service import FireResult
from channels.ids import decimal_id
from storage.db import is_sqlite, session_factory
from storage.models import SchedulerJob

__all__ = [
    "LOCK_KEY",
    "FileLock",
    "PostgresLock",
    "PushWork",
    "Scheduler",
    "SchedulerLock",
    "fire_push",
    "push_job_id",
    "scheduler_lock",
    "tick",
]

log = logging.getLogger(__name__)

#: First key of the scheduler's advisory lock ("VoxS"); the second is the schema's, so two
#: deployments in two schemas of one database (or two test runs) each elect their own.
LOCK_KEY = 0x566F7853
#: Job stores: push jobs persist in the database, the tick lives in memory.
PUSH_STORE = "default"
TICK_STORE = "memory"
TICK_JOB = "tick"


def push_job_id(push_id: int) -> str:
    """The APScheduler job id of a push.

    >>> push_job_id(12)
    'push:12'
    """
    return f"push:{push_id}"


def _push_id(job_id: str) -> int | None:
    prefix, _, number = job_id.partition(":")
    return decimal_id(number) if prefix == "push" else None


class PushWork(Protocol):
    """What the scheduler wakes up: :class:`bot.pushes.service.Pushes`."""

    def scheduled(self) -> list[tuple[int, datetime]]:
        """``(push id, time)`` of every push waiting for its time."""

    def fire(self, push_id: int) -> FireResult:
        """Fire one push, idempotently, applying the misfire policy."""

    def tick(self) -> object:
        """Carry out what fell due since the last tick."""


# --- the lock ---------------------------------------------------------------------------------


class SchedulerLock(Protocol):
    """Who may schedule: held by at most one scheduler per database."""

    def acquire(self) -> bool:
        """Take the lock if it is free; ``False`` when another holds it."""

    def alive(self) -> bool:
        """Whether the lock is still ours (its connection or file still there)."""

    def release(self) -> None:
        """Let go (also when already lost); the next :meth:`acquire` starts afresh."""


class PostgresLock:
    """A session-level advisory lock on a connection of its own, kept open while held.

    PostgreSQL releases it when the session ends, so a scheduler killed with SIGKILL, or cut
    off from the database, frees it for the standby.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is None:
            # AUTOCOMMIT: the connection stays open for hours; it must not hold a transaction.
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = self._conn.execute(text("SELECT current_schema()")).scalar_one()
            taken = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key, :schema)"),
                {"key": LOCK_KEY, "schema": _int32(zlib.crc32(str(schema).encode()))},
            ).scalar_one()
        except SQLAlchemyError:
            self._drop()
            raise
        return bool(taken)

    def alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        with suppress(SQLAlchemyError):  # a dead session holds nothing any more
            self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
        self._drop()

    def _drop(self) -> None:
        # invalidate(), not close(): a pooled connection would keep whatever lock the session
        # still had, and hand it to the next borrower.
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


def _int32(value: int) -> int:
    """``value`` (0 to 2**32-1) as PostgreSQL's signed ``int4``.

    >>> _int32(1), _int32(2**32 - 1)
    (1, -1)
    """
    return value - 2**32 if value >= 2**31 else value


class FileLock:
    """An exclusive ``flock`` on ``path``: the OS drops it when the process dies.

    ``flock`` rather than ``fcntl`` record locks: those are per process, so a second scheduler
    in the same process would take the lock again; ``flock`` conflicts per open file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        if not self.alive():
            # Someone removed the file between our open and our lock: that lock guards nothing.
            self.release()
            return False
        # For an operator wondering who holds it.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def alive(self) -> bool:
        if self._fd is None:
            return False
        try:
            ours, there = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        if self._fd is None:
            return
        # The file stays: removing it would let a newcomer lock a new file while a standby
        # still waits on the old one.
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


class _PrivateLock:
    """An in-memory SQLite database is private to its process: nobody to exclude."""

    def __init__(self) -> None:
        self._held = False

    def acquire(self) -> bool:
        self._held = True
        return True

    def alive(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False


def scheduler_lock(engine: Engine) -> SchedulerLock:
    """The scheduler lock of ``engine``'s database: an advisory lock on PostgreSQL, else the
    file ``<database file>.scheduler.lock``."""
    if not is_sqlite(engine.url):
        return PostgresLock(engine)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return _PrivateLock()
    path = Path(database)
    return FileLock(path.with_name(path.name + ".scheduler.lock"))


# --- APScheduler's plumbing -------------------------------------------------------------------


class _PushJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """APScheduler's store on the runtime's engine, which the runtime, not the store, owns."""

    def shutdown(self) -> None:
        pass  # SQLAlchemyJobStore would dispose of the shared engine


class _DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]
    """Each job in a daemon thread of its own (jobs are few: a tick, a push now and then).

    APScheduler's thread pool joins its workers at interpreter exit, so a job stuck on the
    database would keep a stopped scheduler alive forever. A daemon thread ends with the
    process; its transaction rolls back, and firing again later is harmless.
    """

    def __init__(self, on_submit: Callable[[str], None]) -> None:
        super().__init__()
        self._on_submit = on_submit

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        # Before APScheduler removes a run date job from its store (see Scheduler.reconcile).
        self._on_submit(job.id)

        def work() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:  # run_job catches the job's own; this is ours
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=work, name=f"voxpop-{job.id}", daemon=True).start()


# The job functions: persistent jobs name them by textual reference
# ("bot.pushes.scheduler:fire_push"), and they reach the process's active scheduler through
# this slot.
_active: Scheduler | None = None
_active_guard = threading.Lock()


def fire_push(push_id: int) -> None:
    """Job: fire push ``push_id`` through the active scheduler of this process."""
    runner = _active
    if runner is None:
        log.warning("push %d: no active scheduler in this process; left for the next", push_id)
        return
    runner.fire(push_id)


def tick() -> None:
    """Job: reconcile the push jobs with the rows, then :meth:`Pushes.tick`."""
    runner = _active
    if runner is not None:
        runner.tick()


def _log_failure(what: str, exc: BaseException) -> None:
    log_failure(what, exc, log)


# --- the runner -------------------------------------------------------------------------------


class Scheduler:
    """Stands by for the scheduler lock, then runs APScheduler while it holds it.

    :meth:`run` blocks until :meth:`request_stop` (``voxpop scheduler``); :meth:`start` and
    :meth:`stop` run it in a background thread (``voxpop serve``).
    """

    def __init__(
        self,
        engine: Engine,
        pushes: PushWork,
        config: SchedulerConfig,
        *,
        lock: SchedulerLock | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self._engine = engine
        self._pushes = pushes
        self._config = config
        self._lock = lock if lock is not None else scheduler_lock(engine)
        self._stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._is_active = threading.Event()
        self._standing_by = threading.Event()
        self._aps: Any = None
        self._thread: threading.Thread | None = None
        # Pushes being fired right now: their jobs are gone from the store, but the tick must
        # not set them again. Marked when a job is submitted (before APScheduler removes it),
        # unmarked after the fire under _reconciling, so a reconcile never sees a push both
        # still scheduled and no longer firing.
        self._firing: set[int] = set()
        self._reconciling = threading.Lock()
        self._running = 0
        self._idle = threading.Condition()
        # Readiness (bot.health) reads it, also in web workers that run no scheduler.
        every = max(config.tick_seconds, config.standby_retry_seconds)
        self._heartbeat = Heartbeat(session_factory(engine), "scheduler", every)

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether this scheduler holds the lock and runs the jobs."""
        return self._is_active.is_set()

    def wait_active(self, timeout: float) -> bool:
        return self._is_active.wait(timeout)

    def wait_standing_by(self, timeout: float) -> bool:
        return self._standing_by.wait(timeout)

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        self._stop.set()

    def start(self) -> None:
        """Run in a background thread."""
        self._thread = threading.Thread(target=self.run, name="voxpop-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread: jobs shut down, the lock released."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Stand by, take over, schedule; step down when the lock is lost; until stopped."""
        retry = self._config.standby_retry_seconds
        # What was last said, so that a long standby or outage is logged once, not every retry.
        said: str | None = None
        while not self._stop.is_set():
            try:
                taken = self._lock.acquire()
            except (SQLAlchemyError, OSError) as exc:
                taken = False
                if said != "unreachable":
                    reason = getattr(exc, "orig", None) or exc
                    log.warning("scheduler cannot take its lock (%s); retrying", reason)
                    said = "unreachable"
            else:
                if not taken and said != "standing by":
                    log.info("scheduler standing by: another scheduler holds the lock")
                    said = "standing by"
            if not taken:
                self._standing_by.set()
                self._heartbeat.beat({"scheduler": "standing by"})
                self._stop.wait(retry)
                continue
            said = None
            self._standing_by.clear()
            failed = False
            try:
                self._activate()
                self._watch()
            except Exception as exc:
                _log_failure("scheduler", exc)
                failed = True
            finally:
                self._deactivate()
                self._lock.release()
            if failed:
                self._stop.wait(retry)
        self._heartbeat.remove()
        log.info("scheduler stopped")

    def _watch(self) -> None:
        self._heartbeat.beat({"scheduler": OK})
        # Each tick: still ours? A lost connection means the standby may already run.
        while not self._stop.wait(self._config.tick_seconds):
            if not self._lock.alive():
                log.warning("scheduler lost its lock: stepping down")
                return
            # A bug in APScheduler's loop would end its thread silently; start afresh.
            thread = getattr(self._aps, "_thread", None)
            if thread is not None and not thread.is_alive():
                log.error("scheduler: APScheduler's thread died; restarting")
                return
            self._heartbeat.beat({"scheduler": OK})

    def _activate(self) -> None:
        global _active
        with _active_guard:
            if _active is not None and _active is not self:
                raise RuntimeError("another scheduler is active in this process")
            _active = self
        # A job submitted just before a step-down may never have run: start with a clean slate.
        with self._reconciling:
            self._firing.clear()
        self._aps = BackgroundScheduler(
            timezone=UTC,
            jobstores={
                PUSH_STORE: _PushJobStore(
                    engine=self._engine, tablename=SchedulerJob.__tablename__
                ),
                TICK_STORE: MemoryJobStore(),
            },
            executors={"default": _DaemonThreadExecutor(self._submitted)},
            # The push rows decide what is too late (Pushes.fire), never APScheduler.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        # Paused until the jobs match the rows: a cancelled push's stale job must not run.
        self._aps.start(paused=True)
        self.reconcile()
        self._aps.add_job(
            tick,
            IntervalTrigger(seconds=self._config.tick_seconds, timezone=UTC),
            id=TICK_JOB,
            name=TICK_JOB,
            jobstore=TICK_STORE,
            next_run_time=datetime.now(UTC),
        )
        self._aps.resume()
        self._is_active.set()
        log.info("scheduler active: ticking every %gs", self._config.tick_seconds)

    def _deactivate(self) -> None:
        global _active
        was_active = self._is_active.is_set()
        self._is_active.clear()
        if self._aps is not None:
            if self._aps.running:
                # wait=False: our job threads are daemons; we wait for them below, bounded.
                self._aps.shutdown(wait=False)
            self._aps = None
        with _active_guard:
            if _active is self:
                _active = None
        if not self._wait_idle(self._stop_timeout):
            log.warning("scheduler: a job is still running after %gs", self._stop_timeout)
        if was_active:
            log.info("scheduler stepped down")

    # -- jobs ----------------------------------------------------------------------------------

    @contextmanager
    def _job(self) -> Iterator[None]:
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def fire(self, push_id: int) -> None:
        """Fire one push (a job); errors are logged and the next tick retries it."""
        with self._job():
            self._firing.add(push_id)
            try:
                result = self._pushes.fire(push_id)
            except Exception as exc:
                _log_failure(f"push {push_id}: firing", exc)
                return
            finally:
                with self._reconciling:
                    self._firing.discard(push_id)
        log.info("push %d: %s (%d recipients)", push_id, result.outcome, result.planned)

    def tick(self) -> None:
        """Reconcile the push jobs with the rows, then let :meth:`Pushes.tick` do what is due."""
        with self._job():
            try:
                self.reconcile()
            except Exception as exc:
                _log_failure("scheduler: reconciling push jobs", exc)
            try:
                self._pushes.tick()
            except Exception as exc:
                _log_failure("scheduler: tick", exc)

    def _submitted(self, job_id: str) -> None:
        # No lock here: APScheduler holds its own, which reconcile takes after ours.
        push_id = _push_id(job_id)
        if push_id is not None:
            self._firing.add(push_id)

    def reconcile(self) -> None:
        """Make the push jobs match the rows: a date job per scheduled push at its time; no
        job for a push that is no longer scheduled (cancelled, fired elsewhere)."""
        with self._reconciling:
            self._reconcile()

    def _reconcile(self) -> None:
        aps = self._aps
        if aps is None:
            return
        # Jobs first: one missing from the store was either never set or is already marked
        # as firing (marked before its removal).
        jobs = {job.id: job for job in aps.get_jobs(jobstore=PUSH_STORE)}
        wanted: dict[int, datetime] = dict(self._pushes.scheduled())
        for push_id, at in wanted.items():
            if push_id in self._firing:
                continue
            job = jobs.get(push_job_id(push_id))
            if job is not None and getattr(job.trigger, "run_date", None) == at:
                continue
            # A time already passed (no scheduler ran, or a fire failed) makes it due now.
            aps.add_job(
                fire_push,
                DateTrigger(run_date=at, timezone=UTC),
                args=(push_id,),
                id=push_job_id(push_id),
                name=push_job_id(push_id),
                jobstore=PUSH_STORE,
                replace_existing=True,
            )
            log.info("push %d: job set for %s UTC", push_id, f"{at:%Y-%m-%d %H:%M:%S}")
        for job_id in jobs:
            if _push_id(job_id) in wanted:
                continue
            try:
                aps.remove_job(job_id, jobstore=PUSH_STORE)
            except JobLookupError:
                continue  # it ran meanwhile
            log.info("job %s removed: its push is no longer scheduled", job_id)
