"""Staff accounts and sessions (bot.staff.accounts), on both engines: what ``voxpop staff``
and the console's pages do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service
from bot.staff.accounts import Role, StaffAccounts, StaffError
from bot.staff.passwords import password_problem, verify_password
from bot.web.app import create_app
from storage.db import transaction
from storage.models import AuditEntry, StaffAccount, StaffSession
from tests.console.conftest import MovableClock
from tests.staff import PASSWORD, sign_in

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
def accounts(db: sessionmaker[Session], clock: MovableClock) -> StaffAccounts:
    return StaffAccounts(
        db, clock, idle_timeout=timedelta(minutes=30), session_lifetime=timedelta(hours=12)
    )


def test_an_account_is_stored_with_an_argon2id_hash_and_audited(
    accounts: StaffAccounts, db: sessionmaker[Session]
) -> None:
    added = accounts.add("  Anna.DeVries@City.Example ", PASSWORD, Role.EDITOR, actor="test")
    assert added.email == "anna.devries@city.example"
    assert added.role is Role.EDITOR
    with transaction(db, read_only=True) as s:
        row = s.scalars(select(StaffAccount)).one()
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        entry = s.scalars(select(AuditEntry)).one()
    assert (entry.actor, entry.action) == ("test", "staff account added")
    assert entry.details == {"email": "anna.devries@city.example", "role": "editor"}
    assert [member.email for member in accounts.all()] == ["anna.devries@city.example"]


@pytest.mark.parametrize(
    ("email", "password", "field", "says"),
    [
        ("anna", PASSWORD, "email", "email address like"),
        ("anna@city.example", "short", "password", "at least 12"),
        ("anna@city.example", "password1234", "password", "most common"),
        ("anna@city.example", "aaaaaaaaaaaaaaaa", "password", "easy to guess"),
        ("anna@city.example", "qwertyuiopasdf", "password", "guess"),
        ("anna@city.example", "anna@city.example", "password", "email address"),
    ],
)
def test_a_bad_email_or_weak_password_is_refused_and_nothing_is_stored(
    accounts: StaffAccounts, email: str, password: str, field: str, says: str
) -> None:
    with pytest.raises(StaffError) as refused:
        accounts.add(email, password, Role.ADMIN, actor="test")
    assert refused.value.field == field
    assert says in str(refused.value)
    assert accounts.count() == 0


@pytest.mark.parametrize(
    ("password", "email", "message"),
    [
        # The whole address, or its name part, is refused as the address itself.
        (
            "anna.devries@city.example",
            "anna.devries@city.example",
            "Do not use the email address as the password.",
        ),
        (
            "Anna.Devries!",
            "anna.devries@city.example",
            "Do not use the email address as the password.",
        ),
        # Words from it are named as words from it: "the" address, as an admin may be
        # setting someone else's password.
        (
            "annadevries2026",
            "anna.devries@city.example",
            "it contains words from the email address",
        ),
        # A long password that merely contains a short part of the address is fine.
        ("information desk blue sky", "info@city.example", None),
        ("michaelsmith1", "", "it contains a common first name or surname"),
        ("sunshine19851", "", "it contains a common password"),
        ("monkeymonkey1!", "", "it repeats characters or words"),
        ("abcdefghijklmn", "", 'it contains a sequence like "abc" or "6543"'),
    ],
)
def test_each_weak_password_is_told_why_in_plain_words(
    password: str, email: str, message: str | None
) -> None:
    problem = password_problem(password, email)
    if message is None:
        assert problem is None
        return
    assert problem is not None
    if message.startswith("it "):
        assert (
            problem
            == f"This password is too easy to guess: {message}. Add more words, or other ones."
        )
    else:
        assert problem == message


def test_the_common_password_list_is_checked() -> None:
    assert password_problem("123qweasdzxc") == (
        "This password is one of the most common ones: choose another."
    )


def test_one_account_per_email(accounts: StaffAccounts) -> None:
    accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    with pytest.raises(StaffError, match="already an account"):
        accounts.add("ANNA@city.example", PASSWORD, Role.ADMIN, actor="test")


def test_authenticate_checks_the_password_and_the_account_state(
    accounts: StaffAccounts,
) -> None:
    accounts.add("admin@city.example", PASSWORD, Role.ADMIN, actor="test")
    accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    assert accounts.authenticate("Anna@City.example", PASSWORD) is not None
    assert accounts.authenticate("anna@city.example", PASSWORD + "x") is None
    assert accounts.authenticate("nobody@city.example", PASSWORD) is None
    accounts.disable("anna@city.example", actor="test")
    assert accounts.authenticate("anna@city.example", PASSWORD) is None
    accounts.enable("anna@city.example", actor="test")
    assert accounts.authenticate("anna@city.example", PASSWORD) is not None


def test_no_account_is_verified_against_a_hash_that_matches_nothing() -> None:
    assert verify_password(None, "no account has this password, it only costs time") is False


def test_a_session_ends_when_idle_at_its_absolute_end_and_when_revoked(
    accounts: StaffAccounts, clock: MovableClock
) -> None:
    anna = accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    token = accounts.start_session(anna.id, stage="signed_in", user_agent="Firefox")
    signed_in = accounts.resolve(token)
    assert signed_in is not None
    assert signed_in.staff.email == "anna@city.example"
    assert accounts.resolve(token + "x") is None
    # Active every 20 minutes: the idle limit (30) never strikes, the absolute one (12 h) does.
    for _ in range(35):
        clock.now += timedelta(minutes=20)
        assert accounts.resolve(token) is not None
    clock.now += timedelta(minutes=20)
    assert clock.now - START >= timedelta(hours=12)
    assert accounts.resolve(token) is None

    idle = accounts.start_session(anna.id, stage="signed_in", user_agent="")
    clock.now += timedelta(minutes=29)
    assert accounts.resolve(idle) is not None
    clock.now += timedelta(minutes=30)
    assert accounts.resolve(idle) is None

    ended = accounts.start_session(anna.id, stage="signed_in", user_agent="")
    accounts.end_session(ended)
    assert accounts.resolve(ended) is None


def test_disabling_an_account_ends_its_sessions_at_once(accounts: StaffAccounts) -> None:
    accounts.add("admin@city.example", PASSWORD, Role.ADMIN, actor="test")
    anna = accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    tokens = [accounts.start_session(anna.id, stage="signed_in", user_agent="") for _ in range(3)]
    assert len(accounts.sessions_of(anna.id)) == 3
    accounts.disable("anna@city.example", actor="staff:admin@city.example")
    assert [accounts.resolve(token) for token in tokens] == [None, None, None]
    assert accounts.sessions_of(anna.id) == []


def test_sign_out_everywhere_keeps_only_the_session_asking(accounts: StaffAccounts) -> None:
    anna = accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    mine, laptop, phone = (
        accounts.start_session(anna.id, stage="signed_in", user_agent=agent)
        for agent in ("Firefox", "Edge", "Safari")
    )
    assert accounts.end_sessions(anna.id, actor="staff:anna@city.example", keep=mine) == 2
    assert accounts.resolve(mine) is not None
    assert accounts.resolve(laptop) is None
    assert accounts.resolve(phone) is None


def test_the_cookie_token_is_not_what_the_database_keeps(
    accounts: StaffAccounts, db: sessionmaker[Session]
) -> None:
    anna = accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    token = accounts.start_session(anna.id, stage="signed_in", user_agent="")
    with transaction(db, read_only=True) as s:
        stored = s.scalars(select(StaffSession.id)).one()
    assert token not in stored


def test_the_second_step_issues_a_new_token(accounts: StaffAccounts) -> None:
    anna = accounts.add("anna@city.example", PASSWORD, Role.EDITOR, actor="test")
    first = accounts.start_session(anna.id, stage="password", user_agent="")
    assert accounts.resolve(first).stage == "password"  # type: ignore[union-attr]
    second = accounts.complete_session(first)
    assert second != first
    assert accounts.resolve(first) is None
    assert accounts.resolve(second).stage == "signed_in"  # type: ignore[union-attr]


def test_the_last_admin_can_be_neither_disabled_nor_demoted(accounts: StaffAccounts) -> None:
    accounts.add("admin@city.example", PASSWORD, Role.ADMIN, actor="test")
    with pytest.raises(StaffError, match="last admin"):
        accounts.disable("admin@city.example", actor="test")
    with pytest.raises(StaffError, match="last admin"):
        accounts.set_role("admin@city.example", Role.EDITOR, actor="test")
    accounts.add("second@city.example", PASSWORD, Role.ADMIN, actor="test")
    assert accounts.set_role("admin@city.example", Role.EDITOR, actor="test").role is Role.EDITOR


def test_the_setup_token_works_once_and_only_while_there_is_no_account(
    accounts: StaffAccounts, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    stale = accounts.setup_token()
    token = accounts.setup_token()
    assert stale
    assert token
    assert not accounts.setup_token_valid(stale)  # a new link replaces the old one
    assert accounts.setup_token_valid(token)
    with pytest.raises(StaffError, match="used or has expired"):
        accounts.create_first_admin(stale or "", "admin@city.example", PASSWORD)
    admin = accounts.create_first_admin(token or "", "admin@city.example", PASSWORD)
    assert admin.role is Role.ADMIN
    assert not accounts.setup_token_valid(token or "")
    with pytest.raises(StaffError, match="used or has expired"):
        accounts.create_first_admin(token or "", "other@city.example", PASSWORD)
    assert accounts.setup_token() is None
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(StaffAccount)) == 1


def test_the_setup_token_expires(accounts: StaffAccounts, clock: MovableClock) -> None:
    token = accounts.setup_token() or ""
    clock.now += timedelta(hours=24)
    assert not accounts.setup_token_valid(token)


def test_the_staff_page_names_the_new_accounts_address_not_the_admins(
    db: sessionmaker[Session],
) -> None:
    service = Service(db, pseudonym_key="test-key")
    app = create_app(service, Config())
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    answer = admin.post(
        "/staff/add",
        data={
            "email": "anna.devries@city.example",
            "role": "editor",
            "password": "annadevries2026",
        },
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "it contains words from the email address." in page
    assert "your email" not in page
    empty = admin.post("/staff/add", data={"email": "", "role": "editor", "password": PASSWORD})
    assert "Enter their email address." in empty.get_data(as_text=True)


def test_adding_staff_shows_every_problem_at_once(db: sessionmaker[Session]) -> None:
    app = create_app(Service(db, pseudonym_key="test-key"), Config())
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    answer = admin.post("/staff/add", data={"email": "anna", "role": "editor", "password": "x"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'href="#email">Enter an email address like name@city.example.' in page
    assert 'href="#password">Use at least 12 characters.' in page
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(StaffAccount)) == 1  # the admin only
