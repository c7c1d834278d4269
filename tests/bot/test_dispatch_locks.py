"""On PostgreSQL, recording outcomes and claiming lock the pacing rows in one order (channel
by channel, its budget, then its addresses by id), so they never deadlock.

The case from the field: a record marks a blocked citizen's address, then holds back the
sender for a 429; the ORM flushed the address (locking it) before it asked for the budget,
while a claim held the budget and waited for that address.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.sending import DispatchSettings, Job, Outcome, Pacing
from channels import errors
from channels.base import SendReceipt
from tests.bot.test_dispatch import T0, Clock, _queue

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

#: Generous: on a busy machine a claim is slow; a passing run never waits this long.
PATIENCE = 30.0
PACING = {"telegram": Pacing(key="telegram", per_second=30.0, per_address=timedelta(seconds=1))}


async def _never(job: Job) -> SendReceipt:
    raise AssertionError("nothing is sent here")


def _dispatcher(db: sessionmaker[Session], clock: Clock) -> Dispatcher:
    return Dispatcher(
        db, {"telegram": _never}, clock, DispatchSettings(), random.Random(1), pacing=PACING
    )


def test_a_record_and_a_claim_never_deadlock(engine: Engine, db: sessionmaker[Session]) -> None:
    clock = Clock()
    _queue(db, "to the blocked citizen", channel="telegram", address="1001")
    _queue(db, "throttled", channel="telegram", address="1002")
    first = _dispatcher(db, clock)
    blocked, throttled = sorted(first.claim(), key=lambda j: j.address)
    clock.now = T0 + timedelta(seconds=5)
    _queue(db, "the next one", channel="telegram", address="1001", at=clock.now)

    at_budget, go_on = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def pause_before_the_budget(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The record, about to lock the sender's budget: hold it there while a claim runs.
        if threading.current_thread().name == "record" and "FROM send_budgets" in statement:
            at_budget.set()
            go_on.wait(PATIENCE)

    def run(work: Any) -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    outcomes = [
        Outcome(blocked, error=errors.ContactBlocked("telegram: blocked", code="403")),
        Outcome(throttled, error=errors.Throttled("telegram: 429", retry_after=3, code="429")),
    ]
    record = threading.Thread(target=run, args=(lambda: first.record(outcomes),), name="record")
    claim = threading.Thread(target=run, args=(lambda: _dispatcher(db, clock).claim(),))
    event.listen(engine, "before_cursor_execute", pause_before_the_budget)
    try:
        record.start()
        assert at_budget.wait(PATIENCE), "the record never asked for the budget"
        claim.start()
        # The claim takes the budget and the citizen's address. If the record held that
        # address already, the claim would wait for it, and the record for the budget.
        claim.join(PATIENCE)
        claimed_alone = not claim.is_alive()
        go_on.set()
        record.join(PATIENCE)
        claim.join(PATIENCE)
    finally:
        go_on.set()
        event.remove(engine, "before_cursor_execute", pause_before_the_budget)
    assert not record.is_alive()
    assert failures == []
    assert claimed_alone, "the claim waited for a row the paused record held"
