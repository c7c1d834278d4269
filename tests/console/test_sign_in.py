"""Signing in and out, the setup link, CSRF, and ``voxpop staff``: the console's front door."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ServerConfig
from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from storage.db import transaction
from storage.models import AuditEntry, StaffAccount, StaffSession
from tests.csrf_client import plain_client
from tests.helpers import voxpop
from tests.staff import PASSWORD, add_staff, context_of, sign_in

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def front_app(db: sessionmaker[Session]) -> Flask:
    return create_app(Service(db, clock=lambda: NOW), Config(), clock=lambda: NOW)


def actions(db: sessionmaker[Session]) -> list[tuple[str, str, dict[str, object]]]:
    with transaction(db, read_only=True) as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.actor, e.action, e.details) for e in entries]


def test_signed_out_pages_ask_to_sign_in_and_come_back_after(front_app: Flask) -> None:
    client = front_app.test_client()
    anna = add_staff(front_app, Role.EDITOR, "anna@city.example")
    asked = client.get("/")
    assert asked.status_code == 302
    assert asked.headers["Location"] == "/login?next=/"
    page = client.get("/login?next=/").get_data(as_text=True)
    for label in ("Email", "Password", "Sign in"):
        assert label in page
    answer = client.post("/login?next=/", data={"email": anna.email, "password": PASSWORD})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "anna@city.example" in home


def test_a_wrong_password_says_so_next_to_the_form_and_is_audited(
    front_app: Flask, db: sessionmaker[Session]
) -> None:
    client = front_app.test_client()
    add_staff(front_app, Role.EDITOR, "anna@city.example")
    for email in ("anna@city.example", "nobody@city.example"):
        answer = client.post("/login", data={"email": email, "password": "not the password"})
        assert answer.status_code == 400
        page = answer.get_data(as_text=True)
        # The same words for a wrong password and an unknown email: nothing to learn.
        assert "Enter a correct email and password." in page
        assert 'value="' + email + '"' in page
    assert client.get("/").status_code == 302
    failed = [entry for entry in actions(db) if entry[1] == "sign-in failed"]
    assert failed == [
        ("anonymous", "sign-in failed", {"email": "anna@city.example"}),
        ("anonymous", "sign-in failed", {"email": "(no such account)"}),
    ]


def test_an_empty_form_names_each_missing_field(front_app: Flask) -> None:
    answer = front_app.test_client().post("/login", data={"email": "", "password": ""})
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert "Enter your email address." in page
    assert "Enter your password." in page
    assert 'href="#email"' in page  # the error summary links to the field


def test_signing_in_makes_a_new_session_and_signing_out_ends_it(
    front_app: Flask, db: sessionmaker[Session]
) -> None:
    client = front_app.test_client()
    client.get("/login")
    before = client.get_cookie("voxpop")
    sign_in(client)
    after = client.get_cookie("voxpop")
    assert before is not None
    assert after is not None
    assert before.value != after.value
    stolen = after.value
    assert client.post("/logout").status_code == 303
    assert client.get("/").status_code == 302
    # The cookie as it was while signed in no longer signs anyone in.
    thief = front_app.test_client()
    thief.set_cookie("voxpop", stolen)
    assert thief.get("/").status_code == 302
    with transaction(db, read_only=True) as s:
        assert all(row.revoked_at is not None for row in s.scalars(select(StaffSession)))


def test_disabling_an_account_signs_it_out_at_once(front_app: Flask) -> None:
    admin = front_app.test_client()
    sign_in(admin, Role.ADMIN)
    editor = front_app.test_client()
    staff = sign_in(editor, Role.EDITOR)
    assert editor.get("/").status_code == 200
    context_of(front_app).staff.disable(staff.email, actor="test")
    assert editor.get("/").status_code == 302


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(
    front_app: Flask, db: sessionmaker[Session]
) -> None:
    staff = add_staff(front_app, Role.EDITOR)
    forged = plain_client(front_app)
    data = {"email": staff.email, "password": PASSWORD}
    assert forged.post("/login", data=data).status_code == 400
    assert forged.post("/login", data={**data, "csrf_token": "forged"}).status_code == 400
    assert forged.get("/").status_code == 302
    with transaction(db, read_only=True) as s:
        assert s.scalars(select(StaffSession)).first() is None
    # Signed in, a sign-out without the token does not sign out.
    client = front_app.test_client()
    sign_in(client)
    session_cookie = client.get_cookie("voxpop")
    assert session_cookie is not None
    bare = plain_client(front_app)
    bare.set_cookie("voxpop", session_cookie.value)
    assert bare.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_the_setup_link_creates_the_first_admin_once(
    front_app: Flask, db: sessionmaker[Session]
) -> None:
    token = context_of(front_app).staff.setup_token()
    assert token
    client = front_app.test_client()
    assert client.get("/setup/not-the-token").status_code == 404
    page = client.get(f"/setup/{token}")
    assert page.status_code == 200
    assert "Create the first admin account" in page.get_data(as_text=True)
    weak = client.post(f"/setup/{token}", data={"email": "admin@city.example", "password": "x"})
    assert weak.status_code == 400
    assert "Use at least 12 characters." in weak.get_data(as_text=True)
    made = client.post(
        f"/setup/{token}", data={"email": "admin@city.example", "password": PASSWORD}
    )
    assert made.status_code == 303
    assert "Welcome" in client.get("/").get_data(as_text=True)
    again = front_app.test_client().post(
        f"/setup/{token}", data={"email": "evil@example.org", "password": PASSWORD}
    )
    assert again.status_code == 404
    with transaction(db, read_only=True) as s:
        assert [(a.email, a.role) for a in s.scalars(select(StaffAccount))] == [
            ("admin@city.example", "admin")
        ]


def test_a_public_simulator_is_for_signed_in_editors_and_admins(
    db: sessionmaker[Session],
) -> None:
    server = ServerConfig(simulator=True, public_url="https://voxpop.example.city")
    app = create_app(Service(db, clock=lambda: NOW), Config(server=server), clock=lambda: NOW)
    signed_out = app.test_client()
    assert signed_out.get("/simulator").headers["Location"].startswith("/login")
    refused = signed_out.get("/simulator/api/surveys")
    assert refused.status_code == 401
    assert "sign in" in refused.get_json()["error"]
    analyst = app.test_client()
    sign_in(analyst, Role.ANALYST)
    assert analyst.get("/simulator").status_code == 403
    editor = app.test_client()
    sign_in(editor, Role.EDITOR)
    assert editor.get("/simulator").status_code == 200
    assert editor.get("/simulator/api/surveys").status_code == 200


def test_cookies_are_host_only_and_secure_behind_https(db: sessionmaker[Session]) -> None:
    server = ServerConfig(public_url="https://voxpop.example.city")
    app = create_app(Service(db, clock=lambda: NOW), Config(server=server), clock=lambda: NOW)
    # The sign-in page already sets the cookie: it holds the form's CSRF token.
    answer = app.test_client().get("/login", base_url="https://voxpop.example.city")
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("__Host-voxpop=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie
    plain = create_app(Service(db, clock=lambda: NOW), Config(), clock=lambda: NOW)
    local = plain.test_client().get("/login").headers["Set-Cookie"]
    assert local.startswith("voxpop=")
    assert "Secure" not in local


def test_staff_commands_add_list_and_disable(db_url: str) -> None:
    added = voxpop(
        db_url,
        "staff",
        "add",
        "Anna@City.example",
        "--role",
        "editor",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert added.stdout == "added anna@city.example (editor)\n"
    weak = voxpop(
        db_url,
        "staff",
        "add",
        "bob@city.example",
        "--role",
        "admin",
        "--password-stdin",
        input="bob\n",
    )
    assert weak.exit_code == 1
    assert "Use at least 12 characters." in weak.stderr
    listed = voxpop(db_url, "staff", "list")
    header, anna = listed.stdout.splitlines()
    assert header.split() == ["EMAIL", "ROLE", "LAST", "SIGN-IN", "(UTC)", "NOTES"]
    assert anna.split() == ["anna@city.example", "editor", "never"]
    # Each value starts under its column's name.
    assert anna.index("editor") == header.index("ROLE")
    assert anna.index("never") == header.index("LAST SIGN-IN")
    disabled = voxpop(db_url, "staff", "disable", "anna@city.example")
    assert disabled.stdout == "disabled anna@city.example; their sessions have ended\n"
    header, anna = voxpop(db_url, "staff", "list").stdout.splitlines()
    assert anna.split()[-1] == "disabled"
    assert anna.index("disabled") == header.index("NOTES")
    unknown = voxpop(db_url, "staff", "disable", "nobody@city.example")
    assert unknown.exit_code == 1
    assert "There is no account with this email." in unknown.stderr


def test_the_setup_page_shows_every_problem_at_once(front_app: Flask) -> None:
    token = context_of(front_app).staff.setup_token()
    client = front_app.test_client()
    both = client.post(f"/setup/{token}", data={"email": "admin", "password": "short"})
    assert both.status_code == 400
    page = both.get_data(as_text=True)
    # Each in the summary, linked to its field, and beside the field.
    assert 'href="#email">Enter an email address like name@city.example.' in page
    assert 'href="#password">Use at least 12 characters.' in page
    assert page.count("Use at least 12 characters.") == 2
    # An empty email (the form's own check) and a weak password: both too.
    empty = client.post(f"/setup/{token}", data={"email": "", "password": "short"})
    assert "Enter your email address." in empty.get_data(as_text=True)
    assert "Use at least 12 characters." in empty.get_data(as_text=True)
