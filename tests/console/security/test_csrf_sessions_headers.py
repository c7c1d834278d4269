"""Every console form without or with a wrong CSRF token is refused and changes nothing;
sessions end when idle, at their absolute end, and at once when revoked; the headers and
cookies of console pages; no traceback on any error page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from storage.db import transaction
from storage.models import Base
from tests.console.conftest import MovableClock
from tests.console.security.conftest import https_config
from tests.csrf_client import plain_client
from tests.staff import PASSWORD, add_staff, sign_in

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _snapshot(db: sessionmaker[Session]) -> dict[str, list[Any]]:
    with transaction(db, read_only=True) as s:
        return {
            table.name: sorted(map(repr, s.execute(select(table)).all()))
            for table in Base.metadata.sorted_tables
        }


def _sign_in_by_hand(client: FlaskClient, email: str) -> None:
    """As a browser does: read the token from the page, send it with the form."""
    token = _TOKEN.search(client.get("/login").get_data(as_text=True))
    assert token
    answer = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303


def test_every_console_form_refuses_a_missing_or_wrong_token(
    app: Flask, db: sessionmaker[Session]
) -> None:
    admin = add_staff(app, Role.ADMIN)
    target = add_staff(app, Role.ANALYST)
    client = plain_client(app)
    _sign_in_by_hand(client, admin.email)
    posts = [
        re.sub(r"<(?:\w+:)?\w+>", "x", rule.rule.replace("<int:staff_id>", str(target.id)))
        .replace("/x/", "/1/")
        .replace("/x.", "/1.")
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set())
        and not rule.endpoint.startswith(("webhooks.", "simulator."))
    ]
    assert "/staff/codes-required" in posts
    assert "/logout" in posts
    before = _snapshot(db)
    for path in posts:
        for data in ({}, {"csrf_token": "forged"}):
            form = {"email": "x@city.example", "password": PASSWORD, "role": "admin", **data}
            answer = client.post(path, data=form)
            assert answer.status_code == 400, (path, data)
            assert "CSRF" in answer.get_data(as_text=True)
    assert _snapshot(db) == before
    # Still signed in: a forged sign-out did not sign anyone out.
    assert client.get("/staff").status_code == 200


def test_idle_and_absolute_ends(client: FlaskClient, clock: MovableClock) -> None:
    sign_in(client, Role.ANALYST)
    clock.advance(minutes=29)
    assert client.get("/account").status_code == 200
    clock.advance(minutes=31)
    idle = client.get("/account")
    assert idle.status_code == 302
    assert idle.headers["Location"].startswith("/login")
    sign_in(client, Role.ANALYST)
    for _ in range(11 * 3 + 2):  # active every 20 minutes for 11 hours 40
        clock.advance(minutes=20)
        assert client.get("/account").status_code == 200
    clock.advance(minutes=20)
    assert client.get("/account").status_code == 302


def test_revocation_ends_sessions_at_once(app: Flask) -> None:
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    anna = add_staff(app, Role.EDITOR, "anna@city.example")
    laptop, phone = app.test_client(), app.test_client()
    for browser in (laptop, phone):
        assert (
            browser.post("/login", data={"email": anna.email, "password": PASSWORD}).status_code
            == 303
        )
    page = admin.get(f"/staff/{anna.id}").get_data(as_text=True)
    assert page.count('class="govuk-table__row"') == 3  # a header and two sessions
    # Her own "sign out everywhere else" keeps the browser she clicked in.
    assert laptop.post("/account/sign-out-everywhere", data={}).status_code == 303
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").status_code == 302
    # An admin's "sign out everywhere" ends all of them.
    assert phone.post("/login", data={"email": anna.email, "password": PASSWORD}).status_code == 303
    admin.post(f"/staff/{anna.id}/sign-out", data={})
    assert laptop.get("/account").status_code == 302
    assert phone.get("/account").status_code == 302
    # Disabling ends a session at once, and no sign-in works after.
    assert (
        laptop.post("/login", data={"email": anna.email, "password": PASSWORD}).status_code == 303
    )
    disabled = admin.post(f"/staff/{anna.id}/disable", data={}, follow_redirects=True)
    assert "is disabled" in disabled.get_data(as_text=True)
    assert laptop.get("/account").status_code == 302
    assert (
        laptop.post("/login", data={"email": anna.email, "password": PASSWORD}).status_code == 400
    )
    admin.post(f"/staff/{anna.id}/enable", data={})
    assert (
        laptop.post("/login", data={"email": anna.email, "password": PASSWORD}).status_code == 303
    )


def test_changing_the_password_ends_every_other_session(app: Flask) -> None:
    anna = add_staff(app, Role.ANALYST, "anna@city.example")
    here, elsewhere = app.test_client(), app.test_client()
    for browser in (here, elsewhere):
        browser.post("/login", data={"email": anna.email, "password": PASSWORD})
    wrong = here.post("/account/password", data={"current": "nope nope nope", "new": "x"})
    assert wrong.status_code == 400
    assert "Your current password is not right." in wrong.get_data(as_text=True)
    new = "cormorants nesting above the canal locks"
    done = here.post("/account/password", data={"current": PASSWORD, "new": new})
    assert done.status_code == 303
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 302
    assert elsewhere.post("/login", data={"email": anna.email, "password": new}).status_code == 303


def test_the_last_admin_is_kept(app: Flask) -> None:
    client = app.test_client()
    me = sign_in(client, Role.ADMIN)
    refused = client.post(f"/staff/{me.id}/disable", data={}, follow_redirects=True)
    assert "last admin" in refused.get_data(as_text=True)
    demoted = client.post(f"/staff/{me.id}/role", data={"role": "editor"}, follow_redirects=True)
    assert "last admin" in demoted.get_data(as_text=True)
    assert client.get("/staff").status_code == 200


def test_console_headers_and_cookies_behind_https(service: Service, clock: MovableClock) -> None:
    app = create_app(service, https_config(), clock=clock)
    member = add_staff(app, Role.ADMIN)
    client = app.test_client()
    site = "https://localhost"
    signed = client.post(
        "/login",
        data={"email": member.email, "password": PASSWORD},
        base_url=site,
        headers={"Referer": f"{site}/login"},
    )
    assert signed.status_code == 303
    cookies = signed.headers.getlist("Set-Cookie")
    for name in ("__Host-voxpop=", "__Host-voxpop-device="):
        cookie = next(c for c in cookies if c.startswith(name))
        for part in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert part in cookie, (name, cookie)
        assert "Domain=" not in cookie
    for path in ("/login", "/", "/account", "/account/codes", "/staff", "/audit", "/nowhere"):
        page = client.get(path, base_url=site)
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        body = page.get_data(as_text=True)
        assert "<script>" not in body
        assert " style=" not in body
        assert "onclick" not in body


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_error_page_shows_a_traceback(service: Service, clock: MovableClock) -> None:
    app = create_app(service, https_config(), clock=clock)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals /opt/voxpop/bot/x.py")

    client = app.test_client()
    analyst = app.test_client()
    sign_in(analyst, Role.ANALYST)
    answers = [
        client.get("/boom"),
        client.get("/nowhere"),
        client.put("/login"),
        plain_client(app).post("/login", data={}),
        analyst.get("/staff"),
        analyst.get("/staff/999999"),
        client.post("/login", data={"email": "x" * 5000, "password": "y"}),
        client.get("/audit?since=not-a-date"),
        client.post("/login", data={"email": "a@b.c", "password": "p"}, content_type="text/plain"),
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 500
    assert 404 in statuses
    assert 405 in statuses
    assert 403 in statuses
    for answer in answers:
        body = answer.get_data(as_text=True)
        assert "Traceback" not in body
        assert "secret internals" not in body
        assert ".py" not in body
