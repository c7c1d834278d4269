"""No phone number in the audit log, in any page an analyst (or the audit log's admin) can
open, nor in any log line at any level, during a whole journey: staff accounts and codes,
contacts imported, a citizen answering and leaving, a push fired, a contact erased."""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ContactsConfig
from bot.console.matrix import role_matrix
from bot.log_privacy import LIBRARY_LOGGERS
from bot.pushes.service import PushSpec
from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import AuditEntry, Contact
from surveys.loader import EXAMPLES_DIR
from tests.console.conftest import MovableClock
from tests.console.security.helpers import set_up_codes
from tests.staff import context_of, sign_in

CITIZEN = "+32470000099"


def _national_numbers() -> list[str]:
    """The national part (last 9 digits) of every phone number in the journey."""
    numbers = [CITIZEN]
    with open(EXAMPLES_DIR / "contacts.csv", encoding="utf-8") as handle:
        numbers += [row["address"] for row in csv.DictReader(handle)]
    found = []
    for number in numbers:
        if number.startswith("telegram:"):
            continue
        digits = re.sub(r"\D", "", number.removeprefix("whatsapp:"))
        found.append(digits[-9:])
    return found


def _patterns() -> list[re.Pattern[str]]:
    # Any spacing or punctuation people write numbers with: "470 00 00 01", "470.00.00.01".
    return [re.compile(r"[\s.()/-]*".join(number)) for number in _national_numbers()]


def _phone_in(text: str) -> str | None:
    for pattern in _patterns():
        found = pattern.search(text)
        if found:
            return found.group(0)
    return None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href and href.startswith("/") and not href.startswith("//"):
            self.links.append(href)


def _crawl(client: FlaskClient, start: list[str]) -> dict[str, str]:
    """Every page reachable by GET from ``start`` through the site's own links."""
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < 200:
        path = queue.pop(0)
        if path in seen or path.startswith(("/logout", "/console/static", "/static")):
            continue
        answer = client.get(path)
        seen[path] = _text_of(answer.get_data(), answer.mimetype or "")
        if answer.mimetype == "text/html":
            parser = _Links()
            parser.feed(seen[path])
            queue += [link for link in parser.links if link not in seen]
    return seen


def _text_of(body: bytes, mimetype: str) -> str:
    """What a person could read in a page or a download: an XLSX file's sheets are XML
    inside a zip, so they are read unzipped."""
    if "spreadsheetml" in mimetype:
        with zipfile.ZipFile(io.BytesIO(body)) as book:
            return "\n".join(book.read(name).decode() for name in book.namelist())
    return body.decode("utf-8", errors="replace")


def _journey(app: Flask, clock: MovableClock, db: sessionmaker[Session]) -> None:
    context = context_of(app)
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    set_up_codes(admin, clock.now)
    admin.post(
        "/staff/add", data={"email": "eve@city.example", "role": "editor", "password": "wrong"}
    )
    report = context.contacts.import_file(EXAMPLES_DIR / "contacts.csv")
    assert report.skipped == 0
    assert report.rows > 5
    service = context.service
    for n, text in enumerate(("PARK", "1", "1 4", "STOP", "FORGET", "YES")):
        sent = InboundMessage(Address("sms", CITIZEN), text, f"m{n}", clock.now)
        service.receive(sent)
        clock.advance(seconds=5)
    push = context.pushes.create(PushSpec(survey="central-park", at=clock.now))
    context.pushes.fire(push)
    with transaction(db, read_only=True) as s:
        first = s.scalar(select(Contact.id).where(Contact.forgotten_at.is_(None)).limit(1))
    assert first is not None
    context.contacts.erase(first)
    clock.advance(minutes=1)


@pytest.fixture
def city_app(service: Service, clock: MovableClock) -> Flask:
    """Numbers without a country code are Belgian, as the example contacts are."""
    return create_app(service, Config(contacts=ContactsConfig(default_region="BE")), clock=clock)


@pytest.fixture
def journey_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged, at every level, as a deployment with ``[logging] level = "DEBUG"``
    has it: Voxpop's own loggers and the web stack at DEBUG, the libraries that narrate
    their parameters kept at WARNING (bot.log_privacy)."""
    caplog.set_level(logging.DEBUG)
    kept = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    yield caplog
    for name, level in kept.items():
        logging.getLogger(name).setLevel(level)


def test_no_phone_number_in_the_audit_log_pages_or_logs(
    city_app: Flask,
    clock: MovableClock,
    db: sessionmaker[Session],
    journey_logs: pytest.LogCaptureFixture,
) -> None:
    app = city_app
    # The check finds numbers as people write them (else it would prove nothing).
    assert _phone_in(f"call {CITIZEN}") == "470000099"
    assert _phone_in("+32 (0)470 00.00.03") is not None
    _journey(app, clock, db)
    # The audit log, every column of every entry.
    with transaction(db, read_only=True) as s:
        entries = list(s.scalars(select(AuditEntry)))
    assert len(entries) > 5
    for entry in entries:
        text = f"{entry.actor} {entry.action} {entry.subject} {entry.details}"
        assert _phone_in(text) is None, text

    # Every page an analyst can open, by the role matrix and by following links.
    analyst = app.test_client()
    sign_in(analyst, Role.ANALYST)
    readable = [
        route.path
        for route in role_matrix(app)
        if "GET" in route.methods and Role.ANALYST.allows(route.role) and "<" not in route.path
    ]
    pages = _crawl(analyst, ["/", *readable])
    assert "/account" in pages
    for path, html in pages.items():
        assert _phone_in(html) is None, path

    # The audit log page, every page of it, as its admin reads it.
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    audit_pages = _crawl(admin, ["/audit"])
    assert any("contact" in html or "push" in html for html in audit_pages.values())
    for path, html in audit_pages.items():
        if path.startswith("/audit"):
            assert _phone_in(html) is None, path

    # Every log line, at every level, of the whole journey.
    lines = [record.getMessage() for record in journey_logs.records]
    assert lines, "the journey logged nothing: the check would prove nothing"
    for line in lines:
        assert _phone_in(line) is None, line


def test_the_audit_page_filters_and_pages(
    app: Flask, clock: MovableClock, db: sessionmaker[Session]
) -> None:
    admin = app.test_client()
    me = sign_in(admin, Role.ADMIN)
    with transaction(db) as s:
        for n in range(120):
            s.add(
                AuditEntry(
                    at=clock.now - timedelta(hours=n),
                    actor="staff:bob@city.example" if n % 2 else "citizen",
                    action="push created" if n % 3 else "contacts imported",
                    subject=None,
                    details={"n": n},
                )
            )
    page = admin.get("/audit").get_data(as_text=True)
    assert page.index("signed in") < page.index("n: 0")  # newest first
    assert "Older entries" in page
    assert "Newer entries" not in page
    second = admin.get("/audit?page=2").get_data(as_text=True)
    assert "Newer entries" in second
    bob = admin.get("/audit?who=BOB&action=push+created").get_data(as_text=True)
    rows = re.findall(r"<td class=\"govuk-table__cell\">(staff:[^<]+|citizen)</td>", bob)
    assert rows
    assert set(rows) == {"staff:bob@city.example"}
    day = (clock.now - timedelta(days=2)).date().isoformat()
    dated = admin.get(f"/audit?since={day}&until={day}").get_data(as_text=True)
    # Entries n hours before 09:30 UTC on the 7th, days in the city's time (Brussels, UTC+1,
    # as the page shows the times): the 5th holds n = 35 (23:30) to 58 (00:30).
    assert "n: 35<" in dated
    assert "n: 58<" in dated
    assert "n: 34<" not in dated
    assert "n: 59<" not in dated
    wrong = admin.get("/audit?since=yesterday")
    assert wrong.status_code == 400
    assert "Enter a date like 2026-12-31." in wrong.get_data(as_text=True)
    assert me.email in page
