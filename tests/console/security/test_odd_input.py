"""Odd values in addresses and query strings get a 404 or a page, never a 500, on both
engines; signed-in pages are not kept in the browser's cache. (Found by a security review.)"""

from __future__ import annotations

import threading

import pytest
from flask.testing import FlaskClient

from bot.staff import accounts as accounts_module
from bot.staff import passwords
from bot.staff.accounts import Role
from storage import repo
from storage.db import transaction
from tests.staff import PASSWORD, add_staff, context_of, sign_in

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


EDGE_DAYS = [
    "/audit?since=0001-01-01",
    "/audit?since=1%20Jan%200001",
    "/audit?until=9999-12-31",
    "/audit?until=31/12/9999",
    "/results/central-park?from=0001-01-01",
    "/results/central-park?to=9999-12-31",
    "/results/central-park?to=31%20Dec%209999",
]


@pytest.mark.parametrize("path", EDGE_DAYS)
def test_a_day_at_the_calendars_edge_is_a_problem_next_to_its_field(
    client: FlaskClient, path: str
) -> None:
    """Year 1 or 9999 overflowed once turned into UTC or given one more day: a 500."""
    sign_in(client, Role.ADMIN)
    answer = client.get(path)
    assert answer.status_code in (200, 400), (path, answer.status_code)
    assert "There is a problem" in answer.get_data(as_text=True)


def test_a_day_at_the_calendars_edge_in_a_live_update_is_refused(client: FlaskClient) -> None:
    sign_in(client, Role.ANALYST)
    answer = client.get("/results/central-park/live.json?to=9999-12-31")
    assert answer.status_code < 500


@pytest.mark.parametrize("at", ["+99999999999d", "+9999999999999999999999m", "0001-01-01 00:30"])
def test_a_push_time_out_of_reach_is_a_problem_next_to_its_field(
    client: FlaskClient, at: str
) -> None:
    sign_in(client, Role.EDITOR)
    form = {
        "survey": "central-park",
        "at": at,
        "timezone": "Europe/Brussels",
        "channels": ["sms"],
        "action": "check",
    }
    answer = client.post("/pushes/new", data=form)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, answer.status_code
    assert 'href="#at"' in html


@pytest.mark.parametrize("after", ["/%0D//evil.example/", "/%0A//evil.example/", "/a%09b"])
def test_a_line_break_in_next_lands_on_the_home_page(client: FlaskClient, after: str) -> None:
    """A line break in the Location header was a 500 after a right password."""
    staff = add_staff(client.application, Role.EDITOR)
    answer = client.post(f"/login?next={after}", data={"email": staff.email, "password": PASSWORD})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"


def test_a_big_upload_from_someone_signed_out_is_refused_before_it_is_read(
    client: FlaskClient,
) -> None:
    """Only an editor's contacts file may be larger than the app's 1 MB."""
    rows = b"phone\r\n" + b"+32470000000\r\n" * 200_000
    body = (
        b'--edge\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + rows + b"\r\n--edge--\r\n"
    )
    answer = client.post(
        "/contacts/import", data=body, content_type="multipart/form-data; boundary=edge"
    )
    assert answer.status_code == 413


def test_checking_a_password_leaves_the_database_free_for_writers(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a write transaction holds the one write lock: a sign-in must not keep it
    while the (slow) password check runs, or every webhook waits behind it."""
    context = context_of(client.application)
    staff = add_staff(client.application, Role.EDITOR)
    written = threading.Event()
    written_during_the_check: list[bool] = []
    checked = passwords.verify_password

    def write_meanwhile(stored: str | None, password: str) -> bool:
        def write() -> None:
            with transaction(context.sessions) as s:
                repo.set_setting(s, "test_write", "yes")
            written.set()

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=20)
        written_during_the_check.append(written.is_set())
        return checked(stored, password)

    # The real check still runs; a write from another thread is made while it does.
    monkeypatch.setattr(accounts_module, "verify_password", write_meanwhile)
    assert context.staff.authenticate(staff.email, PASSWORD) is not None
    assert written_during_the_check == [True]
