"""Statements run on the driver's cursor (storage.prepared), on both engines: the column
types still apply, a bad value writes nothing, and driver errors are SQLAlchemy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.models import Message
from storage.prepared import Prepared

T0 = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)

_m = Message.__table__.c
_RESCHEDULE = Prepared(
    update(Message)
    .where(_m.id == bindparam("row_id"))
    .values(
        status="queued",
        next_attempt_at=bindparam("due", type_=_m.next_attempt_at.type),
        payload=bindparam("data", type_=_m.payload.type),
        provider_id=bindparam("pid", type_=_m.provider_id.type),
    )
)


def _insert(engine: Engine, count: int) -> list[int]:
    rows = [
        {
            "direction": "out",
            "channel": "sms",
            "address": f"+3247000000{n}",
            "kind": "reply",
            "text": f"m{n}",
            "status": "failed",
            "attempts": 1,
            "created_at": T0,
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        return list(conn.scalars(insert(Message).returning(Message.id), rows))


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    query = select(_m.status, _m.next_attempt_at, _m.payload, _m.provider_id).order_by(_m.id)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def test_rows_are_written_through_the_column_types(engine: Engine) -> None:
    ids = _insert(engine, 2)
    later = T0 + timedelta(minutes=5)
    brussels = later.astimezone(timezone(timedelta(hours=1)))
    with engine.begin() as conn:
        _RESCHEDULE.executemany(
            conn,
            [
                # Another zone is the same instant, back in UTC; a decimal stays a decimal.
                {"row_id": ids[0], "due": brussels, "data": {"x": 7.0}, "pid": None},
                {"row_id": ids[1], "due": later, "data": None, "pid": "SM1"},
            ],
        )
    stored = _stored(engine)
    assert stored == [("queued", later, {"x": 7.0}, None), ("queued", later, None, "SM1")]
    assert isinstance(stored[0][2]["x"], float)
    assert stored[0][1].tzinfo is not None


def test_a_naive_time_is_refused_and_nothing_is_written(engine: Engine) -> None:
    ids = _insert(engine, 2)
    rows = [
        {"row_id": ids[0], "due": T0, "data": None, "pid": None},
        {"row_id": ids[1], "due": T0.replace(tzinfo=None), "data": None, "pid": None},
    ]
    with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
        _RESCHEDULE.executemany(conn, rows)
    assert [row[0] for row in _stored(engine)] == ["failed", "failed"]


def test_a_driver_error_is_sqlalchemys_and_rolls_the_rows_back(engine: Engine) -> None:
    ids = _insert(engine, 2)
    # (direction, channel, provider_id) is unique: the second row breaks it.
    rows = [{"row_id": i, "due": T0, "data": None, "pid": "SM-same"} for i in ids]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _RESCHEDULE.executemany(conn, rows)
    assert [row[3] for row in _stored(engine)] == [None, None]


def test_every_open_parameter_must_be_given(engine: Engine) -> None:
    (row_id,) = _insert(engine, 1)
    with pytest.raises(KeyError, match="pid"), engine.begin() as conn:
        _RESCHEDULE.executemany(conn, [{"row_id": row_id, "due": T0, "data": None}])
    assert _stored(engine)[0][0] == "failed"


def test_rows_are_never_written_outside_a_transaction(engine: Engine) -> None:
    (row_id,) = _insert(engine, 1)
    with engine.connect() as conn, pytest.raises(RuntimeError, match="begun transaction"):
        _RESCHEDULE.executemany(conn, [{"row_id": row_id, "due": T0, "data": None, "pid": None}])
    assert _stored(engine)[0][0] == "failed"
