"""Build the process-wide objects once from config: the DB engine, sessions, the service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service
from safetext import SafeLogFormatter
from storage import outbox_bell
from storage.db import make_engine, session_factory


@dataclass
class Runtime:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    service: Service
    #: Call after a commit that queued messages: wakes this process's dispatcher (the
    #: ``on_outbox`` given) and rings every other one on the database (storage.outbox_bell).
    on_outbox: Callable[[], None]

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(config: Config, on_outbox: Callable[[], None] | None = None) -> Runtime:
    """``on_outbox`` is called after each commit that queued messages (wakes this process's
    dispatcher); the dispatchers of other processes hear the outbox bell after it."""
    engine = make_engine(config.database.url)
    sessions = session_factory(engine)
    ring = outbox_bell.bell(engine)

    def queued() -> None:
        if on_outbox is not None:
            on_outbox()
        ring()

    service = Service(
        sessions,
        default_language=config.conversation.default_language,
        pseudonym_key=config.privacy.pseudonym_key,
        on_outbox=queued,
    )
    return Runtime(config, engine, sessions, service, queued)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level.upper(), format=LOG_FORMAT)
    # Messages quote outside input now and then (a reason, a field name): a control
    # character in it must not forge a line or move a terminal's cursor.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeLogFormatter(LOG_FORMAT))
    # Alembic narrates every schema check at INFO; only its warnings matter to operators.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The SDKs narrate every HTTP request at INFO (Twilio's includes query parameters, which
    # may carry a phone number): the dispatcher logs each outcome itself, without personal data.
    for sdk in ("twilio.http_client", "httpx"):
        logging.getLogger(sdk).setLevel(logging.WARNING)
    # APScheduler narrates every run of the tick at INFO; bot.scheduler logs what happened.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
