"""Build the process-wide objects once from config: the DB engine, sessions, the service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import log_privacy
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
    """Log at ``[logging] level`` to stderr, with nothing personal or secret in any line
    (:mod:`bot.log_privacy`) and no raw control character from input
    (:class:`safetext.SafeLogFormatter`)."""
    # Does nothing when a host (gunicorn's --log-config, pytest) already set up handlers.
    logging.basicConfig(level=config.logging.level.upper(), format=LOG_FORMAT)
    # The libraries narrate every HTTP request and statement, with their parameters, below
    # WARNING (Twilio's and PTB's include phone numbers, chat ids and texts): kept at WARNING,
    # and every handler of the root logger redacts secrets and phone numbers.
    log_privacy.install(logging.getLogger().handlers, config)
    # Messages quote outside input now and then (a reason, a field name): a control
    # character in it must not forge a line or move a terminal's cursor.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeLogFormatter(LOG_FORMAT))
