"""Every route of the app, every method, signed out and as each role: allowed, or a
redirect to sign in (signed out), or 403 with an audit entry. Every console view carries
the role it needs, or is on the short list of public routes below: a new page without a
role check fails here. The role matrix in docs/console.md is the one the views declare."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import IntegerConverter, Rule

from bot.config import Config, ServerConfig
from bot.console.matrix import markdown_table, role_matrix
from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from storage.db import transaction
from storage.models import AuditEntry
from tests.console.conftest import MovableClock
from tests.staff import PASSWORD, add_staff, sign_in

DOCS: Final = Path(__file__).resolve().parents[3] / "docs" / "console.md"

#: Routes anyone may reach, each for a reason: the sign-in steps, static files, the health
#: checks, the providers' webhooks (they verify a signature), and the simulator (its own
#: blueprint asks for a signed-in editor where the server is public; tested below).
PUBLIC: Final = {
    "static",
    "console_static.static",
    "healthz",
    "health.readyz",
    "console_auth.login",
    "console_auth.logout",
    "console_auth.code",
    "console_auth.setup",
}
PUBLIC_BLUEPRINTS: Final = {"webhooks", "simulator"}
SKIPPED_METHODS: Final = {"HEAD", "OPTIONS"}


@pytest.fixture
def public_app(service: Service, clock: MovableClock) -> Flask:
    """A public server with the simulator on: every kind of route there is."""
    config = Config(server=ServerConfig(public_url="https://voxpop.city.example", simulator=True))
    return create_app(service, config, clock=clock)


def _url(app: Flask, rule: Rule, target_id: int) -> str:
    values = {
        name: str(target_id) if isinstance(converter, IntegerConverter) else "x"
        for name, converter in rule._converters.items()
    }
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def _routes(app: Flask) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) - SKIPPED_METHODS)
    ]


def _refusals(db: sessionmaker[Session], path: str) -> int:
    with transaction(db, read_only=True) as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "access refused"))
        return sum(1 for entry in entries if entry.details.get("path") == path)


# The test client keeps cookies per host: the same host as its CSRF token.
SITE: Final = "https://localhost"


def _https(client: FlaskClient, method: str, url: str, **kwargs: Any) -> int:
    # Over HTTPS, Flask-WTF also checks that a form comes from this site (Referer).
    answer = client.open(
        url, method=method, base_url=SITE, headers={"Referer": f"{SITE}/"}, **kwargs
    )
    return answer.status_code


def test_every_console_view_declares_its_role_or_is_public(public_app: Flask) -> None:
    unguarded = [
        rule.endpoint
        for rule in public_app.url_map.iter_rules()
        if getattr(public_app.view_functions[rule.endpoint], "required_role", None) is None
        and rule.endpoint not in PUBLIC
        and rule.endpoint.split(".")[0] not in PUBLIC_BLUEPRINTS
    ]
    assert unguarded == [], "add @requires(Role...) to these views, or explain them in PUBLIC"
    assert len(role_matrix(public_app)) >= 10


def test_every_route_as_every_role(public_app: Flask, db: sessionmaker[Session]) -> None:
    app = public_app
    target = add_staff(app, Role.ANALYST)
    signed_out = app.test_client()
    clients: dict[Role, FlaskClient] = {}
    for role in Role:
        client = app.test_client()
        member = add_staff(app, role)
        signed = _https(
            client, "POST", "/login", data={"email": member.email, "password": PASSWORD}
        )
        assert signed == 303
        clients[role] = client
    tried = 0
    for rule, method in _routes(app):
        view = app.view_functions[rule.endpoint]
        needed: Role | None = getattr(view, "required_role", None)
        if rule.endpoint.startswith("simulator."):
            needed = Role.EDITOR
        if needed is None:
            continue
        url = _url(app, rule, target.id)
        answer = signed_out.open(url, method=method, base_url=SITE, headers={"Referer": SITE})
        polled = getattr(view, "is_poll", False)  # a page's script: told in JSON
        if rule.endpoint.startswith("simulator.api") or "/api/" in url or polled:
            assert answer.status_code == 401, (method, url)
        else:
            assert answer.status_code in (302, 303), (method, url, answer.status_code)
            assert answer.headers["Location"].startswith("/login"), (method, url)
        for role, client in clients.items():
            before = _refusals(db, url)
            status = _https(client, method, url)
            if role.allows(needed):
                assert status not in (401, 403), (role, method, url, status)
                assert status < 500, (role, method, url, status)
            else:
                assert status == 403, (role, method, url, status)
                assert _refusals(db, url) == before + 1, (role, method, url)
            tried += 1
    assert tried >= 3 * len(role_matrix(app))


def test_the_docs_show_the_role_matrix_the_views_declare(app: Flask) -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- role-matrix -->\n(.*?)<!-- /role-matrix -->", text, re.S)
    assert found, "docs/console.md has no <!-- role-matrix --> section"
    expected = markdown_table(app)
    assert found.group(1) == expected, (
        "docs/console.md's role matrix is out of date; replace the table between the "
        f"role-matrix markers with:\n{expected}"
    )


def test_a_signed_in_member_without_the_role_sees_a_plain_403(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, Role.ANALYST)
    page = client.get("/staff")
    assert page.status_code == 403
    assert "Traceback" not in page.get_data(as_text=True)
