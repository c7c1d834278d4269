"""What the Contacts pages' tests share: the shared app (tests/console/conftest.py) in
December, staff of each role signed in, files to import, and the check that a page shows no
whole phone number."""

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

from bot.contacts.service import BATCH_SIZE
from bot.staff.accounts import Role
from tests.console.conftest import MovableClock
from tests.staff import sign_in

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


@pytest.fixture
def clock() -> MovableClock:
    """December, after the example file's consents (the shared app runs on it)."""
    return MovableClock(NOW)


def email_of(role: str) -> str:
    return f"{role}@city.example"


def signed_in(app: Flask, role: str) -> FlaskClient:
    """A client signed in as a new member of staff with ``role`` (``role@city.example``)."""
    client = app.test_client()
    sign_in(client, Role(role), email_of(role))
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
