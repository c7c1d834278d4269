"""``voxpop scheduler``: the process that fires pushes and runs reminders, expiry and closing."""

from __future__ import annotations

import signal
from types import FrameType

import click

from bot.cli.common import runtime
from bot.config import Config
from bot.pushes.scheduler import Scheduler
from bot.pushes.service import Pushes


@click.command("scheduler")
@click.pass_obj
def scheduler(config: Config) -> None:
    """Fire pushes at their time and run what falls due (reminders, expiry, closing) until
    interrupted. One is active per database; a second one stands by and takes over when the
    first stops or dies (see docs/scheduler.md)."""
    with runtime(config) as rt:
        # Invitations and reminders ring the dispatchers (voxpop dispatch, voxpop serve).
        pushes = Pushes(rt.sessions, rt.service, config, on_outbox=rt.on_outbox)
        runner = Scheduler(rt.engine, pushes, config.scheduler)

        def stop(_signum: int, _frame: FrameType | None) -> None:
            runner.request_stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        click.echo("scheduler starting; Ctrl-C to stop")
        runner.run()
