"""The outbox bell (storage.outbox_bell), on both engines: a ring from another connection
wakes a listener at once; a ring nobody listens to is harmless; a listener stops cleanly."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text

from storage import outbox_bell
from storage.db import make_engine
from storage.outbox_bell import CHANNEL, bell, listen, pipe_path


def test_a_ring_from_another_engine_wakes_the_listener(engine: Engine, db_url: str) -> None:
    heard = threading.Event()
    other = make_engine(db_url)  # another process's pool, as a gunicorn worker has
    try:
        ring = bell(other)
        with listen(engine, heard.set):
            ring()
            assert heard.wait(5), "the listener did not hear the ring"
            heard.clear()
            ring()  # and again: the bell keeps working
            assert heard.wait(5)
        ring()  # nobody listens any more: nothing happens, nothing fails
    finally:
        other.dispose()


def test_on_postgresql_a_ring_right_after_listen_is_heard_however_slow_the_connection(
    postgres_url: str,
) -> None:
    """``listen`` enters its block only once its LISTEN is in place. The listener's connection
    here waits for the first ring (or half a second): a listener that did not wait would
    LISTEN after the NOTIFY, and miss it every time."""
    engine = make_engine(postgres_url)
    other = make_engine(postgres_url)
    gate = threading.Event()
    event.listen(engine, "connect", lambda *_: gate.wait())
    release = threading.Timer(0.5, gate.set)  # for a listener that waits for its LISTEN
    heard = threading.Event()
    try:
        release.start()
        with listen(engine, heard.set):
            bell(other)()
            gate.set()
            assert heard.wait(5), "the listener missed the first ring"
    finally:
        release.cancel()
        engine.dispose()
        other.dispose()


def test_ringing_with_nobody_listening_is_harmless(engine: Engine) -> None:
    bell(engine)()
    path = pipe_path(engine)
    if path is not None:  # SQLite: only a listener makes the pipe
        assert not os.path.exists(path)


def test_on_sqlite_the_bell_is_a_named_pipe_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'voxpop.db'}")
    try:
        with listen(engine, lambda: None):
            path = tmp_path / "voxpop.db.wake"
            assert stat.S_ISFIFO(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        engine.dispose()


def test_a_file_in_the_pipes_place_is_never_written_to(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'voxpop.db'}")
    somebody = tmp_path / "voxpop.db.wake"
    somebody.write_text("notes\n", encoding="utf-8")
    try:
        heard = threading.Event()
        with listen(engine, heard.set):  # falls back to polling, with a warning
            bell(engine)()
            assert not heard.wait(0.3)
    finally:
        engine.dispose()
    assert somebody.read_text(encoding="utf-8") == "notes\n"
    assert "not a named pipe" in caplog.text


def test_an_in_memory_database_has_no_bell() -> None:
    engine = make_engine("sqlite://")
    try:
        assert pipe_path(engine) is None
        with listen(engine, lambda: None):
            bell(engine)()
    finally:
        engine.dispose()


def test_on_postgresql_a_listener_whose_connection_is_killed_listens_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(outbox_bell, "_RECONNECT", 0.1)
    engine = make_engine(postgres_url)
    heard = threading.Event()
    try:
        with listen(engine, heard.set):
            ring = bell(engine)
            ring()
            assert heard.wait(5), "the listener never heard a ring"
            with engine.begin() as conn:  # a failover, an idle timeout, an operator's kill
                killed = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query = :listen AND pid <> pg_backend_pid()"
                    ),
                    {"listen": f"LISTEN {CHANNEL}"},
                ).all()
            assert killed, "no listening connection found"
            heard.clear()
            deadline = time.monotonic() + 5
            while not heard.is_set():
                assert time.monotonic() < deadline, "the listener did not come back"
                ring()
                heard.wait(0.05)
    finally:
        engine.dispose()
    assert "listening for new messages failed" in caplog.text
