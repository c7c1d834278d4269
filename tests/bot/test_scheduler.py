"""The scheduler: one active per database, standby and takeover, jobs reconciled with the push
rows, misfires after downtime, double fires, restarts. Real time, kept short (ticks of 0.2 s)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, SchedulerConfig
from bot.pushes.scheduler import LOCK_KEY, FileLock, Scheduler, push_job_id, scheduler_lock
from bot.pushes.service import FireResult, Pushes
from bot.service import Service, read_survey_sources
from storage.db import is_sqlite, make_engine, session_factory, transaction
from storage.models import PushRow, SchedulerJob

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "surveys" / "examples" / "central-park.toml")
FAST = SchedulerConfig(tick_seconds=0.2, standby_retry_seconds=0.1)
CONFIG = Config(scheduler=FAST)


def _now() -> datetime:
    return datetime.now(UTC)


def _until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def service(db: sessionmaker[Session]) -> Service:
    svc = Service(db)
    # A real consultation to push, so that firing plans against a survey that exists.
    svc.load_surveys(read_survey_sources([EXAMPLE]))
    return svc


def _pushes(
    db: sessionmaker[Session],
    service: Service,
    *,
    clock: Callable[[], datetime] = _now,
    config: Config = CONFIG,
) -> Pushes:
    return Pushes(db, service, config, clock=clock)


def _add_push(db: sessionmaker[Session], at: datetime, status: str = "scheduled") -> int:
    """A push row as `voxpop push` writes it (to an audience of nobody here)."""
    with transaction(db) as s:
        row = PushRow(
            survey_slug="central-park",
            kind="invitation",
            status=status,
            scheduled_at=at,
            created_at=_now(),
            created_by="staff",
            audience={},
            channels=["sms"],
            timezone="UTC",
            quiet_hours=None,
            rate_per_second=20.0,
            variants=None,
            reminders=None,
            message=None,
        )
        s.add(row)
        s.flush()
        return row.id


def _push(db: sessionmaker[Session], push_id: int) -> PushRow:
    with transaction(db, read_only=True) as s:
        row = s.get(PushRow, push_id)
        assert row is not None
        return row


def _jobs(db: sessionmaker[Session]) -> dict[str, float | None]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(select(SchedulerJob.id, SchedulerJob.next_run_time))
        return {job_id: next_run_time for job_id, next_run_time in rows}


def _fired(db: sessionmaker[Session], push_id: int) -> bool:
    return _push(db, push_id).status not in ("scheduled", "missed")


@contextmanager
def _running(runner: Scheduler, *, active: bool = True) -> Iterator[Scheduler]:
    runner.start()
    try:
        if active:
            assert runner.wait_active(5), "the scheduler did not become active"
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def second_engine(db_url: str) -> Iterator[Engine]:
    """Another engine on the same database: another scheduler's connections."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


# --- one active scheduler per database --------------------------------------------------------


def test_the_lock_is_held_by_one_at_a_time(engine: Engine, second_engine: Engine) -> None:
    first, second = scheduler_lock(engine), scheduler_lock(second_engine)
    assert first.acquire()
    try:
        assert first.alive()
        assert not second.acquire()
    finally:
        first.release()
    assert not first.alive()
    assert second.acquire()
    second.release()


def test_a_second_scheduler_stands_by_and_takes_over(
    engine: Engine,
    second_engine: Engine,
    db: sessionmaker[Session],
    service: Service,
) -> None:
    first = Scheduler(engine, _pushes(db, service), FAST)
    other = session_factory(second_engine)
    second = Scheduler(second_engine, _pushes(other, Service(other)), FAST)
    with _running(first), _running(second, active=False):
        assert second.wait_standing_by(5)
        time.sleep(0.3)  # a few retries: still standing by
        assert not second.active
        assert first.active
        first.stop()
        assert not first.active
        assert second.wait_active(5), "the standby did not take over"
        # The new active scheduler does the work: a push due now fires.
        push_id = _add_push(db, _now())
        _until(lambda: _fired(db, push_id), what="the push to fire")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_scheduler_whose_connection_died_steps_down(
    engine: Engine, db: sessionmaker[Session], service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.pushes.scheduler")
    with _running(Scheduler(engine, _pushes(db, service), FAST)) as runner:
        with engine.begin() as conn:
            # Only this schema's scheduler: another test run may share the server.
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND classid = :key AND objid::bigint = :schema AND objsubid = 2"
                ),
                {"key": LOCK_KEY, "schema": zlib.crc32(str(schema).encode())},
            ).all()
        assert killed == [(True,)]
        _until(lambda: "scheduler lost its lock: stepping down" in caplog.text, what="step-down")
        # Nobody else holds the lock: it takes it again and works on.
        _until(lambda: runner.active, what="the scheduler to be active again")
        push_id = _add_push(db, _now())
        _until(lambda: _fired(db, push_id), what="the push to fire")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_lock_out_of_reach_is_reported_once_and_taken_when_back(
    engine: Engine,
    db: sessionmaker[Session],
    service: Service,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.pushes.scheduler")
    folder = tmp_path / "not-yet"
    lock = FileLock(folder / "voxpop.db.scheduler.lock")
    with _running(Scheduler(engine, _pushes(db, service), FAST, lock=lock), active=False) as runner:
        assert runner.wait_standing_by(5)
        time.sleep(0.5)  # several retries
        assert caplog.text.count("scheduler cannot take its lock") == 1
        assert not runner.active
        folder.mkdir()
        assert runner.wait_active(5)


# --- jobs follow the push rows ----------------------------------------------------------------


def test_jobs_follow_the_push_rows(
    db: sessionmaker[Session], engine: Engine, service: Service
) -> None:
    later = _now() + timedelta(hours=1)
    kept, cancelled = _add_push(db, later), _add_push(db, later + timedelta(hours=1))
    _add_push(db, later, status="cancelled")
    with _running(Scheduler(engine, _pushes(db, service), FAST)):
        # At start, before anything runs: a job per scheduled push, at its time.
        assert _jobs(db) == {
            push_job_id(kept): later.timestamp(),
            push_job_id(cancelled): (later + timedelta(hours=1)).timestamp(),
        }
        # What the CLI does: rows only. The next tick brings the jobs in line.
        moved = later + timedelta(minutes=30)
        with transaction(db) as s:
            s.execute(update(PushRow).where(PushRow.id == kept).values(scheduled_at=moved))
            s.execute(update(PushRow).where(PushRow.id == cancelled).values(status="cancelled"))
        added = _add_push(db, later + timedelta(hours=2))
        expected = {
            push_job_id(kept): moved.timestamp(),
            push_job_id(added): (later + timedelta(hours=2)).timestamp(),
        }
        _until(lambda: _jobs(db) == expected, what="the jobs to match the rows")


def test_a_push_fires_at_its_time(
    db: sessionmaker[Session], engine: Engine, service: Service
) -> None:
    with _running(Scheduler(engine, _pushes(db, service), FAST)):
        at = _now() + timedelta(seconds=0.6)
        push_id = _add_push(db, at)
        _until(lambda: push_job_id(push_id) in _jobs(db), what="the job")
        _until(lambda: _fired(db, push_id), what="the push to fire")
        fired_at = _push(db, push_id).fired_at
        assert fired_at is not None
        assert fired_at >= at
        # A date job runs once and is gone; the row is no longer scheduled, so none comes back.
        time.sleep(0.5)
        assert _jobs(db) == {}


def test_jobs_survive_a_restart(
    db: sessionmaker[Session], engine: Engine, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.pushes.scheduler")
    at = _now() + timedelta(seconds=1)
    push_id = _add_push(db, at)
    with _running(Scheduler(engine, _pushes(db, service), FAST)):
        assert push_job_id(push_id) in _jobs(db)
    # Stopped: the job stays in the database; its time passes while nobody runs.
    assert _jobs(db) == {push_job_id(push_id): at.timestamp()}
    time.sleep(max(0.0, (at - _now()).total_seconds()) + 0.1)
    caplog.clear()
    with _running(Scheduler(engine, _pushes(db, service), FAST)):
        _until(lambda: _fired(db, push_id), what="the late push to fire")
    # The stored job fired it: the restart found it there and did not set it again.
    assert "job set for" not in caplog.text


# --- misfires after downtime ------------------------------------------------------------------


def test_a_push_due_during_downtime_fires_or_is_missed_by_its_lateness(
    db: sessionmaker[Session], engine: Engine, service: Service
) -> None:
    # Two pushes fell due while no scheduler ran; it comes back as if hours later (the clock
    # Pushes reads), just inside the grace for one and just outside it for the other.
    grace = timedelta(hours=CONFIG.pushes.misfire_grace_hours)
    recent_at = _now() - timedelta(seconds=30)
    old_at = recent_at - timedelta(minutes=1)
    back = recent_at + grace - timedelta(seconds=30)
    recent, old = _add_push(db, recent_at), _add_push(db, old_at)
    with _running(Scheduler(engine, _pushes(db, service, clock=lambda: back), FAST)):
        _until(lambda: _push(db, old).status == "missed", what="the old push to be missed")
        _until(lambda: _fired(db, recent), what="the recent push to fire")
    recent_row, old_row = _push(db, recent), _push(db, old)
    assert recent_row.fired_at == back
    assert old_row.fired_at is None
    assert old_row.note is not None
    assert "missed" in old_row.note
    assert _jobs(db) == {}


def test_the_grace_comes_from_the_config(db: sessionmaker[Session], service: Service) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    config = replace(CONFIG, pushes=replace(CONFIG.pushes, misfire_grace_hours=1.0))
    inside, outside = _add_push(db, at), _add_push(db, at)
    late = at + timedelta(minutes=59)
    assert _pushes(db, service, clock=lambda: late, config=config).fire(inside).outcome == "fired"
    later = at + timedelta(minutes=61)
    assert _pushes(db, service, clock=lambda: later, config=config).fire(outside).outcome == (
        "missed"
    )


# --- double fires -----------------------------------------------------------------------------


def test_firing_twice_fires_once(db: sessionmaker[Session], service: Service) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    push_id = _add_push(db, at)
    first = _pushes(db, service, clock=lambda: at).fire(push_id)
    again = _pushes(db, service, clock=lambda: at + timedelta(minutes=1)).fire(push_id)
    assert first.outcome == "fired"
    assert again.outcome == "already fired"
    assert _push(db, push_id).fired_at == at


def test_two_schedulers_racing_fire_once(
    db: sessionmaker[Session], second_engine: Engine, service: Service
) -> None:
    # Two processes' worth of connections fire the same push at the same moment.
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    push_id = _add_push(db, at)
    other = session_factory(second_engine)
    racers = [
        _pushes(db, service, clock=lambda: at),
        _pushes(other, Service(other), clock=lambda: at + timedelta(seconds=1)),
    ]
    start = threading.Barrier(len(racers))
    results: list[FireResult] = []

    def race(pushes: Pushes) -> None:
        start.wait()
        results.append(pushes.fire(push_id))

    threads = [threading.Thread(target=race, args=(p,)) for p in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(r.outcome for r in results) == ["already fired", "fired"]
    winner = next(r for r in results if r.outcome == "fired")
    assert _push(db, push_id).fired_at in (at, at + timedelta(seconds=1))
    assert winner.push_id == push_id


# --- errors and stops -------------------------------------------------------------------------


class _Wrapped:
    """Real pushes with another tick."""

    def __init__(self, pushes: Pushes) -> None:
        self.pushes = pushes

    def scheduled(self) -> list[tuple[int, datetime]]:
        return self.pushes.scheduled()

    def fire(self, push_id: int) -> FireResult:
        return self.pushes.fire(push_id)


class _FailingTicks(_Wrapped):
    """A tick that fails, with a message that must not reach the log."""

    ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        raise ValueError("+32470123456 answered 'yes'")


def test_an_error_in_a_job_is_logged_without_personal_data_and_the_scheduler_goes_on(
    db: sessionmaker[Session], engine: Engine, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pushes = _FailingTicks(_pushes(db, service))
    with _running(Scheduler(engine, pushes, FAST)) as runner:
        _until(lambda: pushes.ticks >= 3, what="three ticks")
        push_id = _add_push(db, _now())
        _until(lambda: _fired(db, push_id), what="the push to fire")
        assert runner.active
    assert "scheduler: tick failed (ValueError)" in caplog.text
    assert "+3247" not in caplog.text
    assert "yes" not in caplog.text


class _SlowTicks(_Wrapped):
    """A tick stuck until released, like one waiting on a locked database."""

    def __init__(self, pushes: Pushes) -> None:
        super().__init__(pushes)
        self.entered, self.release = threading.Event(), threading.Event()

    def tick(self) -> None:
        self.entered.set()
        self.release.wait(30)


def test_a_stop_does_not_wait_forever_on_a_stuck_job(
    db: sessionmaker[Session], engine: Engine, second_engine: Engine, service: Service
) -> None:
    pushes = _SlowTicks(_pushes(db, service))
    runner = Scheduler(engine, pushes, FAST, stop_timeout=0.3)
    try:
        with _running(runner):
            assert pushes.entered.wait(5)
            started = time.monotonic()
        assert time.monotonic() - started < 3
        # The lock is free for the next scheduler.
        lock = scheduler_lock(second_engine)
        assert lock.acquire()
        lock.release()
    finally:
        pushes.release.set()


# --- separate processes -----------------------------------------------------------------------


def _scheduler_process(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_SCHEDULER__TICK_SECONDS": "0.2",
        "VOXPOP_SCHEDULER__STANDBY_RETRY_SECONDS": "0.2",
        "VOXPOP_LOGGING__LEVEL": "INFO",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "scheduler"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for_line(log: Path, needle: str, process: subprocess.Popen[bytes]) -> None:
    def seen() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the scheduler exited:\n{log.read_text()[-2000:]}")
        return needle in log.read_text()

    _until(seen, timeout=20, what=f"{needle!r} in {log.name}")


def test_the_standby_process_takes_over_when_the_active_one_is_killed(
    db_url: str, db: sessionmaker[Session], service: Service, tmp_path: Path
) -> None:
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _scheduler_process(db_url, first_log)
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_line(first_log, "scheduler active", first)
        second = _scheduler_process(db_url, second_log)
        _wait_for_line(second_log, "scheduler standing by", second)
        assert "scheduler active" not in second_log.read_text()

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # Scheduled after the kill: only the standby can fire it.
        push_id = _add_push(db, _now() + timedelta(seconds=0.3))
        _until(lambda: _fired(db, push_id), timeout=20, what="the standby to fire the push")
        assert _push(db, push_id).fired_at is not None
        _wait_for_line(second_log, f"push {push_id}: fired", second)

        # A clean stop: the lock is released and the process says so.
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0
        assert "scheduler stopped" in second_log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    if is_sqlite(db_url):
        assert Path(db_url.removeprefix("sqlite:///") + ".scheduler.lock").exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_runs_a_scheduler_and_stops_it(
    db_url: str, db: sessionmaker[Session], service: Service, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "VOXPOP_CONFIG": os.devnull,
        "VOXPOP_DATABASE__URL": db_url,
        "VOXPOP_SCHEDULER__TICK_SECONDS": "0.2",
        "VOXPOP_LOGGING__LEVEL": "INFO",
    }
    command = [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        _wait_for_line(log, "scheduler active", server)
        push_id = _add_push(db, _now() + timedelta(seconds=0.3))
        _until(lambda: _fired(db, push_id), timeout=10, what="serve's scheduler to fire")
        server.send_signal(signal.SIGINT)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert "scheduler stopped" in log.read_text()
