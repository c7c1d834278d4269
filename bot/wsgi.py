"""The WSGI entry point for production servers: ``gunicorn 'bot.wsgi:app'``.

How to run it in production (gunicorn, ``voxpop dispatch`` and ``voxpop scheduler`` as
systemd services, the proxy, backups, upgrades): docs/deployment.md.

Each worker process builds ``app`` once, on first use, from the usual configuration
(``$VOXPOP_CONFIG``, else ``./voxpop.toml``, then ``VOXPOP_<SECTION>__<KEY>`` variables; see
:mod:`bot.config`), with the runtime of :func:`bot.runtime.build_runtime`. The workers only
answer requests: a webhook commits its replies to the outbox, rings the outbox bell
(:mod:`storage.outbox_bell`) and returns; ``voxpop dispatch``, beside them, sends. gunicorn
workers start no dispatcher and no scheduler (``voxpop serve`` runs both in its process).

A database without the current schema, or a half-configured channel, stops the worker at
start with the reason. With ``--preload`` the app is built in the master before the fork;
each worker then drops the inherited connection pool and opens its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Config, ConfigError, channel_problems, load_config
from bot.console.context import EXTENSION as CONSOLE
from bot.runtime import build_runtime, configure_logging
from bot.web.app import create_app
from storage.migrate import current, head

__all__ = ["app", "build_app"]

#: The app of this process, built on first use (see :func:`__getattr__`).
app: Flask
log = logging.getLogger(__name__)
_lock = threading.Lock()
_app: Flask | None = None


def build_app(config: Config | None = None) -> Flask:
    """The Voxpop app with its own runtime (``app.extensions["voxpop.runtime"]``);
    ``config`` defaults to :func:`load_config`.

    Raises :class:`~bot.config.ConfigError` for a half-configured channel or a database
    that is unreachable or lacks the current schema.
    """
    config = config or load_config()
    configure_logging(config)
    problems = channel_problems(config)
    if problems:
        where = config.source or "the environment"
        raise ConfigError(f"channel configuration in {where} is incomplete: " + "; ".join(problems))
    try:
        revision = current(config.database.url)
    except (SQLAlchemyError, ValueError) as exc:
        # The driver's complaint, never the URL: it may hold a password.
        reason = getattr(exc, "orig", None) or exc
        raise ConfigError(f"cannot open the database: {reason}") from None
    if revision != head():
        state = "has no Voxpop schema yet" if revision is None else "is from another version"
        raise ConfigError(f"the database {state}: run `voxpop db upgrade` first")
    runtime = build_runtime(config)
    atexit.register(runtime.close)
    # Connections must not be shared across a fork (gunicorn --preload): the child forgets
    # the parent's pool without closing the parent's connections.
    os.register_at_fork(after_in_child=lambda: runtime.engine.dispose(close=False))
    app = create_app(runtime.service, config, on_outbox=runtime.on_outbox)
    app.extensions["voxpop.runtime"] = runtime
    if app.extensions[CONSOLE].staff.count() == 0:
        # A worker has no terminal for a setup link: the command line makes the first admin.
        log.warning(
            "no staff account yet: create the first admin with "
            "`voxpop staff add EMAIL --role admin` (docs/console.md)"
        )
    return app


def __getattr__(name: str) -> Flask:
    # Built on first use rather than at import, so importing this module (tools, tests)
    # neither reads the config nor opens the database.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if _app is None:
            _app = build_app()
            globals()["app"] = _app  # later lookups skip this function
    return _app
