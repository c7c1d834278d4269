"""A held sign-in costs a guesser nothing to repeat, so it must cost the audit log nothing
either: one entry per wait, saying when the wait ends; a new wait is a new entry."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.staff.accounts import Role
from storage.db import transaction
from storage.models import AuditEntry
from tests.console.conftest import MovableClock
from tests.console.security.helpers import WRONG, set_up_codes, try_sign_in
from tests.staff import PASSWORD, add_staff


def _held(db: sessionmaker[Session], action: str) -> list[tuple[str, dict[str, Any]]]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.details)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return [(actor, dict(details)) for actor, details in rows]


def test_a_held_sign_in_is_audited_once_per_wait(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    guesser = app.test_client()
    assert [try_sign_in(guesser, anna.email, WRONG) for _ in range(5)] == [400] * 5
    # Fifty tries during the 30-second wait: every one refused, one entry.
    assert {try_sign_in(guesser, anna.email, WRONG) for _ in range(50)} == {429}
    clock.advance(seconds=20)
    assert try_sign_in(app.test_client(), anna.email, PASSWORD, "198.51.100.7") == 429
    assert _held(db, "sign-in held") == [
        ("anonymous", {"email": anna.email, "until": "2026-12-07 09:30:30 UTC"})
    ]
    # The wait ends; one more wrong guess starts a longer one: a new entry, once again.
    clock.advance(seconds=11)
    assert try_sign_in(guesser, anna.email, WRONG) == 400
    assert {try_sign_in(guesser, anna.email, WRONG) for _ in range(20)} == {429}
    assert [details["until"] for _, details in _held(db, "sign-in held")] == [
        "2026-12-07 09:30:30 UTC",
        "2026-12-07 09:31:31 UTC",
    ]


def test_emails_nobody_has_do_not_flood_the_log_either(
    app: Flask, db: sessionmaker[Session]
) -> None:
    guesser = app.test_client()
    # Past the address's free failures, with a new made-up email each time.
    assert {try_sign_in(guesser, f"x{n}@city.example", WRONG) for n in range(20)} == {400}
    assert {try_sign_in(guesser, f"y{n}@city.example", WRONG) for n in range(30)} == {429}
    # The log never names an email that is no account: one entry for the whole wait.
    assert _held(db, "sign-in held") == [
        ("anonymous", {"email": "(no such account)", "until": "2026-12-07 09:30:30 UTC"})
    ]


def test_a_held_code_is_audited_once_per_wait(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    hers = app.test_client()
    assert try_sign_in(hers, anna.email, PASSWORD) == 303
    set_up_codes(hers, clock.now)
    attacker = app.test_client()
    assert try_sign_in(attacker, anna.email, PASSWORD, "203.0.113.9") == 303
    tries = [attacker.post("/login/code", data={"code": "000000"}).status_code for _ in range(25)]
    assert tries == [400] * 5 + [429] * 20
    assert _held(db, "one-time code held") == [
        (f"staff:{anna.email}", {"until": "2026-12-07 09:30:30 UTC"})
    ]
