"""A page's script polling for fresh numbers does not keep its session alive: an unattended
results, push or import page is signed out after ``[console] idle_minutes``, and its poll
then gets a 401 in JSON the page shows. A real page view still counts as activity."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.console.access import SIGNED_OUT_MESSAGE
from bot.staff.accounts import Role
from tests.console.conftest import MovableClock
from tests.staff import sign_in

PAGE = "/results/central-park"
#: The JSON the console's scripts poll (results.js, pushes.js, contacts-import.js).
POLLS = ["/results/central-park/live.json", "/pushes/1.json", "/contacts/import/1.json"]


def _polls_answer(client: FlaskClient, url: str) -> bool:
    status = client.get(url, headers={"Accept": "application/json"}).status_code
    assert status in (200, 401, 404), (url, status)
    return status != 401


def test_the_polled_endpoints_are_marked_as_polls(app: Flask) -> None:
    with app.test_request_context():
        polled = sorted(
            rule.rule
            for rule in app.url_map.iter_rules()
            if getattr(app.view_functions[rule.endpoint], "is_poll", False)
        )
    assert polled == sorted(
        [
            "/results/<slug>/live.json",
            "/pushes/<int:push_id>.json",
            "/contacts/import/<int:job_id>.json",
        ]
    )


@pytest.mark.parametrize("poll", POLLS)
def test_a_session_that_only_polls_ends_after_the_idle_time(
    client: FlaskClient, clock: MovableClock, poll: str
) -> None:
    sign_in(client, Role.EDITOR)
    assert client.get(PAGE).status_code == 200
    for _ in range(5):  # a poll every 5 minutes, nobody at the keyboard, for 25 minutes
        clock.advance(minutes=5)
        assert _polls_answer(client, poll)
    clock.advance(minutes=5)  # 30 minutes after the last page view
    ended = client.get(poll, headers={"Accept": "application/json"})
    assert ended.status_code == 401
    assert ended.is_json
    assert ended.get_json() == {
        "signed_out": True,
        "message": SIGNED_OUT_MESSAGE,
        "sign_in": "/login",
    }
    assert SIGNED_OUT_MESSAGE == "You have been signed out, sign in again."
    # The session is over for pages too.
    again = client.get(PAGE)
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/login")


def test_a_page_view_still_counts_as_activity(client: FlaskClient, clock: MovableClock) -> None:
    sign_in(client, Role.ANALYST)
    poll = POLLS[0]
    for _ in range(3):  # someone reading the page now and then, for an hour
        clock.advance(minutes=20)
        assert client.get(PAGE).status_code == 200
        assert _polls_answer(client, poll)
    clock.advance(minutes=29)
    assert _polls_answer(client, poll)
    clock.advance(minutes=1)
    assert not _polls_answer(client, poll)


def test_a_signed_out_poll_gets_json_not_the_sign_in_page(client: FlaskClient) -> None:
    for poll in POLLS:
        answer = client.get(poll, headers={"Accept": "application/json"})
        assert answer.status_code == 401, poll
        assert answer.get_json()["signed_out"] is True
