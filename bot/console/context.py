"""What the console's views work with: the process's service objects, built once per app.

Views reach them through :func:`console` rather than globals, so tests build as many apps
as they like, each on its own database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.contacts.service import Contacts
from bot.pushes.service import Pushes
from bot.service import Service
from bot.staff.accounts import StaffAccounts

EXTENSION = "voxpop_console"


@dataclass
class ConsoleContext:
    service: Service
    config: Config
    clock: Callable[[], datetime]
    #: Wakes the dispatchers after a commit that queued messages (an outcome, a push fired).
    on_outbox: Callable[[], None] | None = None
    staff: StaffAccounts = field(init=False)
    pushes: Pushes = field(init=False)
    contacts: Contacts = field(init=False)

    def __post_init__(self) -> None:
        console = self.config.console
        self.staff = StaffAccounts(
            self.service.sessions,
            self.clock,
            idle_timeout=timedelta(minutes=max(1, console.idle_minutes)),
            session_lifetime=timedelta(hours=max(1, console.session_hours)),
        )
        self.pushes = Pushes(
            self.service.sessions,
            self.service,
            self.config,
            clock=self.clock,
            on_outbox=self.on_outbox,
        )
        self.contacts = Contacts(
            self.service.sessions,
            self.service,
            clock=self.clock,
            default_region=self.config.contacts.default_region.strip().upper(),
            default_timezone=self.config.pushes.timezone,
        )

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.service.sessions


def install_context(app: Flask, context: ConsoleContext) -> None:
    app.extensions[EXTENSION] = context


def console() -> ConsoleContext:
    """The console's objects for the app handling this request."""
    context: ConsoleContext = current_app.extensions[EXTENSION]
    return context
