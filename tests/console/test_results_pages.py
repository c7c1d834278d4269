"""The Results pages through Flask's test client, on both engines: who reads what, the
numbers, the filter's problems, downloads and their audit entries."""

from __future__ import annotations

import csv
import io
import json
import re

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.access import Role
from bot.service import Service
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import AuditEntry
from tests.console.results_support import IDEA, NEVER, answer, five_weekly_and_a_never, sms
from tests.staff import sign_in

PAGE = "/results/central-park"


@pytest.fixture
def answered(service: Service) -> Service:
    five_weekly_and_a_never(service)
    return service


def signed_in(app: Flask, role: Role) -> FlaskClient:
    client = app.test_client()
    sign_in(client, role)
    return client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def audits(db: sessionmaker[Session], action: str) -> list[AuditEntry]:
    with transaction(db, read_only=True) as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def test_signed_out_staff_are_asked_to_sign_in(app: Flask) -> None:
    for path in ("/results", PAGE, PAGE + "/download.csv"):
        response = app.test_client().get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]
    # The page's poll is told in JSON, which its script shows (a link to sign in).
    polled = app.test_client().get(PAGE + "/live.json")
    assert polled.status_code == 401
    assert polled.get_json()["sign_in"] == "/login"


@pytest.mark.parametrize("role", [Role.ANALYST, Role.EDITOR, Role.ADMIN])
def test_every_role_reads_the_list_and_the_results(
    app: Flask, answered: Service, role: Role
) -> None:
    client = signed_in(app, role)
    listed = text_of(client.get("/results").get_data(as_text=True))
    assert "Central Park" in listed
    assert "Central Park (central-park) 1 Open 6" in listed
    page = client.get(PAGE)
    assert page.status_code == 200
    shown = text_of(page.get_data(as_text=True))
    assert "6 responses" in shown
    # Every week: 5 of 6; never: 1 of 6 (the table beside the chart).
    assert "Every week 5 83.3%" in shown
    assert "Never 1 16.7%" in shown
    assert "Every month 0 0.0%" in shown


def test_analysts_never_see_free_text(app: Flask, answered: Service) -> None:
    client = signed_in(app, Role.ANALYST)
    html = client.get(PAGE).get_data(as_text=True)
    assert IDEA not in html
    assert "Too far from home" not in html
    assert "shown to editors and admins only" in html
    assert "/answers/" not in html
    assert "with free text" not in html
    # Nor a phone number: results know channels and pseudonyms only.
    assert "47055" not in html
    response = client.get(PAGE + "/answers/idea")
    assert response.status_code == 403
    response = client.get(PAGE + "/download.csv?free_text=yes")
    assert response.status_code == 403
    assert IDEA not in response.get_data(as_text=True)


def test_editors_read_and_search_the_free_text(app: Flask, answered: Service) -> None:
    client = signed_in(app, Role.EDITOR)
    html = client.get(PAGE).get_data(as_text=True)
    assert "Read and search the 5 answers" in text_of(html)
    found = text_of(client.get(PAGE + "/answers/idea").get_data(as_text=True))
    assert "5 answers, newest first." in found
    assert found.count(IDEA) == 5
    none = text_of(client.get(PAGE + "/answers/idea?search=swings").get_data(as_text=True))
    assert "0 answers contain “swings”." in none
    why = text_of(client.get(PAGE + "/answers/why_not?search=FAR").get_data(as_text=True))
    assert "1 answer contain" in why
    assert "Too far from home" in why
    assert client.get(PAGE + "/answers/visits").status_code == 404
    assert client.get("/results/nope/answers/idea").status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_downloads_are_audited_and_hold_free_text_only_when_allowed(
    app: Flask, answered: Service, db: sessionmaker[Session], fmt: str
) -> None:
    analyst = signed_in(app, Role.ANALYST)
    response = analyst.get(f"{PAGE}/download.{fmt}")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = read_back(fmt, response.get_data())
    assert len(rows) == 6
    assert all("idea" not in row for row in rows)
    editor = signed_in(app, Role.EDITOR)
    full = read_back(fmt, editor.get(f"{PAGE}/download.{fmt}?free_text=yes").get_data())
    assert [row.get("idea") for row in full].count(IDEA) == 5
    entries = audits(db, "export downloaded")
    assert [(e.subject, e.details["format"], e.details["free_text"]) for e in entries] == [
        ("central-park", fmt, False),
        ("central-park", fmt, True),
    ]
    assert entries[0].actor != entries[1].actor


def read_back(fmt: str, data: bytes) -> list[dict[str, object]]:
    """The rows of a download as ``{column: value}`` (JSONL: the answers flattened)."""
    if fmt == "jsonl":
        records = [json.loads(line) for line in data.decode().splitlines()]
        return [{**r, **r["answers"]} for r in records]
    if fmt == "csv":
        return [
            {k: v for k, v in row.items() if v != ""}
            for row in csv.DictReader(io.StringIO(data.decode()))
        ]
    book = openpyxl.load_workbook(io.BytesIO(data))
    header, *rows = list(book["responses"].iter_rows(values_only=True))
    book.close()
    return [{str(k): v for k, v in zip(header, row, strict=True) if v is not None} for row in rows]


def test_filters_narrow_the_numbers_and_downloads(app: Flask, answered: Service) -> None:
    client = signed_in(app, Role.ANALYST)
    answer(answered, sms(99), ("PARK", "2"))  # still answering
    done = text_of(client.get(PAGE + "?status=completed").get_data(as_text=True))
    assert "6 responses" in done
    everyone = text_of(client.get(PAGE).get_data(as_text=True))
    assert "7 responses" in everyone
    assert "Every month 1 14.3%" in everyone
    partial = client.get(PAGE + "/download.jsonl?status=partial").get_data(as_text=True)
    assert len(partial.splitlines()) == 1
    later = text_of(client.get(PAGE + "?from=2030-01-01").get_data(as_text=True))
    assert "0 responses" in later


def test_a_filter_that_cannot_be_used_is_named_next_to_its_field(
    app: Flask, answered: Service
) -> None:
    client = signed_in(app, Role.ANALYST)
    response = client.get(PAGE + "?from=yesterday&to=2030-01-01&version=9&by=attribute:a%22b")
    assert response.status_code == 200
    shown = text_of(response.get_data(as_text=True))
    assert "There is a problem with the filter" in shown
    assert "Enter the first day as a date, like 2026-12-01" in shown
    assert "Choose a version of this consultation" in shown
    assert "Choose what to break the results down by" in shown
    assert "6 responses" in shown  # the rest still applies
    wrong_order = client.get(PAGE + "?from=2026-06-02&to=2026-06-01")
    assert "The last day must be the same as or after the first day" in text_of(
        wrong_order.get_data(as_text=True)
    )
    # The message sits next to its field (GOV.UK's error message inside the field's group).
    html = response.get_data(as_text=True)
    assert '<p id="filter-from-error" class="govuk-error-message">' in html
    assert 'aria-describedby="filter-from-hint filter-from-error"' in html
    # A day typed as people write it, or as the pages show it, is the same day.
    for typed in ("2026-06-01", "1/6/2026", "1 Jun 2026"):
        same = client.get(PAGE, query_string={"from": typed, "to": typed})
        assert "There is a problem" not in same.get_data(as_text=True), typed
    assert client.get(PAGE + "?from=31/02/2026").status_code == 200
    assert client.get(PAGE + "/download.csv?from=never").status_code == 400
    assert client.get(PAGE + "/download.pdf").status_code == 404
    assert client.get("/results/nope").status_code == 404
    assert client.get("/results/nope/download.csv").status_code == 404


def test_small_groups_are_merged_in_a_breakdown(app: Flask, answered: Service) -> None:
    client = signed_in(app, Role.ANALYST)
    shown = text_of(client.get(PAGE + "?by=channel").get_data(as_text=True))
    # Telegram has one person: merged, and SMS (5) with it, or Telegram's answers would be
    # the total less SMS's.
    assert "Other (small groups) 6 people" in shown
    assert "telegram" not in shown.split("Questions", 1)[1]
    by_language = text_of(client.get(PAGE + "?by=language").get_data(as_text=True))
    assert "en 6 people" in by_language


def test_the_live_numbers_follow_new_answers(app: Flask, answered: Service) -> None:
    client = signed_in(app, Role.ANALYST)
    before = client.get(PAGE + "/live.json").get_json()
    assert before["responses"] == 6
    assert ["weekly", 5, 83.3] in before["questions"]["visits"]["rows"]
    assert "idea" in before["questions"]  # counts only: no text in live numbers
    assert IDEA not in json.dumps(before)
    answer(answered, sms(50), NEVER[:2])
    after = client.get(PAGE + "/live.json").get_json()
    assert after["responses"] == 7
    assert ["never", 2, 28.6] in after["questions"]["visits"]["rows"]


def simulated(service: Service, number: int, lines: tuple[str, ...]) -> None:
    """Staff try the consultation in the simulator (their test phone), as its page does."""
    for n, text in enumerate(lines):
        address = Address("sms", f"+3247066{number:04d}")
        message = InboundMessage(address, text, f"sim-{number}-{n}", service.now())
        service.receive(message, simulated=True)


def test_one_of_a_thing_is_said_in_the_singular(app: Flask, service: Service) -> None:
    simulated(service, 1, ("PARK", "2"))
    client = signed_in(app, Role.ANALYST)
    assert "1 test run in the simulator" in text_of(client.get("/results").get_data(as_text=True))
    shown = text_of(client.get(PAGE + "?include_simulator=yes").get_data(as_text=True))
    assert "1 response :" in shown
    assert "1 responses" not in shown
    assert "these figures include the test conversation staff had in the simulator" in shown
    assert "which are not" not in shown
    honest = text_of(client.get(PAGE).get_data(as_text=True))
    assert "Staff's 1 test run in the simulator is left out" in honest


def test_test_runs_are_left_out_unless_asked_for_and_then_said_clearly(
    app: Flask, service: Service
) -> None:
    simulated(service, 1, ("PARK", "2"))
    simulated(service, 2, ("PARK", "2"))
    client = signed_in(app, Role.ANALYST)
    # Only test runs so far: the list still links to the results, with the test runs.
    listed = client.get("/results").get_data(as_text=True)
    assert "2 test runs in the simulator" in text_of(listed)
    assert 'href="/results/central-park?include_simulator=yes"' in listed
    honest = text_of(client.get(PAGE).get_data(as_text=True))
    assert "0 responses" in honest
    assert "Staff's 2 test runs in the simulator are left out" in honest
    assert "Results of central-park" in honest  # the id, should two share a title
    assert "Test runs included" not in honest
    shown = client.get(PAGE + "?include_simulator=yes").get_data(as_text=True)
    included = text_of(shown)
    assert "2 responses" in included
    assert "Every month 2 100.0%" in included
    assert (
        "Test runs included: these figures include the 2 test conversations staff had" in included
    )
    # The live numbers and the downloads follow the same filter.
    assert "include_simulator=yes" in shown[shown.index("data-live-url") :][:200]
    live = client.get(PAGE + "/live.json?include_simulator=yes").get_json()
    assert live["responses"] == 2
    assert client.get(PAGE + "/live.json").get_json()["responses"] == 0
    rows = client.get(PAGE + "/download.jsonl?include_simulator=yes").get_data(as_text=True)
    assert len(rows.splitlines()) == 2
    assert client.get(PAGE + "/download.jsonl").get_data(as_text=True) == ""
