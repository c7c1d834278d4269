"""Contacts for the console, on both engines: a staged import (checked without writing,
problems by line, imported in chunks with progress, resumed after a worker dies, dropped by a
FORGET), searching with filters and pages, a contact's page data, and erasing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.contacts.service import (
    LEASE,
    ContactFilter,
    Contacts,
    ImportCounts,
    parse_where,
)
from bot.contacts.worker import ImportWorker
from bot.service import Service, read_survey_sources
from storage.db import transaction
from storage.models import AuditEntry, Contact, ContactImport
from tests.bot.conftest import Clock
from tests.bot.test_contacts import EXAMPLE, NOW, PARK, contact_id, send
from tests.bot.test_service import cells_containing

ANA = "staff:ana@city.example"
BEN = "staff:ben@city.example"
BAD_LINE = "+32 470 00 00 09,xx,,north,35-49,,,\n"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def service(db: sessionmaker[Session], clock: Clock) -> Service:
    return Service(db, clock=clock)


@pytest.fixture
def contacts(db: sessionmaker[Session], service: Service, clock: Clock) -> Contacts:
    return Contacts(
        db, service, clock=clock, default_region="BE", default_timezone="Europe/Brussels"
    )


def example_with_bad_line() -> bytes:
    """The example file with one more row, on line 14, whose language is not one we speak."""
    return EXAMPLE.read_bytes() + BAD_LINE.encode()


def contacts_in(db: sessionmaker[Session]) -> int:
    with transaction(db, read_only=True) as s:
        return s.scalar(select(func.count()).select_from(Contact)) or 0


def stored_file(db: sessionmaker[Session], job_id: int) -> bytes | None:
    with transaction(db, read_only=True) as s:
        row = s.get(ContactImport, job_id)
        assert row is not None
        return row.data


IMPORT_ACTIONS = ("contacts imported", "contacts import finished")


def imports_audited(db: sessionmaker[Session]) -> list[AuditEntry]:
    with transaction(db, read_only=True) as s:
        stmt = select(AuditEntry).where(AuditEntry.action.in_(IMPORT_ACTIONS))
        return list(s.scalars(stmt.order_by(AuditEntry.id)))


# --- a staged import ------------------------------------------------------------------------


def test_the_check_names_problems_by_line_and_writes_nothing(
    contacts: Contacts, db: sessionmaker[Session]
) -> None:
    job_id = contacts.stage(example_with_bad_line(), actor=ANA)
    assert contacts.job(job_id).status == "checking"
    job = contacts.process(job_id)
    assert job is not None
    assert job.status == "checked"
    assert [(p.line, p.message) for p in job.problems] == [
        (14, "language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)")
    ]
    assert job.checked == ImportCounts(rows=13, created=12, skipped=1)
    assert job.percent == 100
    # A dry run: no contact, no audit entry; the file waits for staff to confirm.
    assert contacts_in(db) == 0
    assert imports_audited(db) == []
    assert stored_file(db, job_id) == example_with_bad_line()


def test_confirmed_it_imports_and_audits_who(contacts: Contacts, db: sessionmaker[Session]) -> None:
    job_id = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    contacts.process(job_id)
    # A colleague confirms what Ana uploaded: the log names who decided to import it.
    assert contacts.confirm(job_id, actor=BEN).status == "importing"
    (confirmed,) = imports_audited(db)
    assert (confirmed.actor, confirmed.action) == (BEN, "contacts imported")
    assert confirmed.details["rows"] == 12
    assert confirmed.details["import"] == job_id
    job = contacts.process(job_id)
    assert job is not None
    assert job.status == "done"
    assert job.imported == ImportCounts(rows=12, created=12)
    assert contacts_in(db) == 12
    # The file is not kept once imported.
    assert stored_file(db, job_id) is None
    confirmed, finished = imports_audited(db)
    assert (finished.actor, finished.action, finished.subject) == (
        "system",
        "contacts import finished",
        None,
    )
    assert finished.details["created"] == 12
    assert finished.details["import"] == job_id
    with pytest.raises(ValueError, match="it is done"):
        contacts.confirm(job_id, actor=BEN)
    assert len(imports_audited(db)) == 2  # a refused confirmation is no action
    # Importing the same file again changes nothing.
    again = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    checked = contacts.process(again)
    assert checked is not None
    assert checked.checked == ImportCounts(rows=12, unchanged=12)


def test_a_file_that_cannot_be_read_is_refused_whole(
    contacts: Contacts, db: sessionmaker[Session]
) -> None:
    job_id = contacts.stage(b"phone,language\n+32470000001,nl\n", actor=ANA)
    job = contacts.process(job_id)
    assert job is not None
    assert job.status == "refused"
    assert job.error is not None
    assert "address" in job.error
    assert job.error.endswith("nothing was imported")
    assert job.error.startswith("line 1: no 'address' column")
    assert stored_file(db, job_id) is None
    with pytest.raises(ValueError, match="it is refused"):
        contacts.confirm(job_id, actor=ANA)


def test_a_discarded_upload_is_dropped(contacts: Contacts, db: sessionmaker[Session]) -> None:
    job_id = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    contacts.process(job_id)
    assert contacts.discard(job_id).status == "discarded"
    assert stored_file(db, job_id) is None
    with pytest.raises(ValueError, match="it is discarded"):
        contacts.confirm(job_id, actor=ANA)
    assert contacts_in(db) == 0


def test_chunks_record_progress_and_a_dead_worker_is_resumed(
    db: sessionmaker[Session], service: Service, clock: Clock
) -> None:
    class Died(BaseException):
        """A worker process killed mid-file (not an error the import could record)."""

    seen: list[int] = []
    ticks = [0]

    def dying_clock() -> object:
        # The clock is read once per chunk: the worker dies at its fourth chunk.
        ticks[0] += 1
        if ticks[0] == 9:
            raise Died
        return clock()

    small = Contacts(db, service, clock=clock, default_region="BE", batch_size=3)
    job_id = small.stage(EXAMPLE.read_bytes(), actor=ANA)
    small.process(job_id)
    small.confirm(job_id, actor=ANA)
    dying = Contacts(db, service, clock=dying_clock, default_region="BE", batch_size=3)  # type: ignore[arg-type]
    with pytest.raises(Died):
        dying.process(job_id)
    job = small.job(job_id)
    seen.append(job.line)
    # Some chunks are in, the rest is not; the worker's lease still holds it.
    assert job.status == "importing"
    assert 0 < job.line < job.lines
    assert 0 < contacts_in(db) < 12
    assert small.stalled() == []
    assert small.process(job_id) is None
    clock.advance(LEASE + timedelta(seconds=1))
    assert small.stalled() == [job_id]
    done = small.process(job_id)
    assert done is not None
    assert done.status == "done"
    # Every row once: the chunks the first worker committed were not written again.
    assert done.imported == ImportCounts(rows=12, created=12)
    assert contacts_in(db) == 12


def test_a_worker_thread_takes_it_to_the_end(contacts: Contacts, db: sessionmaker[Session]) -> None:
    worker = ImportWorker(contacts)
    job_id = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    worker.resume()
    worker.join(timeout=60)
    assert contacts.job(job_id).status == "checked"
    contacts.confirm(job_id, actor=ANA)
    worker.start(job_id)
    worker.join(timeout=60)
    assert contacts.job(job_id).status == "done"
    assert contacts_in(db) == 12


def test_forget_drops_a_waiting_upload(
    contacts: Contacts, service: Service, db: sessionmaker[Session], engine: Engine
) -> None:
    contacts.import_file(EXAMPLE)
    job_id = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    contacts.process(job_id)
    contacts.erase(contact_id(db, "sms", "+32470000001"))
    job = contacts.job(job_id)
    assert job.status == "discarded"
    assert job.error is not None
    assert "upload it again" in job.error
    assert stored_file(db, job_id) is None
    # Not in the upload, nor anywhere else.
    assert cells_containing(engine, "470 00 00 01") == []
    assert cells_containing(engine, "32470000001") == []


def test_unconfirmed_uploads_expire(
    contacts: Contacts, db: sessionmaker[Session], clock: Clock
) -> None:
    old = contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    contacts.process(old)
    clock.advance(timedelta(days=2))
    contacts.stage(EXAMPLE.read_bytes(), actor=ANA)
    assert contacts.job(old).status == "discarded"
    assert stored_file(db, old) is None


# --- search -----------------------------------------------------------------------------------


def ids(contacts: Contacts, db: sessionmaker[Session], **filters: object) -> list[str]:
    """The first address of each contact found, as ``channel:value``."""
    page = contacts.search(ContactFilter(**filters), per_page=100)  # type: ignore[arg-type]
    assert page.total == len(page.contacts)
    return [f"{c.addresses[0].channel}:{c.addresses[0].value}" for c in page.contacts]


def test_search_by_every_filter(
    contacts: Contacts, service: Service, db: sessionmaker[Session]
) -> None:
    service.load_surveys(read_survey_sources([PARK]))
    contacts.import_file(EXAMPLE)
    send(service, "sms", "+32470000003", "STOP")
    for text in ("PARK", "4", "SKIP", "yes", "SKIP", "SKIP", "no"):
        send(service, "sms", "+32470000001", text)
    assert ids(contacts, db, channel="telegram") == [
        "telegram:4242",
        "telegram:4243",
        "telegram:4244",
    ]
    assert ids(contacts, db, language="fr", where={"district": "east"}) == [
        "whatsapp:+32470000002",
        "sms:+32470000007",
    ]
    assert ids(contacts, db, tags=("volunteer",), channel="sms") == [
        "sms:+32470000001",
        "sms:+32470000004",
    ]
    assert ids(contacts, db, consent="opted_out") == ["sms:+32470000003"]
    assert ids(contacts, db, consent="declined") == ["sms:+32470000001"]
    assert ids(contacts, db, consent="none") == ["sms:+32470000001", "sms:+32470000007"]
    assert len(ids(contacts, db, consent="given")) == 10
    assert "sms:+32470000003" not in ids(contacts, db, consent="reachable")
    assert len(ids(contacts, db, consent="reachable")) == 9
    assert len(ids(contacts, db, consent="opted_in")) == 11
    assert ids(contacts, db, channel="whatsapp", consent="opted_out") == []
    with pytest.raises(ValueError, match="unknown consent filter"):
        contacts.search(ContactFilter(consent="maybe"))


def test_search_pages(contacts: Contacts) -> None:
    contacts.import_file(EXAMPLE)
    first = contacts.search(ContactFilter(), page=1, per_page=5)
    third = contacts.search(ContactFilter(), page=3, per_page=5)
    assert (first.total, first.pages, len(first.contacts)) == (12, 3, 5)
    assert [c.id for c in third.contacts] == [11, 12]
    assert contacts.search(ContactFilter(), page=4, per_page=5).contacts == ()


def test_attribute_filters_as_staff_type_them() -> None:
    assert parse_where(["District = north"]) == {"district": "north"}
    with pytest.raises(ValueError, match="ATTRIBUTE=VALUE"):
        parse_where(["north"])


# --- a contact's page -------------------------------------------------------------------------


def test_a_contacts_page_data(
    contacts: Contacts, service: Service, db: sessionmaker[Session], clock: Clock
) -> None:
    service.load_surveys(read_survey_sources([PARK]))
    contacts.import_file(EXAMPLE)
    clock.advance(timedelta(minutes=1))
    send(service, "sms", "+32470000001", "STOP")
    clock.advance(timedelta(minutes=1))
    send(service, "sms", "+32470000001", "START")
    first = contacts.details(contact_id(db, "sms", "+32470000001"))
    assert [(e.what, e.channel, e.source) for e in first.consent_history] == [
        ("consent recorded", "sms", "paper form, town hall 2026-10"),
        ("opted out (STOP)", None, None),
        ("opted in again (START)", None, None),
    ]
    for text in ("PARK", "4", "call me on +32 470 12 34 56", "yes", "SKIP", "SKIP", "no"):
        clock.advance(timedelta(minutes=1))
        send(service, "sms", "+32470000001", text)
    details = contacts.details(contact_id(db, "sms", "+32470000001"))
    (sms,) = details.contact.addresses
    assert sms.masked == "+32 470 •• •• 01"
    # The address holds the newest consent record: the survey's "no" replaced the file's.
    assert [(e.what, e.source) for e in details.consent_history] == [
        ("opted out (STOP)", None),
        ("opted in again (START)", None),
        ("said no to future consultations", "survey central-park"),
    ]
    (taken,) = details.consultations
    shown = {a.question_id: a.answer for a in taken.answers}
    assert shown["visits"] == "Never"
    # What they typed is shown, with a number in it masked like an address.
    assert shown["why_not"] == "call me on +•• ••• •• •• 56"
    assert shown["future"] == "no"
    assert all(a.question for a in taken.answers)
