"""Backups and restores as docs/deployment.md tells them, and ``voxpop --version``.

SQLite: ``voxpop db backup`` while Voxpop writes in another process gives a whole, consistent,
self-contained copy, and the guide's restore brings it back. PostgreSQL: the guide's own
``createdb``, ``pg_dump`` and ``pg_restore`` lines, run as written, restore a copy Voxpop
accepts, with the same pseudonyms in its exports.
"""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.config import Config, DatabaseConfig
from bot.runtime import build_runtime
from bot.service import utc_now
from messages import Address, InboundMessage
from storage.db import make_engine
from tests.deploy._writer import HELD_KEY
from tests.deploy.guide import ROOT, VENV_BIN, guide_lines

VOXPOP = str(VENV_BIN / "voxpop")


def voxpop(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installed ``voxpop`` on ``url``, as an operator runs it."""
    env = {**os.environ, "VOXPOP_CONFIG": os.devnull, "VOXPOP_DATABASE__URL": url}
    env["VOXPOP_LOGGING__LEVEL"] = "WARNING"
    done = subprocess.run(
        [VOXPOP, *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


# --- voxpop --version -------------------------------------------------------------------------


def test_version_is_the_installed_packages_and_needs_no_config() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    env = {**os.environ, "VOXPOP_CONFIG": "/nonexistent/voxpop.toml"}  # would stop any command

    shown = subprocess.run([VOXPOP, "--version"], capture_output=True, text=True, env=env)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"voxpop {importlib.metadata.version('voxpop')}\n"
    assert shown.stdout == f"voxpop {pyproject['project']['version']}\n"


# --- SQLite: voxpop db backup -----------------------------------------------------------------


class Writer:
    """``tests.deploy._writer`` in its own process: Voxpop storing conversations."""

    def __init__(self, url: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.deploy._writer", *extra, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.last = ""

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def wait_for(self, line: str) -> None:
        while self.last != line:
            self.last = self.stdout.readline().strip()
            assert self.last or self.process.poll() is None, "the writer stopped"
            assert self.last, "the writer stopped"

    def count_past(self, n: int) -> int:
        while not self.last.isdigit() or int(self.last) < n:
            self.last = self.stdout.readline().strip()
            assert self.last, "the writer stopped"
        return int(self.last)

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        rest = self.stdout.read().split()
        assert self.process.wait(timeout=30) == 0
        return int(rest[-1]) if rest and rest[-1].isdigit() else int(self.last)


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.process.kill()
        with writer.process:  # waits, and closes its pipes
            pass


def _sqlite_file(db_url: str) -> Path:
    database = make_url(db_url).database
    assert database
    return Path(database)


def _conversations(path: Path) -> tuple[int, int]:
    """(citizens who wrote, citizens who wrote and have no reply queued) in a copy."""
    with sqlite3.connect(path) as copy:
        wrote = copy.execute(
            "SELECT COUNT(DISTINCT contact_id) FROM messages WHERE direction = 'in'"
        ).fetchone()[0]
        unanswered = copy.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT contact_id FROM messages i "
            "WHERE direction = 'in' AND NOT EXISTS (SELECT 1 FROM messages o "
            "WHERE o.direction = 'out' AND o.contact_id = i.contact_id))"
        ).fetchone()[0]
    copy.close()
    return int(wrote), int(unanswered)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_backup_taken_while_voxpop_writes_is_whole_and_the_guides_restore_brings_it_back(
    db_url: str, tmp_path: Path, writers: list[Writer]
) -> None:
    voxpop(db_url, "survey", "load", "surveys/examples/")
    live = _sqlite_file(db_url)
    writer = Writer(db_url)
    writers.append(writer)
    writer.count_past(20)
    backup = tmp_path / "backups" / "voxpop-2026-12-07.db"
    backup.parent.mkdir()

    done = voxpop(db_url, "db", "backup", str(backup))

    wrote, unanswered = _conversations(backup)
    writer.count_past(wrote + 20)  # it writes on past the copy, undisturbed
    writer.finish()
    assert done.stdout.startswith(f"backed up to {backup} (")
    assert sorted(p.name for p in backup.parent.iterdir()) == [backup.name]  # no -wal, no tmp
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy.close()
    assert wrote >= 20  # those written before the backup began are in it
    assert unanswered == 0  # every message is there with its replies, or not at all

    # The guide's restore: everything stopped; the old files (with -wal, -shm) moved away.
    aside = live.parent / "before-restore"
    aside.mkdir()
    for old in live.parent.glob(live.name + "*"):
        if old.name in (live.name, f"{live.name}-wal", f"{live.name}-shm"):
            old.rename(aside / old.name)
    shutil.copyfile(backup, live)

    assert "already up to date" in voxpop(db_url, "db", "upgrade").stdout
    assert "central-park" in voxpop(db_url, "survey", "list").stdout
    assert _conversations(live) == (wrote, 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_backup_neither_waits_for_nor_takes_a_transaction_in_progress(
    db_url: str, tmp_path: Path, writers: list[Writer]
) -> None:
    writer = Writer(db_url, "--hold")
    writers.append(writer)
    writer.wait_for("holding")  # the writer holds the write lock until we say so

    voxpop(db_url, "db", "backup", str(tmp_path / "copy.db"))

    writer.say("commit")
    writer.wait_for("committed")
    assert writer.process.wait(timeout=30) == 0
    held = "SELECT COUNT(*) FROM settings WHERE key = ?"
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute(held, (HELD_KEY,)).fetchone()[0] == 0
    copy.close()
    with sqlite3.connect(_sqlite_file(db_url)) as source:
        assert source.execute(held, (HELD_KEY,)).fetchone()[0] == 1
    source.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_backup_never_overwrites_and_says_what_to_do_otherwise(
    db_url: str, tmp_path: Path, postgres_url: str
) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"last night's backup")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    sqlite3.connect(tmp_path / "empty.db").close()
    folder = tmp_path / "out"
    folder.mkdir()

    cases = {
        (db_url, str(existing)): "already exists",
        (postgres_url, str(folder / "pg.db")): "back PostgreSQL up with pg_dump",
        (empty, str(folder / "empty-copy.db")): "no Voxpop schema",
        (f"sqlite:///{tmp_path / 'missing.db'}", str(folder / "m.db")): "no such database",
        (db_url, str(tmp_path / "nowhere" / "x.db")): "no such folder",
    }
    for (url, target), reason in cases.items():
        refused = voxpop(url, "db", "backup", target, check=False)
        assert refused.returncode == 1, (url, target)
        assert reason in refused.stderr, refused.stderr

    assert existing.read_bytes() == b"last night's backup"
    assert list(folder.iterdir()) == []  # nothing half-written left behind


# --- PostgreSQL: the guide's pg_dump and pg_restore -------------------------------------------


def _postgres_tools() -> None:
    missing = [tool for tool in ("createdb", "pg_dump", "pg_restore") if not shutil.which(tool)]
    if missing:
        reason = f"PostgreSQL client tools not installed: {', '.join(missing)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)


def _run_guide_line(line: str, names: dict[str, str], env: dict[str, str]) -> None:
    """Run a line of the guide in bash; ``createdb`` as the administrator, with our names."""
    if line.startswith("sudo -u postgres createdb "):
        words = shlex.split(line.removeprefix("sudo -u postgres "))
        words = [names.get(word, word) for word in words]
        words = [
            f"--owner={names[w.removeprefix('--owner=')]}" if w.startswith("--owner=") else w
            for w in words
        ]
        line = shlex.join(words)
    done = subprocess.run(["bash", "-c", line], capture_output=True, env=env)
    assert done.returncode == 0, f"{line}\n{done.stderr.decode()}"


def test_the_guides_pg_dump_and_pg_restore_lines_restore_the_same_database(
    postgres_url: str, tmp_path: Path
) -> None:
    _postgres_tools()
    # The guide's names (role voxpop, databases voxpop and voxpop_restored), made unique here.
    tag = secrets.token_hex(4)
    names = {"voxpop": f"voxpop_guide_{tag}", "voxpop_restored": f"voxpop_guide_{tag}_restored"}
    server = make_url(postgres_url)
    admin = make_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    env = {
        **os.environ,
        "PGHOST": server.host or "127.0.0.1",
        "PGPORT": str(server.port or 5432),
        "PGUSER": server.username or "postgres",
        "PGDATABASE": server.database or "postgres",
    }

    def url(database: str, driver: str) -> str:
        parsed = server.set(drivername=driver, username=names["voxpop"], database=database)
        return parsed.render_as_string(hide_password=False)

    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{names["voxpop"]}" LOGIN'))
    try:
        (setup,) = [line for line in guide_lines("sudo -u postgres createdb") if "_" not in line]
        _run_guide_line(setup, names, env)
        live = url(names["voxpop"], "postgresql+psycopg")
        voxpop(live, "db", "upgrade")
        voxpop(live, "survey", "load", "surveys/examples/")
        runtime = build_runtime(Config(database=DatabaseConfig(url=live)))
        try:
            for i in range(3):  # three citizens answer the first question
                for n, said in enumerate(("PARK", "2")):
                    sender = Address("sms", f"+3247000{i:04d}")
                    runtime.service.receive(InboundMessage(sender, said, f"SM{i}{n}", utc_now()))
        finally:
            runtime.close()
        exported = voxpop(live, "results", "export", "central-park").stdout

        env |= {
            "PG_URL": url(names["voxpop"], "postgresql"),
            "BACKUP": str(tmp_path / "voxpop.dump"),
            "RESTORED_URL": url(names["voxpop_restored"], "postgresql"),
        }
        (dump,) = guide_lines("pg_dump ")
        _run_guide_line(dump, names, env)
        (restore_db,) = [line for line in guide_lines("sudo -u postgres createdb") if "_" in line]
        _run_guide_line(restore_db, names, env)
        (restore,) = guide_lines("pg_restore ")
        _run_guide_line(restore, names, env)

        restored = url(names["voxpop_restored"], "postgresql+psycopg")
        assert "already up to date" in voxpop(restored, "db", "upgrade").stdout
        again = voxpop(restored, "results", "export", "central-park").stdout
        assert again == exported  # the same answers under the same pseudonyms
        assert len(again.splitlines()) == 1 + 3
    finally:
        with admin.connect() as conn:
            for database in (names["voxpop_restored"], names["voxpop"]):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{names["voxpop"]}"'))
        admin.dispose()
