"""Helpers shared by test modules."""

from __future__ import annotations

import os
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from bot.cli.main import main
from bot.config import Config
from bot.results.filters import ResultsFilter
from bot.results.service import Results
from bot.service import Service
from storage.models import Base


def voxpop(db_url: str, *args: str, input: str | None = None) -> Result:
    """Run ``voxpop ARGS`` on ``db_url`` with the built-in defaults otherwise (no config file)."""
    return CliRunner().invoke(
        main,
        list(args),
        input=input,
        env={"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull},
        catch_exceptions=False,
    )


def snapshot(engine: Engine) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every row of every table, by table name and primary key."""
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            key = [c.name for c in table.primary_key.columns]
            rows = conn.execute(select(table)).mappings()
            tables[table.name] = {tuple(r[k] for k in key): dict(r) for r in rows}
    return tables


def export_records(
    service: Service, slug: str, *, include_simulated: bool = False
) -> list[dict[str, Any]]:
    """The export records of ``slug`` (docs/results.md), free text included."""
    wanted = ResultsFilter(slug, include_simulated=include_simulated)
    return list(Results(service, Config()).records(wanted, free_text=True))
