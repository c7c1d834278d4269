"""``voxpop db backup``: a consistent copy of a live SQLite database, taken while it is in use.

The copy goes through SQLite's online backup API on a connection of the running database, in
one step: it reads one snapshot (WAL lets the web workers, dispatchers and scheduler go on
writing meanwhile, and none of their half-done transactions is in it). The copy is written
beside the target under a temporary name, turned into a single self-contained file (no
``-wal`` beside it), checked, and only then renamed to the target: a file at the target
is always a whole backup. PostgreSQL is backed up with ``pg_dump`` (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from storage.db import is_sqlite, make_engine

__all__ = ["BackupError", "BackupResult", "backup_sqlite"]


class BackupError(Exception):
    """A backup that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    target: Path
    #: The schema revision of the copy (``voxpop db upgrade`` brings a restored copy forward).
    revision: str
    size: int


def backup_sqlite(url: str, target: Path) -> BackupResult:
    """Copy the SQLite database at ``url`` to ``target`` (which must not exist yet)."""
    if not is_sqlite(url):
        raise BackupError(
            "the database is not SQLite: back PostgreSQL up with pg_dump (docs/deployment.md)"
        )
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("the database is not a file: there is nothing to back up")
    source = Path(database)
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    if target.exists():
        raise BackupError(f"{target}: already exists; give a new name (or remove it first)")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such folder")
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    os.close(fd)
    try:
        _copy(url, Path(temporary))
        revision = _check(Path(temporary))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(target.parent)
    return BackupResult(target, revision, target.stat().st_size)


def _copy(url: str, temporary: Path) -> None:
    engine = make_engine(url)
    try:
        pooled = engine.raw_connection()
        try:
            live = pooled.driver_connection
            assert isinstance(live, sqlite3.Connection)
            copy = sqlite3.connect(temporary, isolation_level=None)
            try:
                # pages=-1: the whole database in one step, so the copy is one snapshot.
                live.backup(copy, pages=-1)
                # The copy stands alone: rollback journal, everything in the one file.
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
        finally:
            pooled.close()
    finally:
        engine.dispose()


def _check(path: Path) -> str:
    """The copy's schema revision, after SQLite's own check of every page."""
    copy = sqlite3.connect(path)
    try:
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"the copy failed SQLite's integrity check: {verdict}")
        try:
            row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None:
            raise BackupError("the database has no Voxpop schema: nothing worth backing up")
        revision = str(row[0])
    finally:
        copy.close()
    with path.open("rb") as stream:
        os.fsync(stream.fileno())
    return revision


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder itself is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
