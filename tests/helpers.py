"""Helpers shared by test modules."""

from __future__ import annotations

import os

from click.testing import CliRunner, Result

from bot.cli import main


def voxpop(db_url: str, *args: str, input: str | None = None) -> Result:
    """Run ``voxpop ARGS`` on ``db_url`` with the built-in defaults otherwise (no config file)."""
    return CliRunner().invoke(
        main,
        list(args),
        input=input,
        env={"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull},
        catch_exceptions=False,
    )
