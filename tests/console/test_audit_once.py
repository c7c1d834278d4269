"""Each staff action is in the audit log exactly once, in words, whether it was done in the
console or with ``voxpop``: the service that does it writes the entry, the page does not
write its own. (What follows from it without a person, such as a push fired, is the
system's entry.) On both databases."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.contacts import import_worker
from bot.service import Service, utc_now
from bot.staff.accounts import Role
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import AuditEntry
from tests.bot.conftest import FIXTURES, Clock
from tests.bot.test_pushes import add_contact, reply
from tests.console.conftest import NOW
from tests.helpers import voxpop
from tests.staff import sign_in

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = ROOT / "surveys" / "examples" / "contacts.csv"
BINS = """id = "bins"
title = { en = "Bins" }
languages = ["en"]
keywords = ["BINS"]

[[questions]]
id = "enough"
type = "yesno"
text = { en = "Are there enough bins in your street?" }
"""
PUSH = {
    "survey": "central-park",
    "at": "2026-06-02 10:00",
    "timezone": "Europe/Brussels",
    "channels": ["sms"],
    "quiet_hours": "",
    "rate": "600/min",
}

#: ``(who, action)`` of the entries written since a mark: who is ``staff`` for the member of
#: staff who acted, else the actor as stored.
Entries = list[tuple[str, str]]


class Log:
    """The audit log since the last :meth:`since` call."""

    def __init__(self, db: sessionmaker[Session], staff: str) -> None:
        self._db = db
        self._staff = staff
        self._mark = self._last()

    def _last(self) -> int:
        with transaction(self._db, read_only=True) as s:
            return int(s.scalar(select(func.max(AuditEntry.id))) or 0)

    def since(self) -> Entries:
        with transaction(self._db, read_only=True) as s:
            rows = s.execute(
                select(AuditEntry.id, AuditEntry.actor, AuditEntry.action)
                .where(AuditEntry.id > self._mark)
                .order_by(AuditEntry.id)
            ).all()
        if rows:
            self._mark = rows[-1][0]
        return [("staff" if actor == self._staff else actor, action) for _, actor, action in rows]


def _contact_id(db: sessionmaker[Session], value: str) -> int:
    with transaction(db, read_only=True) as s:
        found = s.scalar(select(AddressRow.contact_id).where(AddressRow.value == value))
    assert found is not None
    return found


# --- the console ----------------------------------------------------------------------------


def test_each_staff_action_in_the_console_is_audited_once(
    app: Flask, service: Service, db: sessionmaker[Session]
) -> None:
    editor = app.test_client()
    me = sign_in(editor, Role.EDITOR)
    for n, text in enumerate(("PARK", "1")):  # someone took part, for the outcome
        service.receive(InboundMessage(Address("sms", "+32470000001"), text, f"in-{n}", NOW))
    someone = add_contact(db, "+32470000077")
    log = Log(db, me.actor)

    def posted(path: str, data: Mapping[str, object] | None = None) -> None:
        answer = editor.post(path, data=data or {})
        assert answer.status_code in (302, 303), answer.get_data(as_text=True)

    def upload_and_confirm() -> None:
        answer = editor.post(
            "/contacts/import",
            data={"file": (io.BytesIO(CONTACTS.read_bytes()), "city.csv")},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 303
        import_worker(app).join(60)
        # Uploading and checking write no contact: nothing to audit yet.
        assert log.since() == []
        posted(answer.headers["Location"] + "/confirm")
        import_worker(app).join(60)

    def download() -> None:
        answer = editor.get("/results/central-park/download.csv")
        assert answer.status_code == 200
        answer.get_data()

    def erase() -> None:
        posted(f"/contacts/{someone}/erase")

    outcome = {"text-en": "You asked for bins.", "text-nl": "", "text-fr": "", "action": "publish"}
    steps: list[tuple[str, Callable[[], None], Entries]] = [
        (
            "load a consultation",
            lambda: posted("/consultations/new", {"source": BINS, "action": "load"}),
            [("staff", "consultation loaded")],
        ),
        (
            "close a consultation",
            lambda: posted("/consultations/street-lighting/close"),
            [("staff", "consultation closed")],
        ),
        (
            "import contacts",
            upload_and_confirm,
            [("staff", "contacts imported"), ("system", "contacts import finished")],
        ),
        ("erase a contact", erase, [("staff", "contact erased")]),
        (
            "schedule a push",
            lambda: posted("/pushes/new", {**PUSH, "action": "schedule"}),
            [("staff", "push created")],
        ),
        (
            "send it now",
            lambda: posted("/pushes/1/send-now"),
            [("staff", "push sent now"), ("system", "push fired")],
        ),
        (
            "cancel it",
            lambda: posted("/pushes/1/cancel"),
            [("staff", "push cancelled")],
        ),
        ("download the results", download, [("staff", "export downloaded")]),
        (
            "publish an outcome",
            lambda: posted("/consultations/central-park/outcome", outcome),
            [("staff", "outcome published"), ("system", "push fired")],
        ),
    ]
    for name, act, expected in steps:
        act()
        assert log.since() == expected, name


# --- the command line -----------------------------------------------------------------------


def test_each_staff_action_on_the_command_line_is_audited_once(
    db_url: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    log = Log(db, "staff")

    def run(*args: str) -> None:
        result = voxpop(db_url, *args)
        assert result.exit_code == 0, result.output

    def took_part() -> None:
        clock = Clock(utc_now())
        service = Service(db, clock=clock)
        reply(service, clock, "+32470000001", "OTHER")
        reply(service, clock, "+32470000001", "yes")
        log.since()  # the citizen's own entries, if any, are not staff's

    outcome = tmp_path / "outcome.toml"
    outcome.write_text('text.en = "You said yes: we do it."\n')
    steps: list[tuple[str, Callable[[], None], Entries]] = [
        (
            "survey load",
            lambda: run("survey", "load", str(FIXTURES / "other.toml")),
            [("staff", "consultation loaded")],
        ),
        (
            "contacts import",
            lambda: run("contacts", "import", str(CONTACTS)),
            [("staff", "contacts imported")],
        ),
        (
            "contacts erase",
            lambda: run("contacts", "erase", str(_contact_id(db, "+32470000002")), "--yes"),
            [("staff", "contact erased")],
        ),
        (
            "push",
            lambda: run("push", "other", "--at", "2030-01-15 10:00"),
            [("staff", "push created")],
        ),
        ("push cancel", lambda: run("push", "cancel", "1"), [("staff", "push cancelled")]),
        (
            "results export",
            lambda: run("results", "export", "other"),
            [("staff", "export downloaded")],
        ),
        ("someone takes part", took_part, []),
        (
            "outcome publish",
            lambda: run("outcome", "publish", "other", "--file", str(outcome), "--quiet-hours", ""),
            [("staff", "outcome published"), ("system", "push fired")],
        ),
        (
            "survey close",
            lambda: run("survey", "close", "other"),
            [("staff", "consultation closed")],
        ),
    ]
    for name, act, expected in steps:
        act()
        assert log.since() == expected, name
