"""What the ``voxpop`` commands share: opening the runtime with a schema check, and the
checks and error wording used by more than one command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Config, channel_problems
from bot.runtime import Runtime, build_runtime
from storage.migrate import current, head


def check_channels(config: Config) -> None:
    problems = channel_problems(config)
    if problems:
        where = config.source or "the environment"
        raise click.ClickException(
            f"channel configuration in {where} is incomplete:\n  " + "\n  ".join(problems)
        )


def real_channels(config: Config) -> bool:
    return config.telegram.enabled or config.twilio.enabled


def database_error(exc: Exception) -> click.ClickException:
    # The driver's complaint, never the URL: it may hold a password.
    reason = getattr(exc, "orig", None) or exc
    return click.ClickException(f"cannot open the database: {reason}")


@contextmanager
def runtime(config: Config, on_outbox: Callable[[], None] | None = None) -> Iterator[Runtime]:
    try:
        revision = current(config.database.url)
    except (SQLAlchemyError, ValueError) as exc:
        raise database_error(exc) from exc
    if revision != head():
        state = "has no Voxpop schema yet" if revision is None else "is from another version"
        raise click.ClickException(f"the database {state}: run `voxpop db upgrade` first")
    built = build_runtime(config, on_outbox)
    try:
        yield built
    finally:
        built.close()
