"""Alembic environment: run by :mod:`storage.migrate` with a live connection.

The caller passes ``config.attributes["connection"]`` (inside its own transaction); without
one, ``sqlalchemy.url`` is used with :func:`storage.db.make_engine`, so both paths get the
same SQLite pragmas and PostgreSQL ``search_path``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.db import make_engine
from storage.models import Base


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Our SQLite connections emit BEGIN themselves, so DDL is transactional there too.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Run the migrations online; offline (SQL script) mode is not supported."""
    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported; use storage.migrate")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to Alembic")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


def _loaded_by_alembic() -> bool:
    # pytest --doctest-modules imports every module; only run when Alembic set up the context.
    try:
        context.config  # noqa: B018
    except (AttributeError, NameError):
        return False
    return True


if _loaded_by_alembic():
    run()
