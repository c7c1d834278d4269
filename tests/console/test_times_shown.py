"""Times on the console say which zone they are in, truly: column headers name the city's
zone once (never "UTC" over local times), the audit log's details show times as the pages
do, and two pushes made in the same minute have different names."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask

from bot.pushes.spec import PushSpec
from bot.staff.accounts import Role
from tests.console.results_support import five_weekly_and_a_never
from tests.staff import context_of, sign_in

ZONE = "Europe/Brussels"


def _text(html: str) -> str:
    """What a reader sees: the page without its tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_no_page_calls_local_times_utc_and_headers_name_the_zone(app: Flask) -> None:
    context = context_of(app)
    five_weekly_and_a_never(context.service)
    client = app.test_client()
    sign_in(client, Role.ADMIN)
    pages = {
        "/": "Closes",
        "/consultations/central-park": "Loaded",
        "/staff": "Last sign-in",
        "/account": "Signed in",
        "/audit": "When",
    }
    for path, header in pages.items():
        html = client.get(path).get_data(as_text=True)
        assert "UTC" not in _text(html), path
        assert f">{header} ({ZONE} time)</th>" in html, path
        # Named in the header, the zone is not repeated in the cells below it.
        table = html[html.index(f">{header} ({ZONE} time)</th>") :].split("</table>")[0]
        assert "<time" in table, path
        assert f"({ZONE})" not in table, path


def test_the_free_text_answers_name_the_zone_in_their_header(app: Flask) -> None:
    five_weekly_and_a_never(context_of(app).service)
    client = app.test_client()
    sign_in(client, Role.EDITOR)
    html = client.get("/results/central-park/answers/idea").get_data(as_text=True)
    assert f">Answered ({ZONE} time)</th>" in html
    assert "UTC" not in _text(html)


def test_audit_details_show_times_as_the_pages_do(app: Flask) -> None:
    context = context_of(app)
    at = context.clock() + timedelta(days=1)  # 2 Jun 2026, 09:30 UTC: 11:30 in Brussels
    context.pushes.create(PushSpec(survey="central-park", at=at, channels=("sms",)))
    client = app.test_client()
    sign_in(client, Role.ADMIN)
    shown = _text(client.get("/audit").get_data(as_text=True))
    assert "at: 2 Jun 2026, 11:30" in shown
    assert "+00:00" not in shown


def test_pushes_made_in_the_same_minute_have_different_names(app: Flask) -> None:
    context = context_of(app)
    at = context.clock() + timedelta(days=1)
    first = context.pushes.create(PushSpec(survey="central-park", at=at, channels=("sms",)))
    second = context.pushes.create(PushSpec(survey="central-park", at=at, channels=("sms",)))
    client = app.test_client()
    sign_in(client, Role.ANALYST)
    listed = _text(client.get("/pushes").get_data(as_text=True))
    assert f"Invitation, 2 Jun 2026, 11:30 ({ZONE}), push {second}" in listed
    assert f"Invitation, 2 Jun 2026, 11:30, push {first}" in listed
    home = _text(client.get("/").get_data(as_text=True))
    assert f"push {first}" in home
    assert f"push {second}" in home
