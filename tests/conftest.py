"""Shared fixtures. Database tests run on BOTH engines.

Fixtures:

``db_url``
    The URL (``str``) of an empty database migrated to head by Alembic. Parametrized: every
    test that uses it (directly or through ``engine``/``db``) runs twice, with ids
    ``[sqlite]`` and ``[postgresql]``. SQLite: a fresh file per test, copied from one template
    migrated once per run. PostgreSQL: one throwaway schema per run (random name, dropped at
    the end; the URL's ``search_path`` points at it), every table truncated before each test.
    For one engine only: ``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``.
``engine``
    :func:`storage.db.make_engine` on ``db_url``; disposed after the test.
``db``
    A ``sessionmaker[Session]`` on ``engine``; use ``with storage.db.transaction(db) as s:``.
``postgres_url``
    The server URL without a schema (see :func:`postgres_test_url`).
``telegram``, ``twilio``
    The loopback fake providers (:mod:`tests.fakes`), one each per test.

For the whole run (``make_run_ports``), 127.0.0.1:8080 (``make run``) and 127.0.0.1:8090
(``make phone``) are taken by an impostor that answers every request with 421: a test that
binds or calls a fixed port fails here as it would next to a running Voxpop (every server a
test starts binds port 0).

Environment: ``VOXPOP_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://root@127.0.0.1:5432/test``).
An unreachable PostgreSQL fails the tests, unless ``VOXPOP_TEST_SKIP_POSTGRES=1`` (then they
are skipped) — except under ``CI=true``, where it always fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, session_factory, with_schema
from storage.migrate import upgrade
from storage.models import Base
from tests.csrf_client import CsrfClient
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio

DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
#: ``make run`` and ``make phone`` listen here on a developer's machine, maybe during the tests.
MAKE_RUN_PORTS = (8080, 8090)


class _Impostor(BaseHTTPRequestHandler):
    """Stands on a port tests must not use: anything sent to it is refused, loudly."""

    def _refuse(self) -> None:
        body = b"not the Voxpop under test: tests bind port 0, never make run's ports\n"
        self.send_response(421)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._refuse()

    def do_POST(self) -> None:
        self._refuse()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session", autouse=True)
def csrf_token_in_test_clients() -> Iterator[None]:
    """Every app's test client posts with a CSRF token, as its pages do (tests.csrf_client)."""
    before = Flask.test_client_class
    Flask.test_client_class = CsrfClient
    yield
    Flask.test_client_class = before


@pytest.fixture(scope="session", autouse=True)
def make_run_ports() -> Iterator[dict[int, str]]:
    """Hold :data:`MAKE_RUN_PORTS` for the run, as a running ``make run`` would (see the
    module docstring); a port something else holds already is taken anyway. Which is which:
    ``{port: "impostor" or "taken before"}``."""
    held: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        for port in MAKE_RUN_PORTS:
            try:
                server = ThreadingHTTPServer(("127.0.0.1", port), _Impostor)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                held[port] = "taken before"
                continue
            held[port] = "impostor"
            server.daemon_threads = True
            stack.callback(server.server_close)
            thread = threading.Thread(target=server.serve_forever, name=f"impostor-{port}")
            thread.start()
            stack.callback(thread.join)
            stack.callback(server.shutdown)
        yield held


def postgres_test_url() -> str:
    """The PostgreSQL server used by tests: ``$VOXPOP_TEST_POSTGRES_URL`` or the default."""
    return os.environ.get("VOXPOP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _postgres_unavailable(url: str, error: Exception) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    reason = (
        f"PostgreSQL at {shown} is unreachable ({error}). Start it or point "
        "VOXPOP_TEST_POSTGRES_URL at one; VOXPOP_TEST_SKIP_POSTGRES=1 skips these tests "
        "(never in CI)."
    )
    if _truthy("VOXPOP_TEST_SKIP_POSTGRES") and not _truthy("CI"):
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server URL for tests, without a schema."""
    return postgres_test_url()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "voxpop.db"
    upgrade(f"sqlite:///{path}")
    # upgrade() disposed its engine, so WAL was checkpointed into the main file: copy it alone.
    return path


@pytest.fixture(scope="session")
def _postgres_schema(postgres_url: str) -> Iterator[tuple[str, Engine]]:
    """A throwaway schema for this run, migrated to head, and an engine on it."""
    admin = make_engine(postgres_url)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        _postgres_unavailable(postgres_url, exc.orig or exc)
    # A random name per run, so concurrent runs (two terminals, CI shards) never meet.
    schema = f"voxpop_test_{os.getpid()}_{secrets.token_hex(4)}"
    url = with_schema(postgres_url, schema)
    engine = make_engine(url)
    try:
        upgrade(postgres_url, schema=schema)
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on each engine (see the module docstring)."""
    backend: str = request.param
    if backend == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "voxpop.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    if backend == "postgresql":
        url, engine = request.getfixturevalue("_postgres_schema")
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            # Before, not after, each test: a failed test's rows are still there to inspect.
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        assert isinstance(url, str)
        return url
    raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``, disposed after the test (no ResourceWarnings)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; open one with ``storage.db.transaction(db)``."""
    return session_factory(engine)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A fake Telegram Bot API on loopback, for the test alone."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """A fake Twilio REST API on loopback, for the test alone."""
    with FakeTwilio() as fake:
        yield fake
