"""Writes for one citizen that arrive at the same moment (a burst of messages, a double tap
in the simulator, Start over while a message is on its way) each succeed, on both engines:
the later ones wait for the contact's lock or try again, never fail with a 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import count

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.service import Service
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Message
from tests.bot.conftest import Clock

ROUNDS = 4
AT_ONCE = 8
_ids = count(1)


def _all_at_once(calls: list[Callable[[], object]]) -> list[BaseException]:
    """Run ``calls`` in threads released together; the exceptions they raised."""
    start = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # the point of the test: none may escape
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _sender(
    service: Service, clock: Clock, address: Address, *, simulated: bool
) -> Callable[[str], Callable[[], object]]:
    """``send(text)``: a call that delivers ``text`` from ``address`` as a new message."""

    def send(text: str) -> Callable[[], object]:
        msg = InboundMessage(address, text, f"SM{next(_ids):032x}", clock.now)
        return lambda: service.receive(msg, simulated=simulated)

    return send


def _inbound(db: sessionmaker[Session]) -> int:
    with transaction(db, read_only=True) as s:
        return s.scalar(select(func.count(Message.id)).where(Message.direction == "in")) or 0


def test_a_burst_of_messages_from_one_citizen_is_stored_and_answered_whole(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    message = _sender(service, clock, Address("sms", "+32470000001"), simulated=False)
    message("EVERY")()
    for _ in range(ROUNDS):
        before = _inbound(db)
        texts = ["1", "yes", "REPEAT", "2", "HELP", "no", "3", "INFO"][:AT_ONCE]
        assert _all_at_once([message(text) for text in texts]) == []
        assert _inbound(db) == before + AT_ONCE


def test_the_simulator_started_twice_and_reset_while_answering_never_fails(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    address = Address("telegram", "100000")
    send = _sender(service, clock, address, simulated=True)
    send("hello")()
    for _ in range(ROUNDS):
        calls: list[Callable[[], object]] = [
            lambda: service.start_survey(address, "every-type", simulated=True),
            lambda: service.start_survey(address, "every-type", simulated=True),
            lambda: service.reset_simulated(address),
            send("1"),
            send("yes"),
            send("FORGET"),
        ]
        assert _all_at_once(calls) == []
