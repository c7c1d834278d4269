"""A bell that wakes the dispatchers of one database, from any process: messages were queued.

``voxpop serve`` wakes its own dispatcher thread directly. Other processes write to the
outbox too (gunicorn's workers answering webhooks, ``voxpop scheduler`` inviting and
reminding): they ring this bell after their commit, and every dispatcher listening on the
same database (``voxpop dispatch``, ``voxpop serve``) claims at once instead of at its next
idle poll.

- **SQLite**: a named pipe beside the database file, ``<database>.wake``. A dispatcher holds
  it open (for writing as well as reading, so that it never reads end-of-file) and waits on
  it in a thread; a ring writes one byte without blocking, and does nothing when no
  dispatcher has the pipe open. One dispatcher waking is enough: any of them claims.
- **PostgreSQL**: ``NOTIFY voxpop_outbox`` on a pooled connection; a dispatcher ``LISTEN``s
  on a connection of its own, in a thread, and connects again if it is lost.

A ring is a hint, not a guarantee: a lost one costs at most ``[dispatch]
idle_poll_seconds``. Ringing never raises, and never blocks. What is guaranteed: once
:func:`listen` has entered its block, a ring is heard (unless the database cannot be reached,
or its connection is lost: then the listener polls until it listens again).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine

__all__ = ["CHANNEL", "bell", "listen", "pipe_path"]

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel.
CHANNEL = "voxpop_outbox"
#: How often a listener looks up from its wait to see whether it should stop, or to retry a
#: lost PostgreSQL connection after this many seconds.
_STOP_CHECK = 0.5
_RECONNECT = 5.0


def pipe_path(engine: Engine) -> str | None:
    """The SQLite database's named pipe, or ``None`` (PostgreSQL, or SQLite in memory)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}.wake"


def bell(engine: Engine) -> Callable[[], None]:
    """A function that rings the dispatchers listening on ``engine``'s database."""
    if engine.dialect.name == "postgresql":

        def notify() -> None:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
                    conn.commit()
            except Exception as exc:  # a hint only: the dispatcher polls anyway
                log.warning("could not ring the dispatchers: %s", type(exc).__name__)

        return notify
    path = pipe_path(engine)
    if path is None:
        return lambda: None
    return lambda: _write_byte(path)


def _write_byte(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        # ENOENT: no dispatcher ever listened here; ENXIO: none is listening now.
        if exc.errno not in (errno.ENOENT, errno.ENXIO):
            log.warning("could not ring the dispatchers: %s", exc.strerror)
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into somebody's file
            os.write(fd, b"\n")
    except BlockingIOError:
        pass  # the pipe is full of rings nobody has read yet: the dispatcher is awake
    except OSError as exc:
        log.warning("could not ring the dispatchers: %s", exc.strerror)
    finally:
        os.close(fd)


@contextlib.contextmanager
def listen(engine: Engine, on_ring: Callable[[], None]) -> Iterator[None]:
    """Call ``on_ring`` (from a thread of its own) whenever the bell rings, until the block
    ends. Without a way to listen (SQLite in memory, a pipe that cannot be made), nothing is
    called and the dispatcher polls as before."""
    if engine.dialect.name == "postgresql":
        stop, ready = threading.Event(), threading.Event()
        with _thread(lambda: _listen_postgres(engine, on_ring, stop, ready)):
            try:
                # A NOTIFY before the LISTEN is lost: enter the block only once it is in place
                # (or the first try failed, and the dispatcher polls meanwhile).
                ready.wait()
                yield
            finally:
                stop.set()
        return
    path = pipe_path(engine)
    fd = _open_pipe(path) if path is not None else None
    if fd is None:
        yield
        return
    stop_read, stop_write = os.pipe()
    try:
        with _thread(lambda: _listen_pipe(fd, stop_read, on_ring)):
            try:
                yield
            finally:
                os.write(stop_write, b"x")
    finally:
        for descriptor in (fd, stop_read, stop_write):
            os.close(descriptor)


@contextlib.contextmanager
def _thread(target: Callable[[], None]) -> Iterator[None]:
    """``target`` in a daemon thread, joined when the block ends (after the block's own
    ``finally`` told it to stop)."""
    thread = threading.Thread(target=target, name="voxpop-outbox-bell", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _open_pipe(path: str) -> int | None:
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    try:
        # Read and write: with a writer of our own the pipe never reports end-of-file.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        log.warning("cannot listen for new messages at %s: %s; polling", path, exc.strerror)
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        log.warning("%s is not a named pipe; polling for new messages instead", path)
        return None
    return fd


def _listen_pipe(fd: int, stop_read: int, on_ring: Callable[[], None]) -> None:
    while True:
        ready, _, _ = select.select([fd, stop_read], [], [])
        if stop_read in ready:
            return
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):  # every ring so far: one wake is enough
                pass
        on_ring()


def _listen_postgres(
    engine: Engine, on_ring: Callable[[], None], stop: threading.Event, ready: threading.Event
) -> None:
    """LISTEN until ``stop``, connecting again after a loss; ``ready`` is set once the first
    LISTEN is in place, or the first try failed."""
    while not stop.is_set():
        try:
            conn: Any = engine.raw_connection()
        except Exception as exc:
            log.warning("cannot listen for new messages (%s); polling", type(exc).__name__)
            ready.set()
            stop.wait(_RECONNECT)
            continue
        try:
            driver = conn.driver_connection
            driver.autocommit = True
            try:
                driver.execute(f"LISTEN {CHANNEL}")
            finally:
                ready.set()
            while not stop.is_set():
                for _ in driver.notifies(timeout=_STOP_CHECK):
                    on_ring()
        except Exception as exc:
            log.warning("listening for new messages failed (%s); again soon", type(exc).__name__)
            conn.invalidate()  # never back to the pool in LISTEN mode
            stop.wait(_RECONNECT)
        else:
            conn.invalidate()
        finally:
            conn.close()
