"""Logs carry nothing personal or secret, at any level: the one place that makes it so.

Two rules, set up by :func:`install` (called by ``bot.runtime.configure_logging``):

1. The libraries' loggers (python-telegram-bot, aiohttp, httpx, urllib3, twilio, SQLAlchemy,
   psycopg, APScheduler, Alembic) stay at WARNING whatever ``[logging] level`` says. Below
   that they narrate each request with its parameters: a chat id, a phone number, what a
   citizen wrote, the webhook secret. Voxpop's own loggers say what happened without them.
2. Every record that reaches a handler of the root logger passes :class:`Redact`, which replaces the
   configured secrets (bot token, webhook secret, Twilio auth token, pseudonym key, the
   database password) and anything shaped like a phone number, also in tracebacks.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.config import Config
from safetext import printable

__all__ = ["LIBRARY_LOGGERS", "Redact", "install", "log_failure", "secrets_of"]

#: Loggers kept at WARNING (see the module docstring); their children follow them.
LIBRARY_LOGGERS: Final = (
    "telegram",
    "aiohttp",
    "httpx",
    "httpcore",
    "urllib3",
    "twilio",
    "sqlalchemy",
    "psycopg",
    "apscheduler",
    "alembic",
    "hpack",
    # Its "rate limit exceeded" lines name the client's address.
    "flask-limiter",
)
#: A phone number as providers write it: E.164 with its plus (perhaps URL-encoded, perhaps
#: after ``whatsapp:``).
_PHONE: Final = re.compile(r"(?:\+|%2B)\d{6,15}", re.IGNORECASE)
#: Shorter strings are not treated as secrets (they would blank out ordinary words).
_MIN_SECRET: Final = 6


class Redact(logging.Filter):
    """Replaces ``secrets`` and phone numbers in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first: a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len)[::-1]

    def clean(self, text: str) -> str:
        """
        >>> Redact(["s3cret-token"]).clean("POST /bots3cret-token/send to +32470123456")
        'POST /bot<secret>/send to <phone>'
        """
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        return _PHONE.sub("<phone>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatted here so the handler prints the cleaned text (it caches exc_text).
            # Escaped as SafeLogFormatter would: a cached exc_text skips its formatException.
            text = self.clean(logging.Formatter().formatException(record.exc_info))
            record.exc_text = printable(text, keep_newlines=True)
        return True


def secrets_of(config: Config) -> list[str]:
    """What must never be written: the configured credentials and keys."""
    found = [
        config.telegram.token,
        config.telegram.webhook_secret,
        config.twilio.auth_token,
        config.privacy.pseudonym_key,
    ]
    try:
        password = make_url(config.database.url).password
    except ArgumentError:
        password = None
    if password:
        found.append(str(password))
    return [s for s in found if s]


def install(handlers: Iterable[logging.Handler], config: Config) -> None:
    """Apply both rules: libraries at WARNING at most, each of ``handlers`` redacting (a
    second call replaces the first's filter)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.WARNING))
    redact = Redact(secrets_of(config))
    for handler in handlers:
        for old in [f for f in handler.filters if isinstance(f, Redact)]:
            handler.removeFilter(old)
        handler.addFilter(redact)


def log_failure(what: str, exc: BaseException, logger: logging.Logger | None = None) -> None:
    """Log an unexpected failure without its message, unless it is the database's (whose
    statement parameters the engine hides): an exception's text may quote a phone number or
    an answer. Frames are file, line and function, without source lines or local values."""
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, SQLAlchemyError) else None
    frames = "".join(
        f"\n  {frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
    )
    (logger or logging.getLogger("bot")).error(
        "%s failed (%s)%s", what, reason or type(exc).__name__, frames
    )
