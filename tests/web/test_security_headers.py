"""Every response carries the security headers, set once for the whole app; HSTS only
behind HTTPS; an error page never shows a traceback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bot.config import Config, ServerConfig, TelegramConfig, TwilioConfig
from bot.service import Service
from bot.web.app import create_app
from bot.web.security import CONTENT_SECURITY_POLICY, HSTS

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ALWAYS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _config(public_url: str = "") -> Config:
    """Every channel configured, so that every webhook route exists."""
    return Config(
        server=ServerConfig(public_url=public_url),
        telegram=TelegramConfig(token="123:abc", webhook_secret="secret"),
        twilio=TwilioConfig(
            account_sid="AC" + "0" * 32,
            auth_token="token",
            sms_from="+15555550199",
            whatsapp_from="+15555550188",
        ),
    )


def _app(db: sessionmaker[Session], public_url: str = "") -> Flask:
    service = Service(db, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC))
    return create_app(service, _config(public_url))


def _every_route(app: Flask) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<path:filename>", "simulator.js")
        found += [(method, path) for method in sorted(rule.methods or ()) if method != "OPTIONS"]
    return found


def _assert_headers(response: TestResponse, hsts: bool) -> None:
    response.close()  # a static file's answer holds the file open
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, (name, response.status)
    assert response.headers.get("Strict-Transport-Security") == (HSTS if hsts else None)


def test_every_route_and_error_carries_the_headers(db: sessionmaker[Session]) -> None:
    app = _app(db)
    client = app.test_client()
    routes = _every_route(app)
    assert len(routes) >= 14  # the test sees the webhooks, the simulator, health, static

    for method, path in [*routes, ("GET", "/no/such/page"), ("DELETE", "/healthz")]:
        response = client.open(path, method=method)
        _assert_headers(response, hsts=False)


def test_hsts_only_behind_https(db: sessionmaker[Session]) -> None:
    plain = _app(db, "http://127.0.0.1:8080").test_client()
    public = _app(db, "https://voxpop.example.org").test_client()

    _assert_headers(plain.get("/healthz"), hsts=False)
    # A secure request (TLS at this server, or a proxy that says so) gets it anyway.
    _assert_headers(plain.get("/healthz", base_url="https://localhost"), hsts=True)
    for method, path in _every_route(public.application):
        _assert_headers(public.open(path, method=method), hsts=True)


def test_an_error_page_shows_no_traceback(db: sessionmaker[Session]) -> None:
    app = _app(db)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail +32470123456")

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    assert "secret detail" not in body
    assert "+32470123456" not in body
    _assert_headers(response, hsts=False)
