"""Odd values in addresses and query strings get a 404 or a page, never a 500, on both
engines; signed-in pages are not kept in the browser's cache. (Found by a security review.)"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bot.staff.accounts import Role
from tests.staff import PASSWORD, sign_in

ODD = [
    "/results/central-park?version=%C2%B2",
    "/results/central-park?version=99999999999999999999",
    "/results/central-park/answers/comment?page=%C2%B2",
    "/contacts?page=%C2%B2",
    "/contacts?page=99999999999999999999",
    "/contacts?q=%C2%B2",
    "/contacts?q=99999999999999999999",
    "/results/%00",
    "/results/%00/live.json",
    "/results/%00/download.csv",
    "/consultations/%00",
    "/consultations/%00/close",
    "/consultations/new?from=%00",
    "/consultations/new?from=" + "a" * 300,
]


@pytest.mark.parametrize("path", ODD)
def test_an_odd_value_is_never_a_500(client: FlaskClient, path: str) -> None:
    sign_in(client, Role.ADMIN)
    answer = client.get(path)
    assert answer.status_code < 500, (path, answer.status_code)


@pytest.mark.parametrize(
    "typed", ["²", "99999999999999999999", "+" + "9" * 40, "telegram:", "sms:+", chr(0), "x" * 500]
)
def test_an_odd_number_to_find_is_never_a_500(client: FlaskClient, typed: str) -> None:
    sign_in(client, Role.EDITOR)
    answer = client.post("/contacts/find", data={"q": typed})
    assert answer.status_code == 400, (typed, answer.status_code)
    assert "There is a problem" in answer.get_data(as_text=True)


def test_a_code_in_other_digits_is_just_wrong(client: FlaskClient) -> None:
    sign_in(client, Role.ADMIN)
    answer = client.post("/account/codes", data={"code": "²²²²²²"})
    assert answer.status_code < 500


def test_signed_in_pages_are_not_cached(client: FlaskClient) -> None:
    assert "no-store" not in client.get("/login").headers.get("Cache-Control", "")
    sign_in(client, Role.EDITOR)
    for path in ("/", "/contacts", "/consultations", "/account"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path


def test_the_current_password_on_the_account_page_is_held_like_a_sign_in(
    client: FlaskClient,
) -> None:
    """A stolen session must not guess the password there without limit."""
    sign_in(client, Role.ANALYST)
    codes = [
        client.post(
            "/account/password", data={"current": f"wrong guess {n}", "new": PASSWORD + "!"}
        ).status_code
        for n in range(8)
    ]
    assert codes[0] == 400
    assert codes[-1] == 429
    held = client.post("/account/password", data={"current": PASSWORD, "new": PASSWORD + "!"})
    assert held.status_code == 429
    assert "Try again in" in held.get_data(as_text=True)
