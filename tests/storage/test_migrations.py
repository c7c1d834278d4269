"""Alembic owns the schema: migrations reach head on both engines and match the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Engine, inspect

from storage.db import make_engine
from storage.migrate import alembic_config, current, differences, head, upgrade
from storage.models import Base


def test_migrated_to_head(db_url: str) -> None:
    assert current(db_url) == head() == "0003"


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
