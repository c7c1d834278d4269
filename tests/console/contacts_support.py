"""What the Contacts pages' tests share: staff of each role signed in, files to import, and
the check that a page shows no whole phone number."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.contacts.service import BATCH_SIZE
from bot.service import Service, read_survey_sources
from bot.staff.accounts import Role
from bot.web.app import create_app
from tests.csrf_client import CsrfClient
from tests.staff import PASSWORD, context_of

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EXAMPLE = ROOT / "surveys" / "examples" / "contacts.csv"
#: Line 14 of :func:`with_bad_line`: a language Voxpop does not speak.
BAD_LINE = "+32 470 00 00 09,xx,,north,35-49,,,\n"
#: Seven digits or more in a row (spaces and dots allowed between them): a number shown whole.
_WHOLE_NUMBER = re.compile(r"\d(?:[ .]?\d){6,}")


def with_bad_line() -> bytes:
    return EXAMPLE.read_bytes() + BAD_LINE.encode()


def fixed() -> bytes:
    return EXAMPLE.read_bytes() + BAD_LINE.replace(",xx,", ",nl,").encode()


def large(rows: int) -> bytes:
    """The fixed example and ``rows`` more people in district north, on BE mobile numbers."""
    extra = "".join(f"+32 471 {i:06d},nl,,north,35-49,website,2026-10-01,\n" for i in range(rows))
    return fixed() + extra.encode()


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def app(db: sessionmaker[Session]) -> Flask:
    """The app as ``make run`` has it, with the example consultations, on a fixed clock."""
    service = Service(db, clock=fixed_clock, pseudonym_key="test-key")
    service.load_surveys(read_survey_sources([str(ROOT / "surveys" / "examples")]))
    return create_app(service, Config(), clock=fixed_clock)


@pytest.fixture
def service(app: Flask) -> Service:
    return context_of(app).service


def email_of(role: str) -> str:
    return f"{role}@city.example"


def add_staff(app: Flask, role: str) -> str:
    email = email_of(role)
    context_of(app).staff.add(email, PASSWORD, Role(role), actor="test")
    return email


def signed_in(app: Flask, role: str) -> FlaskClient:
    """A client signed in as a new member of staff with ``role``."""
    email = add_staff(app, role)
    client = CsrfClient(app, app.response_class, use_cookies=True)
    answer = client.post("/login", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


def whole_numbers(html: str, addresses: Iterable[str]) -> list[str]:
    """Phone numbers or chat ids shown whole in ``html``: any of ``addresses`` (E.164 or a
    chat id) as stored, without its +, or as people write it; or any long run of digits in
    the text a reader sees."""
    text = re.sub(r"<[^>]+>", " ", html)
    found = [run for run in _WHOLE_NUMBER.findall(text)]
    for value in addresses:
        shown = {value, value.lstrip("+")}
        if value.startswith("+"):
            number = phonenumbers.parse(value, None)
            shown.add(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            )
            shown.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
        found.extend(s for s in shown if len(s) > 4 and s in html)
    return found


class Gate:
    """An import worker's progress callback that holds it after its first chunk, so a test
    sees the progress bar part way, until :meth:`release`."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.reached = threading.Event()
        self._open = threading.Event()

    def __call__(self, line: int, total: int) -> None:
        if self.armed.is_set() and line > BATCH_SIZE + 2:
            self.reached.set()
            self._open.wait(60)

    def release(self) -> None:
        self._open.set()
