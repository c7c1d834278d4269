"""Sign-in limits: growing waits per account and per client address, shared by every worker,
a browser that signed in before not held up by someone else's guessing, the code step
limited too, and old failures deleted."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ServerConfig
from bot.service import Service
from bot.staff.accounts import Role
from bot.staff.limits import Attempt, SignInLimits
from bot.web.app import create_app
from storage.db import transaction
from storage.models import SignInFailure
from tests.console.conftest import MovableClock
from tests.console.security.helpers import WRONG, set_up_codes, try_sign_in
from tests.staff import PASSWORD, add_staff, context_of


def _fail_many(app: Flask, count: int, email: str, address: str) -> None:
    """``count`` failed sign-ins recorded as the sign-in page records them, without the
    page's password check (argon2 is slow on purpose)."""
    context = context_of(app)
    limits = SignInLimits(context.sessions, context.clock, str(app.secret_key).encode())
    for n in range(count):
        assert (
            limits.reserve(Attempt("password", email.replace("@", f"{n}@"), address)).wait is None
        )


def _rows(db: sessionmaker[Session]) -> int:
    with transaction(db, read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(SignInFailure)) or 0)


def test_wrong_passwords_bring_growing_waits_said_in_plain_words(
    app: Flask, clock: MovableClock
) -> None:
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    client = app.test_client()
    assert [try_sign_in(client, anna.email, WRONG) for _ in range(5)] == [400] * 5
    held = client.post("/login", data={"email": anna.email, "password": PASSWORD})
    # Even the right password waits: a right guess during the wait would tell the guesser.
    assert held.status_code == 429
    assert held.headers["Retry-After"] == "30"
    assert "Try again in 1 minute." in held.get_data(as_text=True)
    clock.advance(seconds=31)
    assert try_sign_in(client, anna.email, WRONG) == 400
    assert try_sign_in(client, anna.email, PASSWORD) == 429  # the wait doubled
    clock.advance(seconds=61)
    assert try_sign_in(client, anna.email, PASSWORD) == 303


def test_every_worker_counts_the_same_failures(
    service: Service, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    # Two processes' apps over one database, as gunicorn's workers are.
    first, second = (create_app(service, Config(), clock=clock) for _ in range(2))
    add_staff(first, Role.EDITOR, "anna@city.example")
    for _ in range(5):
        assert try_sign_in(first.test_client(), "anna@city.example", WRONG) == 400
    assert try_sign_in(second.test_client(), "anna@city.example", PASSWORD) == 429
    # An email nobody has is held alike: the wait does not tell which accounts exist.
    for _ in range(5):
        assert try_sign_in(first.test_client(), "nobody@city.example", WRONG, "192.0.2.99") == 400
    assert try_sign_in(second.test_client(), "nobody@city.example", WRONG, "192.0.2.99") == 429


def test_parallel_guesses_in_two_workers_get_no_more_checks_than_the_budget(
    service: Service, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    # Two workers' apps over one database; 30 guesses released at once. Each guess either
    # had its password checked (400) or was held before any check (429).
    workers = [create_app(service, Config(), clock=clock) for _ in range(2)]
    anna = add_staff(workers[0], Role.EDITOR, "anna@city.example")
    tries = 30
    start = threading.Barrier(tries)

    def guess(n: int) -> int:
        client = workers[n % 2].test_client()
        start.wait()
        return try_sign_in(client, anna.email, WRONG, f"203.0.113.{n + 1}")

    with ThreadPoolExecutor(max_workers=tries) as pool:
        answers = list(pool.map(guess, range(tries)))
    assert sorted(answers) == [400] * 5 + [429] * 25
    assert _rows(db) == 5  # a held guess writes nothing
    # The right password waits too: the budget is spent.
    assert try_sign_in(workers[1].test_client(), anna.email, PASSWORD, "198.51.100.1") == 429


def test_an_attacker_cannot_lock_the_real_person_out_of_their_own_browser(
    app: Flask, clock: MovableClock
) -> None:
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    her_browser = app.test_client()
    assert try_sign_in(her_browser, anna.email, PASSWORD, "198.51.100.20") == 303
    her_browser.post("/logout", data={})
    attacker = app.test_client()
    for _ in range(5):
        try_sign_in(attacker, anna.email, WRONG, "203.0.113.66")
    assert try_sign_in(attacker, anna.email, PASSWORD, "203.0.113.66") == 429
    # A new browser elsewhere waits too (the account's shared budget)...
    assert try_sign_in(app.test_client(), anna.email, PASSWORD, "198.51.100.21") == 429
    # ...but the browser she signed in with before is known, and not held.
    assert try_sign_in(her_browser, anna.email, PASSWORD, "198.51.100.20") == 303
    # Its own mistakes still count, on its own budget.
    her_browser.post("/logout", data={})
    for _ in range(5):
        assert try_sign_in(her_browser, anna.email, WRONG, "198.51.100.20") == 400
    assert try_sign_in(her_browser, anna.email, PASSWORD, "198.51.100.20") == 429


def test_guessing_across_many_accounts_from_one_address_is_held(app: Flask) -> None:
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    _fail_many(app, 19, "guess@city.example", "203.0.113.5")
    assert try_sign_in(app.test_client(), "guess@city.example", WRONG, "203.0.113.5") == 400
    assert try_sign_in(app.test_client(), anna.email, PASSWORD, "203.0.113.5") == 429
    assert try_sign_in(app.test_client(), anna.email, PASSWORD, "203.0.113.6") == 303


def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    service: Service, clock: MovableClock
) -> None:
    proxied = create_app(service, Config(server=ServerConfig(trusted_proxies=1)), clock=clock)
    add_staff(proxied, Role.EDITOR, "anna@city.example")

    def via_proxy(client_address: str, email: str, password: str) -> int:
        return (
            proxied.test_client()
            .post(
                "/login",
                data={"email": email, "password": password},
                headers={"X-Forwarded-For": client_address},
                environ_base={"REMOTE_ADDR": "10.0.0.1"},
            )
            .status_code
        )

    _fail_many(proxied, 19, "guess@city.example", "203.0.113.7")
    assert via_proxy("203.0.113.7", "guess@city.example", WRONG) == 400
    assert via_proxy("203.0.113.7", "anna@city.example", PASSWORD) == 429
    # Everyone comes through the same proxy; another client is not held for the first.
    assert via_proxy("203.0.113.8", "anna@city.example", PASSWORD) == 303


def test_the_code_step_is_limited_too(app: Flask, clock: MovableClock) -> None:
    client = app.test_client()
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    assert try_sign_in(client, anna.email, PASSWORD) == 303
    set_up_codes(client, clock.now)
    client.post("/logout", data={})
    attacker = app.test_client()
    assert try_sign_in(attacker, anna.email, PASSWORD, "203.0.113.9") == 303
    for _ in range(5):
        assert attacker.post("/login/code", data={"code": "000000"}).status_code == 400
    held = attacker.post("/login/code", data={"code": "000000"})
    assert held.status_code == 429
    assert "Try again in 1 minute." in held.get_data(as_text=True)


def test_failures_are_kept_as_keyed_hashes_and_old_ones_deleted(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    for _ in range(3):
        try_sign_in(app.test_client(), "anna@city.example", WRONG, "192.0.2.44")
    with transaction(db, read_only=True) as s:
        stored = " ".join(
            f"{r.account_key} {r.address_key}" for r in s.scalars(select(SignInFailure))
        )
    assert "anna" not in stored
    assert "192.0.2.44" not in stored
    assert _rows(db) == 3
    clock.advance(hours=25)
    try_sign_in(app.test_client(), "anna@city.example", WRONG, "192.0.2.44")
    assert _rows(db) == 1
