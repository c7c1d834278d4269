"""Engines, sessions and the UTC datetime type, for SQLite and PostgreSQL alike.

SQLite is tuned for one small server: WAL (readers never block the writer), a busy timeout
(a second writer waits instead of failing), ``synchronous=NORMAL`` (safe with WAL), foreign
keys on, and ``BEGIN IMMEDIATE`` so a transaction takes the write lock up front rather than
failing with "database is locked" when it first writes after reading. Writers in all
processes queue at a file lock next to the database before ``BEGIN IMMEDIATE``
(:class:`_WriterGate`): SQLite's own busy handler sleeps 1, 2, 5, 10 ms between tries, so
under load the lock sat free while the next writer slept. Long reads (exports,
the staff console) use ``transaction(sm, read_only=True)``: a deferred BEGIN on SQLite, so they
never hold up a webhook, and ``READ ONLY`` on PostgreSQL.

>>> engine = make_engine("sqlite://")
>>> with engine.connect() as conn:
...     conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
1
>>> engine.dispose()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Engine, Text, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

__all__ = [
    "READ_ONLY",
    "SCRUB_WAIT_MS",
    "UtcDateTime",
    "is_sqlite",
    "make_engine",
    "scrub_wal",
    "session_factory",
    "transaction",
    "with_schema",
]

BUSY_TIMEOUT_MS = 5000
#: How long :func:`scrub_wal` waits for readers and writers by default: short, because a
#: webhook may be waiting; what it cannot do now is done at the dispatcher's next try.
SCRUB_WAIT_MS = 250
#: Execution option read by the SQLite "begin" hook: ``IMMEDIATE`` (default) or ``DEFERRED``.
SQLITE_BEGIN = "voxpop_sqlite_begin"
#: Execution options for a transaction that only reads, understood by both engines.
READ_ONLY: Mapping[str, Any] = MappingProxyType(
    {SQLITE_BEGIN: "DEFERRED", "postgresql_readonly": True}
)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_sqlite(url: str | URL) -> bool:
    """Whether ``url`` names a SQLite database.

    >>> is_sqlite("sqlite:///voxpop.db"), is_sqlite("postgresql+psycopg://db/voxpop")
    (True, False)
    """
    return make_url(url).get_backend_name() == "sqlite"


def with_schema(url: str | URL, schema: str) -> str:
    """A PostgreSQL URL whose connections use ``schema`` as their ``search_path``.

    Putting the schema in the URL (rather than in ``schema_translate_map``) means every
    consumer — the app, Alembic, ``psql``-minded tools — sees the same tables unqualified.

    >>> with_schema("postgresql+psycopg://root@db/test", "run_1")
    'postgresql+psycopg://root@db/test?options=-csearch_path%3Drun_1'
    """
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lowercase letters, digits, _")
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("a schema is only supported on PostgreSQL")
    if "options" in parsed.query:
        raise ValueError("the URL already sets connection options; add search_path there")
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def make_engine(url: str | URL, *, schema: str | None = None, echo: bool = False) -> Engine:
    """An engine for ``url`` with Voxpop's connection settings (see the module docstring).

    ``schema`` (PostgreSQL only) isolates everything in that schema; it must already exist
    (:func:`storage.migrate.upgrade` creates it).
    """
    if schema is not None:
        url = with_schema(url, schema)
    parsed = make_url(url)
    # hide_parameters: statement parameters hold phone numbers and answers; an error message
    # or a log line must never carry them.
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, echo=echo, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # pre_ping: a restarted server or a failover must not surface as a failed webhook.
        return create_engine(parsed, echo=echo, pool_pre_ping=True, hide_parameters=True)
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


class _WriterGate:
    """Writers to one SQLite file take turns here, in every process: an ``flock`` on
    ``<database>.writers`` taken (polled every 50-500 µs, so the next writer starts within
    a fraction of a millisecond) before ``BEGIN IMMEDIATE``, released after ``COMMIT`` or
    ``ROLLBACK``. The database's own lock stays the guarantee: past the busy timeout the
    gate gives up and lets SQLite decide. A process that dies loses its lock with it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, fd: int) -> bool:
        return self.acquire_for(fd, BUSY_TIMEOUT_MS / 1000)

    @staticmethod
    def acquire_for(fd: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        pause = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.0005)

    @staticmethod
    def release(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


_GATE_FD = "voxpop_writer_gate_fd"


def _configure_sqlite(engine: Engine) -> None:
    database = engine.url.database
    gate = None
    if database and database != ":memory:" and not database.startswith("file:"):
        gate = _WriterGate(f"{database}.writers")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 driver (it skips it before SELECT and DDL, so
        # reads aren't repeatable and DDL isn't transactional); the "begin" hook emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Deleted or overwritten content is zeroed in the file, not left in free space:
            # an erased phone number must not survive in a page (docs/conversation.md).
            cursor.execute("PRAGMA secure_delete = ON")
        finally:
            cursor.close()
        if gate is not None:
            record.info[_GATE_FD] = gate.open()

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        fd = record.info.pop(_GATE_FD, None)
        if fd is not None:
            os.close(fd)

    def _end(conn: Connection, statement: str) -> None:
        # The COMMIT or ROLLBACK is run here, so the gate opens only once it is done; the
        # driver's own commit() or rollback() then finds no transaction and does nothing.
        fd = conn.connection.info.get(_GATE_FD)
        driver = conn.connection.dbapi_connection
        try:
            if driver is not None and driver.in_transaction:
                conn.exec_driver_sql(statement)
        finally:
            if fd is not None:
                _WriterGate.release(fd)

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Connection) -> None:
        _end(conn, "COMMIT")

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        _end(conn, "ROLLBACK")

    @event.listens_for(engine, "reset")
    def _on_reset(_dbapi_connection: Any, record: ConnectionPoolEntry, _state: Any) -> None:
        fd = record.info.get(_GATE_FD)
        if fd is not None:
            _WriterGate.release(fd)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE: a deferred transaction that reads then writes gets SQLITE_BUSY at once
        # (the busy timeout cannot help it); taking the write lock first makes writers queue.
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"{SQLITE_BEGIN} must be IMMEDIATE or DEFERRED, not {mode!r}")
        fd = conn.connection.info.get(_GATE_FD)
        if mode == "IMMEDIATE" and gate is not None and fd is not None:
            gate.acquire(fd)
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            if fd is not None:
                _WriterGate.release(fd)
            raise


def scrub_wal(engine: Engine, wait_ms: int = SCRUB_WAIT_MS) -> bool:
    """Empty SQLite's write-ahead log, so that old copies of erased rows are gone from disk;
    whether it is empty now (always ``True`` on PostgreSQL, which has no such file).

    Every commit appends whole pages to ``<database>-wal``, and the file keeps old pages
    (with what was erased since) until a checkpoint copies the latest ones into the
    database and truncates it. A reader still using an older snapshot stops that: the
    checkpoint waits up to ``wait_ms``, then gives up, and the caller tries again later.
    Run it outside any transaction.
    """
    if not is_sqlite(engine.url):
        return True
    with engine.connect() as conn:
        driver = conn.connection.dbapi_connection
        assert driver is not None
        fd: int | None = conn.connection.info.get(_GATE_FD)
        # Writers queue at the gate (see _WriterGate): wait there too, not in SQLite's
        # busy handler, which would sleep while the lock sits free.
        gated = fd is not None and _WriterGate.acquire_for(fd, wait_ms / 1000)
        try:
            # On the driver: SQLAlchemy would BEGIN first, and a checkpoint cannot run in a
            # transaction. The connection is in autocommit mode (isolation_level None).
            driver.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
            busy, _log, _done = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            driver.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if fd is not None and gated:
                _WriterGate.release(fd)
    return bool(busy == 0)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sm: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any exception.

    ``read_only`` transactions do not take SQLite's write lock (a reader cannot delay a
    writer) and are refused writes by PostgreSQL.

    >>> engine = make_engine("sqlite://")
    >>> with transaction(session_factory(engine)) as s:
    ...     s.connection().exec_driver_sql("SELECT 1").scalar()
    1
    >>> engine.dispose()
    """
    with sm() as session:
        # Begin now, with the options: the BEGIN hook reads them.
        session.connection(execution_options=READ_ONLY if read_only else None)
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


class JsonText(TypeDecorator[Any]):
    """JSON kept as TEXT on SQLite.

    A column declared ``JSON`` gets NUMERIC affinity in SQLite, which rewrites the stored
    text ``7.0`` as the integer ``7``: a decimal answer would come back as a whole number.

    >>> JsonText().process_bind_param(7.0, None), JsonText().process_result_value("7.0", None)
    ('7.0', 7.0)
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect | None) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Dialect | None) -> Any:
        return None if value is None else json.loads(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored and returned as an aware UTC ``datetime``; naive input is refused.

    SQLite has no time zones, so values are stored as naive UTC there and the zone is put
    back on the way out; PostgreSQL uses ``timestamptz`` and results are converted to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass an aware datetime (UTC)"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
