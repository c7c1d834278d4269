"""One-time codes: set up by reading the key, the second step of signing in, replay,
recovery codes, codes required for everyone, and resetting them for a lost phone."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.cli.main import main
from bot.config import Config, ServerConfig
from bot.service import Service
from bot.staff.accounts import Role
from bot.staff.codes import OneTimeCodes
from bot.web.app import create_app
from storage.db import transaction
from storage.models import AuditEntry, StaffAccount
from tests.console.conftest import MovableClock
from tests.console.security.helpers import code_at, secret_on_page, set_up_codes
from tests.staff import PASSWORD, add_staff, sign_in

STEP = timedelta(seconds=30)


def _password(client: FlaskClient, email: str, next_: str = "") -> str:
    response = client.post(
        "/login" + (f"?next={next_}" if next_ else ""), data={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def _actions(db: sessionmaker[Session]) -> list[str]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_codes_set_up_then_asked_at_every_sign_in(
    client: FlaskClient, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    me = sign_in(client, Role.ANALYST)
    page = client.get("/account/codes").get_data(as_text=True)
    # The QR code is an image the CSP allows (no inline script or style), the key is text.
    assert '<img class="voxpop-qr" src="data:image/svg+xml' in page
    # Scripts only from files (the layout's console.js), never inline.
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="module" src="/console/static/console.js">'
    ]
    assert "style=" not in page
    secret, recovery = set_up_codes(client, clock.now)
    with transaction(db, read_only=True) as s:
        row = s.scalar(select(StaffAccount).where(StaffAccount.email == me.email))
        assert row is not None
        assert row.totp_confirmed_at is not None
        # Kept hashed: no recovery code is stored as shown.
        assert not set(recovery) & set(row.recovery_codes)
        assert len(row.recovery_codes) == 10

    client.post("/logout", data={})
    assert _password(client, me.email, "/account").startswith("/login/code")
    # Half signed in: every page asks for the code first.
    assert client.get("/").headers["Location"].startswith("/login/code")
    # The code used to set up is used: seen over a shoulder, it is worth nothing.
    replay = client.post("/login/code", data={"code": code_at(secret, clock.now)})
    assert replay.status_code == 400
    assert "not right, or has been used" in replay.get_data(as_text=True)
    clock.advance(seconds=30)
    done = client.post("/login/code?next=/account", data={"code": code_at(secret, clock.now)})
    assert done.status_code == 303
    assert done.headers["Location"] == "/account"
    assert client.get("/account").status_code == 200
    assert "signed in" in _actions(db)
    assert "one-time code wrong" in _actions(db)


def test_a_code_from_the_step_before_counts_but_not_older(
    client: FlaskClient, clock: MovableClock
) -> None:
    me = sign_in(client, Role.EDITOR)
    secret, _ = set_up_codes(client, clock.now)
    client.post("/logout", data={})
    clock.advance(minutes=5)
    _password(client, me.email)
    # A phone's clock a step behind is forgiven; three steps behind is not.
    too_old = client.post("/login/code", data={"code": code_at(secret, clock.now - 3 * STEP)})
    assert too_old.status_code == 400
    drifted = client.post("/login/code", data={"code": code_at(secret, clock.now - STEP)})
    assert drifted.status_code == 303


def test_each_recovery_code_works_once(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    first = app.test_client()
    me = sign_in(first, Role.EDITOR)
    _, recovery = set_up_codes(first, clock.now)
    for attempt, expected in ((recovery[3].upper(), 303), (recovery[3], 400)):
        browser = app.test_client()
        _password(browser, me.email)
        answer = browser.post("/login/code", data={"code": attempt})
        assert answer.status_code == expected
    again = app.test_client()
    _password(again, me.email)
    landed = again.post("/login/code", data={"code": recovery[4]}, follow_redirects=True)
    assert "You have 8 left" in landed.get_data(as_text=True)
    assert _actions(db).count("recovery code used") == 2


def test_required_codes_come_before_any_other_page(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    editor = app.test_client()
    sign_in(editor, Role.EDITOR)
    assert admin.post("/staff/codes-required", data={"required": "yes"}).status_code == 303
    assert "one-time codes required" in _actions(db)
    for client in (admin, editor):
        sent = client.get("/staff")
        assert sent.status_code == 302
        assert sent.headers["Location"] == "/account/codes"
        posted = client.post("/account/sign-out-everywhere", data={})
        assert posted.status_code == 303
        assert posted.headers["Location"] == "/account/codes"
        assert "Your admin asks everyone" in client.get("/account/codes").get_data(as_text=True)
    set_up_codes(editor, clock.now)
    assert editor.get("/").status_code == 200
    # Signing out needs no codes.
    assert admin.post("/logout", data={}).status_code == 303


def test_an_admin_resets_the_codes_of_someone_who_lost_their_phone(
    app: Flask, clock: MovableClock, db_url: str
) -> None:
    member_browser = app.test_client()
    member = sign_in(member_browser, Role.ANALYST)
    set_up_codes(member_browser, clock.now)
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    page = admin.get(f"/staff/{member.id}").get_data(as_text=True)
    assert "Reset one-time codes" in page
    reset = admin.post(f"/staff/{member.id}/reset-codes", data={}, follow_redirects=True)
    assert "One-time codes of" in reset.get_data(as_text=True)
    fresh = app.test_client()
    # Password only now; they may set codes up again.
    assert _password(fresh, member.email) == "/"
    set_up_codes(fresh, clock.now)

    # The same from the command line.
    result = CliRunner().invoke(
        main,
        ["staff", "reset-codes", member.email.upper()],
        env={"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert f"reset the one-time codes of {member.email}" in result.output
    assert _password(app.test_client(), member.email) == "/"
    missing = CliRunner().invoke(
        main,
        ["staff", "reset-codes", "nobody@city.example"],
        env={"VOXPOP_DATABASE__URL": db_url, "VOXPOP_CONFIG": os.devnull},
    )
    assert missing.exit_code != 0
    assert "no account" in missing.output


def test_the_key_stays_the_same_when_the_page_is_reloaded(client: FlaskClient) -> None:
    sign_in(client, Role.ANALYST)
    first = client.get("/account/codes").get_data(as_text=True)
    again = client.get("/account/codes").get_data(as_text=True)
    # Reloading after scanning keeps the key the app already has.
    assert secret_on_page(first) == secret_on_page(again)


def test_required_codes_come_before_the_public_simulator_too(
    service: Service, clock: MovableClock
) -> None:
    config = Config(server=ServerConfig(public_url="https://voxpop.city.example", simulator=True))
    app = create_app(service, config, clock=clock)
    site = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/"}}
    editor = app.test_client()
    member = add_staff(app, Role.EDITOR)
    signed = editor.post("/login", data={"email": member.email, "password": PASSWORD}, **site)
    assert signed.status_code == 303
    assert editor.get("/simulator", **site).status_code == 200
    OneTimeCodes(service.sessions, clock).set_required(True, actor="test")
    page = editor.get("/simulator", **site)
    assert page.status_code == 302
    assert page.headers["Location"] == "/account/codes"
    api = editor.get("/simulator/api/surveys", **site)
    assert api.status_code == 403
    assert api.get_json() == {"error": "set up one-time codes in the console first"}
