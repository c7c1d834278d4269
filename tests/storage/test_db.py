"""Engine settings, the transaction helper and UTC timestamps, on both engines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import InternalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.db import make_engine, scrub_wal, transaction, with_schema
from storage.models import Contact, Setting

NOW = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
BRUSSELS_SUMMER = timezone(timedelta(hours=2))


def _contact(at: datetime) -> Contact:
    return Contact(attributes={}, created_at=at, updated_at=at)


def test_utc_round_trip_returns_aware_utc(db: sessionmaker[Session]) -> None:
    local = datetime(2025, 6, 1, 14, 30, 0, 123456, tzinfo=BRUSSELS_SUMMER)
    with transaction(db) as s:
        s.add(_contact(local))
    with transaction(db) as s:
        stored = s.scalars(select(Contact.created_at)).one()
        later = s.scalars(
            select(Contact).where(Contact.created_at > local - timedelta(microseconds=1))
        ).all()
    assert stored == local
    assert stored.tzinfo is UTC
    assert stored.hour == 12
    assert stored.microsecond == 123456
    assert len(later) == 1


def test_naive_datetime_is_refused(db: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), transaction(db) as s:
        s.add(_contact(datetime(2025, 1, 1)))  # noqa: DTZ001 (the point of the test)
    with transaction(db) as s:
        assert s.scalars(select(Contact)).all() == []


def test_transaction_rolls_back_on_error(db: sessionmaker[Session]) -> None:
    def write_then_fail(s: Session) -> None:
        repo.set_setting(s, "k", "v")
        s.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), transaction(db) as s:
        write_then_fail(s)
    with transaction(db) as s:
        assert repo.get_setting(s, "k") is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_pragmas(engine: Engine) -> None:
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in (
                "journal_mode",
                "busy_timeout",
                "synchronous",
                "foreign_keys",
                "secure_delete",
            )
        }
    # synchronous 1 = NORMAL
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "synchronous": 1,
        "foreign_keys": 1,
        "secure_delete": 1,
    }


def _left_in_file(path: Path, secure: bool) -> bool:
    """Write rows around a phone number, delete it, empty the write-ahead log: whether the
    number is still somewhere in the database file's bytes."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            if not secure:  # what a connection without Voxpop's settings does
                conn.exec_driver_sql("PRAGMA secure_delete = OFF")
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            for n in range(40):
                value = "+32470918273 Zoë" if n == 20 else f"row {n} {'x' * 30}"
                conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
            conn.exec_driver_sql("DELETE FROM t WHERE v LIKE '+32%'")
        assert scrub_wal(engine)
        assert path.with_name(path.name + "-wal").stat().st_size == 0
        return b"32470918273" in path.read_bytes()
    finally:
        engine.dispose()


def test_sqlite_zeroes_what_it_deletes(tmp_path: Path) -> None:
    # Without secure_delete the deleted row stays in the page's free space: the check can fail.
    assert _left_in_file(tmp_path / "plain.db", secure=False)
    assert not _left_in_file(tmp_path / "voxpop.db", secure=True)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_scrubbing_postgresql_is_a_no_op(engine: Engine) -> None:
    # PostgreSQL keeps no write-ahead log file of ours: nothing to do, and it says done.
    assert scrub_wal(engine)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_concurrent_writers_neither_deadlock_nor_lose_updates(
    db: sessionmaker[Session],
) -> None:
    # Read-then-write in deferred transactions fails with "database is locked" at once;
    # BEGIN IMMEDIATE makes the second writer wait its turn instead.
    rounds = 50
    with transaction(db) as s:
        repo.set_setting(s, "counter", "0")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def bump() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                with transaction(db) as s:
                    value = int(repo.get_setting(s, "counter") or "0")
                    repo.set_setting(s, "counter", str(value + 1))
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with transaction(db) as s:
        assert s.get(Setting, "counter") is not None
        assert repo.get_setting(s, "counter") == str(2 * rounds)


def test_with_schema_validates_names() -> None:
    url = "postgresql+psycopg://root@localhost/test"
    assert with_schema(url, "t_1").endswith("?options=-csearch_path%3Dt_1")
    with pytest.raises(ValueError, match="invalid schema"):
        with_schema(url, 'x"; DROP TABLE contacts; --')
    with pytest.raises(ValueError, match="only supported on PostgreSQL"):
        with_schema("sqlite:///x.db", "t")


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine("mysql://localhost/x")


def test_a_read_only_transaction_does_not_hold_up_a_writer(db: sessionmaker[Session]) -> None:
    with transaction(db, read_only=True) as reader:
        assert reader.scalars(select(Setting)).all() == []
        # On SQLite an IMMEDIATE reader would make this wait for the busy timeout, then fail.
        with transaction(db) as writer:
            repo.set_setting(writer, "k", "v")
        assert repo.get_setting(reader, "k") in (None, "v")  # snapshot rules differ; no matter


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_refuses_writes_in_a_read_only_transaction(db: sessionmaker[Session]) -> None:
    with pytest.raises(InternalError, match="read-only"), transaction(db, read_only=True) as s:
        repo.set_setting(s, "k", "v")
    with transaction(db) as s:  # the pooled connection is writable again
        repo.set_setting(s, "k", "v")
