"""Core statements run with many rows at once, straight on the driver's cursor.

SQLAlchemy's ``executemany`` prepares every row's parameters in Python through the compiled
statement's machinery (construct, escape, process: about 8 µs a row on SQLite), which is
more than the driver then spends on the row. The dispatcher updates a row per message
several times over (its lease, its chat's pacing, its outcome): that is where it shows.

A :class:`Prepared` statement is compiled once per dialect by SQLAlchemy itself; it keeps
the driver's SQL, the parameters in the driver's order, the values the statement fixes, and
each parameter's bind processor from its column type (``UtcDateTime`` refusing a naive time,
JSON as text on SQLite...). :meth:`Prepared.executemany` then runs the rows on the DBAPI
cursor of the Connection's transaction, which SQLAlchemy began and will commit. The
statement stays the one Core definition; only its execution is leaner.

>>> from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, update
>>> from storage.db import make_engine
>>> t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("s", String))
>>> engine = make_engine("sqlite://")
>>> t.metadata.create_all(engine)
>>> mark = Prepared(update(t).where(t.c.id == bindparam("row")).values(s=bindparam("new")))
>>> with engine.begin() as conn:
...     _ = conn.execute(t.insert(), [{"id": 1, "s": "a"}, {"id": 2, "s": "b"}])
...     mark.executemany(conn, [{"row": 1, "new": "x"}, {"row": 2, "new": "y"}])
...     conn.execute(t.select().order_by(t.c.id)).all()
[(1, 'x'), (2, 'y')]
>>> engine.dispose()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import Executable

__all__ = ["Prepared"]

_Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Parameter names in the driver's order (positional), or every name (named).
    names: tuple[str, ...]
    positional: bool
    #: Values the statement itself fixes (``.values(status="sent")``), by name.
    fixed: Mapping[str, Any]
    processors: Mapping[str, _Processor]

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        fixed, processors = self.fixed, self.processors
        found = []
        for name in self.names:
            value = values[name] if name in values else fixed[name]
            processor = processors.get(name)
            found.append(value if processor is None else processor(value))
        return tuple(found) if self.positional else dict(zip(self.names, found, strict=True))


class Prepared:
    """One Core statement, compiled once per dialect, run on the driver's cursor."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[type[Dialect], _Compiled] = {}

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in ``conn``'s current transaction.

        A row names every parameter the statement leaves open; a missing one is a
        ``KeyError``. Driver errors come as SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError`.
        """
        if not rows:
            return
        if not conn.in_transaction():
            # SQLAlchemy begins on its own first statement, not on ours: without a begun
            # transaction each row would commit alone (SQLite's driver runs in autocommit).
            raise RuntimeError("Prepared.executemany runs inside a begun transaction")
        compiled = self._compile(conn.dialect)
        params = [compiled.row(row) for row in rows]
        driver = conn.connection.driver_connection
        assert driver is not None, "the connection was closed"
        dbapi = conn.dialect.loaded_dbapi
        cursor = driver.cursor()
        try:
            cursor.executemany(compiled.sql, params)
        except dbapi.Error as exc:
            raise DBAPIError.instance(compiled.sql, None, exc, dbapi.Error) from exc
        finally:
            cursor.close()

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(type(dialect))
        if found is not None:
            return found
        compiled: Any = self._statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.escaped_bind_names:
            raise ValueError("parameter names that need escaping are not supported here")
        binds: dict[str, BindParameter[Any]] = compiled.binds
        if compiled.positional:
            names = tuple(compiled.positiontup)
        else:
            names = tuple(dict.fromkeys(compiled.bind_names.values()))
        fixed: dict[str, Any] = {}
        processors: dict[str, _Processor] = {}
        for name in names:
            bind = binds[name]
            if not bind.required:
                fixed[name] = bind.effective_value
            # The column type as this dialect implements it (a TypeDecorator over the
            # dialect's own DateTime...), as SQLAlchemy's execution would apply it.
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        found = _Compiled(compiled.string, names, bool(compiled.positional), fixed, processors)
        self._compiled[type(dialect)] = found
        return found
