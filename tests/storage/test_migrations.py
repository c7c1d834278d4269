"""Alembic owns the schema: migrations reach head on both engines and match the models."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from storage.db import make_engine
from storage.migrate import alembic_config, current, differences, head, upgrade
from storage.models import Base


def test_migrated_to_head(db_url: str) -> None:
    assert current(db_url) == head() == "0008"


def test_models_and_migrations_agree(db_url: str) -> None:
    # The same comparison as `alembic check`: a model change without a migration fails here.
    assert differences(db_url) == []


def test_schema_has_every_table_and_the_partial_index(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    one_active = next(
        ix for ix in inspector.get_indexes("sessions") if ix["name"] == "uq_sessions_one_active"
    )
    assert one_active["unique"]
    assert one_active["column_names"] == ["contact_id"]


def test_comparison_is_not_vacuous(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert len(differences(url)) >= len(Base.metadata.tables)


def test_stored_jobs_of_the_old_module_paths_are_dropped(tmp_path: Path) -> None:
    # A job stored before bot/ was grouped names bot.scheduler:fire_push, which no longer
    # imports; the scheduler re-creates every push's job from its row when it starts.
    url = f"sqlite:///{tmp_path / 'voxpop.db'}"
    upgrade(url, revision="0004")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES (:i, 1, :s)"
                ),
                {"i": "push:1", "s": b"bot.scheduler:fire_push"},
            )
        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == 0
    finally:
        engine.dispose()


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'voxpop.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    assert current(url) is None
    upgrade(url)
    assert current(url) == head()
    assert differences(url) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """An empty database on each engine (a throwaway PostgreSQL schema), and its schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'voxpop.db'}", None
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    schema = f"voxpop_migration_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        yield postgres_url, schema
    finally:
        admin = make_engine(postgres_url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_messages_already_queued_get_their_claim_priority(
    fresh_url: tuple[str, str | None],
) -> None:
    url, schema = fresh_url
    upgrade(url, schema=schema, revision="0003")
    engine = make_engine(url, schema=schema)
    at = datetime(2026, 11, 27, tzinfo=UTC)
    kinds = {"a": "callback_answer", "b": "reply", "c": "push", "d": "keyboard_remove", "e": None}
    try:
        with engine.begin() as conn:
            for text_, kind in kinds.items():
                conn.execute(
                    text(
                        "INSERT INTO messages (direction, channel, kind, text, status, attempts, "
                        "created_at) VALUES (:d, 'sms', :k, :t, :s, 0, :at)"
                    ),
                    {
                        "d": "in" if kind is None else "out",
                        "k": kind,
                        "t": text_,
                        "s": "received" if kind is None else "queued",
                        "at": at,
                    },
                )
        upgrade(url, schema=schema)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT text, priority FROM messages")).all()
        found: dict[str, int] = {row[0]: row[1] for row in rows}
        assert found == {"a": 0, "b": 1, "c": 2, "d": 1, "e": 1}
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("messages")}
        assert "ix_messages_claim" in indexes
        assert "ix_messages_due" not in indexes
    finally:
        engine.dispose()
