"""Schema migrations through Alembic's API; the scripts live in ``storage/migrations``.

>>> head() == sorted(p.stem[:4] for p in MIGRATIONS.glob("versions/0*.py"))[-1]
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from storage.db import make_engine
from storage.models import Base

__all__ = ["alembic_config", "current", "differences", "head", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts, optionally bound to ``connection``."""
    config = Config()
    # ConfigParser interpolates "%", which a checkout path may contain.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError("no migration scripts found")
    return revision


def upgrade(url: str, schema: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (in PostgreSQL ``schema``, created if absent)."""
    engine = make_engine(url, schema=schema)
    try:
        with engine.begin() as conn:
            if schema is not None:
                # The search_path already names it; tables land there once it exists.
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def current(url: str, schema: str | None = None) -> str | None:
    """The revision the database is at, or ``None`` if it was never migrated."""
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def differences(url: str, schema: str | None = None) -> list[Any]:
    """What ``alembic check`` would report: model changes that no migration covers yet."""
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
