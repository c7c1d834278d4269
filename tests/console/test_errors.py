"""Error pages for the whole app (bot/console/errors.py): plain words in the console's
layout, JSON for who asked for JSON, never a traceback, nothing personal in the log."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.console.errors import ERRORS
from bot.web.app import MAX_BODY
from tests.console.trial import PHONE, with_trial


@pytest.fixture
def app(app: Flask) -> Flask:
    return with_trial(app)


def heading(html: str) -> str:
    found = re.search(r"<h1[^>]*>([^<]+)</h1>", html)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("method", "path", "code", "words"),
    [
        ("GET", "/trial/abort/400", 400, "Go back, reload the page and try again."),
        ("GET", "/trial/abort/403", 403, "ask an administrator of Voxpop"),
        ("GET", "/no/such/page", 404, "check it is correct"),
        ("GET", "/trial/only-post", 405, "use its links and buttons"),
        ("POST", "/trial/upload", 413, "Voxpop accepts up to 1 MB in one go."),
        ("GET", "/trial/abort/429", 429, "Wait a minute, then try again."),
        ("GET", "/trial/boom", 500, "Try again in a few minutes."),
    ],
)
def test_each_error_is_a_page_in_plain_words(
    client: FlaskClient, method: str, path: str, code: int, words: str
) -> None:
    data = {"file": "x" * (MAX_BODY + 1)} if code == 413 else None
    response = client.open(path, method=method, data=data)
    assert response.status_code == code
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert heading(html) == ERRORS[code].title
    assert f"<title>{ERRORS[code].title} – Voxpop</title>" in html
    assert words in html
    assert "Go to the home page" in html
    # The layout, and never the server's insides.
    assert "govuk-service-navigation" in html
    for word in ("Traceback", "Werkzeug", "Exception", "werkzeug", ".py"):
        assert word not in html
    # Every header the error carries stays: how to retry, what is allowed.
    if code == 405:
        assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    if code == 429:
        assert response.headers["Retry-After"] == "60"


def test_a_bug_is_the_500_page_and_logs_nothing_personal(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.get("/trial/boom?who=%2B32470123456&text=my+neighbour+is+loud")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "my neighbour" not in html
    assert PHONE not in html
    assert "RuntimeError" not in html
    reference = re.search(r"this reference: ([0-9a-f]{8})\.", html)
    assert reference is not None

    # One line for whoever runs Voxpop: what failed, where and the reference, with the stack.
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    logged = caplog.text
    assert "RuntimeError in GET /trial/boom" in logged
    assert reference.group(1) in logged
    assert "def boom" not in logged  # frames, not source listings of locals
    assert "trial.py" in logged
    for personal in (PHONE, "32470123456", "my neighbour", "who="):
        assert personal not in logged
    assert record.exc_info is None  # a formatter could not print the message either


def test_who_asks_for_json_gets_json(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert isinstance(response.get_json()["error"], str)

    response = client.post("/trial/upload", json={"x": "y" * MAX_BODY})
    assert response.status_code == 413
    assert response.get_json() is not None

    bug = client.get("/trial/boom", headers={"Accept": "application/json"})
    assert bug.status_code == 500
    error = bug.get_json()["error"]
    assert error.startswith("Sorry, there is a problem with Voxpop (reference ")
    assert PHONE not in error


def test_a_browser_gets_a_page(client: FlaskClient) -> None:
    # What Chromium sends for a page: HTML first, anything after.
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/no/such/page", headers={"Accept": accept})
    assert response.mimetype == "text/html"
    # And an API client that takes anything gets a page too: JSON is for who asks for it.
    assert client.get("/no/such/page", headers={"Accept": "*/*"}).mimetype == "text/html"


def test_the_simulator_api_keeps_its_json_errors(client: FlaskClient) -> None:
    response = client.get("/simulator/api/no-such-call")
    assert response.status_code == 404
    assert "error" in response.get_json()
    response = client.post(
        "/simulator/api/send", data="x" * (MAX_BODY + 1), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == f"request body too large (limit {MAX_BODY} bytes)"
