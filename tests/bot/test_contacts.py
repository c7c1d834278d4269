"""Contacts on both engines: importing a list (upsert, all or nothing, STOP wins), looking
people up, erasing them as FORGET does, and consent from a survey's consent question."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.contacts.csv_file import ContactRow, ContactsFileError
from bot.contacts.service import ContactFilter, Contacts, ImportReport
from bot.service import Service, read_survey_sources
from messages import Address, InboundMessage
from storage import contacts as store
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import AuditEntry, Contact, SessionRow
from tests.bot.conftest import Clock
from tests.bot.test_service import cells_containing

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "surveys" / "examples" / "contacts.csv"
PARK = str(ROOT / "surveys" / "examples" / "central-park.toml")
_ids = itertools.count(1)


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


def write(tmp_path: Path, text: str, name: str = "city.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def send(service: Service, channel: str, value: str, text: str) -> list[str]:
    msg = InboundMessage(Address(channel, value), text, f"in-{next(_ids)}", NOW)
    return [out.text for out in service.receive(msg).outgoing]


def address(db: sessionmaker[Session], channel: str, value: str) -> AddressRow:
    with transaction(db, read_only=True) as s:
        row = s.scalars(
            select(AddressRow).where(AddressRow.channel == channel, AddressRow.value == value)
        ).one()
    return row


def contact_of(db: sessionmaker[Session], channel: str, value: str) -> Contact:
    with transaction(db, read_only=True) as s:
        found = s.get(Contact, address(db, channel, value).contact_id)
    assert found is not None
    return found


def count(db: sessionmaker[Session], model: type[Contact] | type[AddressRow]) -> int:
    with transaction(db, read_only=True) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def audit_rows(db: sessionmaker[Session]) -> list[AuditEntry]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def summary(report: ImportReport) -> tuple[int, int, int, int]:
    c = report.counts
    return c.created, c.updated, c.unchanged, report.skipped


# --- importing --------------------------------------------------------------------------------


def test_the_simulators_test_phones_are_not_listed_as_contacts(
    contacts: Contacts, service: Service, db: sessionmaker[Session], tmp_path: Path
) -> None:
    service.load_surveys(read_survey_sources([PARK]))
    contacts.import_file(write(tmp_path, "channel,address\nsms,+32470000001\n"))
    # Someone tries a consultation in the browser simulator with a number of their own.
    msg = InboundMessage(Address("sms", "+32470000002"), "PARK", "sim-1", NOW)
    assert service.receive(msg, simulated=True).outgoing
    found = contacts.search(ContactFilter())
    assert found.total == 1
    assert [view.id for view in found.contacts] == [contact_of(db, "sms", "+32470000001").id]


def test_the_example_file_imports_whole(contacts: Contacts, db: sessionmaker[Session]) -> None:
    report = contacts.import_file(EXAMPLE)
    assert report.problems == ()
    assert summary(report) == (12, 0, 0, 0)
    assert (count(db, Contact), count(db, AddressRow)) == (12, 12)
    with transaction(db, read_only=True) as s:
        channels = s.execute(
            select(AddressRow.channel, func.count()).group_by(AddressRow.channel)
        ).all()
        languages = set(s.scalars(select(Contact.language)))
    assert dict(channels) == {"sms": 6, "whatsapp": 3, "telegram": 3}
    assert languages == {"en", "nl", "fr"}
    first = contact_of(db, "sms", "+32470000001")
    assert (first.language, first.timezone, first.tags) == ("nl", "Europe/Brussels", ["volunteer"])
    assert first.attributes == {"district": "north", "age_band": "35-49"}
    sms = address(db, "sms", "+32470000001")
    assert sms.consent_source == "paper form, town hall 2026-10"
    assert sms.consent_at == datetime(2026, 10, 11, 22, 0, tzinfo=UTC)  # midnight in Brussels
    # The one row without consent columns is imported without consent: no push reaches it.
    assert address(db, "sms", "+32470000007").consent_at is None


def test_importing_the_same_file_again_changes_nothing(
    contacts: Contacts, db: sessionmaker[Session]
) -> None:
    contacts.import_file(EXAMPLE)
    again = contacts.import_file(EXAMPLE)
    assert summary(again) == (0, 0, 12, 0)
    assert count(db, Contact) == 12


def test_a_known_address_updates_its_contact(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path, clock: Clock
) -> None:
    contacts.import_file(
        write(
            tmp_path,
            "address,language,district,age_band,tags\n+32470000001,nl,north,35-49,volunteer\n",
        )
    )
    clock.now = NOW + timedelta(days=1)
    report = contacts.import_file(
        write(
            tmp_path,
            # Another notation of the same number; language, district and tags change;
            # age_band is empty here, which never erases it.
            "address,language,district,age_band,tags,consent_source\n"
            "0470 00 00 01,fr,east,,panel,website\n",
        )
    )
    assert summary(report) == (0, 1, 0, 0)
    contact = contact_of(db, "sms", "+32470000001")
    assert contact.language == "fr"
    assert contact.attributes == {"district": "east", "age_band": "35-49"}
    assert contact.tags == ["volunteer", "panel"]
    assert contact.updated_at == NOW + timedelta(days=1)
    sms = address(db, "sms", "+32470000001")
    # A source without a date: consent as of the import.
    assert (sms.consent_source, sms.consent_at) == ("website", NOW + timedelta(days=1))


def test_a_citizen_who_wrote_first_is_updated_not_duplicated(
    contacts: Contacts, service: Service, db: sessionmaker[Session], tmp_path: Path
) -> None:
    send(service, "sms", "+32470000001", "hello")
    report = contacts.import_file(write(tmp_path, "address,district\n+32 470 00 00 01,north\n"))
    assert summary(report) == (0, 1, 0, 0)
    assert count(db, Contact) == 1
    assert contact_of(db, "sms", "+32470000001").attributes == {"district": "north"}


def test_stop_wins_over_a_paper_form(
    contacts: Contacts, service: Service, db: sessionmaker[Session], tmp_path: Path
) -> None:
    send(service, "sms", "+32470000001", "STOP")
    stopped = address(db, "sms", "+32470000001").opted_out_at
    assert stopped is not None
    report = contacts.import_file(
        write(
            tmp_path,
            "address,consent_source,consent_at\n+32470000001,paper form,2026-11-01\n"
            "+32470000002,paper form,2026-11-01\n",
        )
    )
    assert (report.counts.opted_out, report.counts.created) == (1, 1)
    sms = address(db, "sms", "+32470000001")
    assert sms.opted_out_at == stopped
    assert sms.consent_source == "paper form"  # recorded, but the opt-out still holds
    with transaction(db, read_only=True) as s:
        reachable = set(s.scalars(select(AddressRow.value).where(store.pushable())))
    assert reachable == {"+32470000002"}


def test_a_decline_in_a_survey_wins_over_a_list(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    contacts.import_file(write(tmp_path, "address\n+32470000001\n"))
    with transaction(db) as s:
        store.record_consent(
            s, "sms", "+32470000001", given=False, source="declined in survey park", now=NOW
        )
    report = contacts.import_file(
        write(tmp_path, "address,consent_source,consent_at\n+32470000001,paper form,2026-11-01\n")
    )
    assert (report.counts.declined, report.counts.unchanged) == (1, 1)
    sms = address(db, "sms", "+32470000001")
    assert (sms.consent_at, sms.consent_source) == (None, "declined in survey park")


def test_a_newer_consent_is_kept(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    contacts.import_file(write(tmp_path, "address\n+32470000001\n"))
    with transaction(db) as s:
        store.record_consent(s, "sms", "+32470000001", given=True, source="survey park", now=NOW)
    older = "address,consent_source,consent_at\n+32470000001,paper form,2026-10-01\n"
    assert summary(contacts.import_file(write(tmp_path, older))) == (0, 0, 1, 0)
    assert address(db, "sms", "+32470000001").consent_source == "survey park"


def test_invalid_rows_are_skipped_and_the_rest_imported(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "address,language\n+32470000001,nl\nhello,xx\n+32470000002,fr\n+32470000001,en\n",
    )
    report = contacts.import_file(path)
    assert [str(p) for p in report.problems] == [
        f"{path}:3: address: not a phone number",
        f"{path}:3: language 'xx' is not one Voxpop speaks (en, nl, fr, de, es)",
        f"{path}:5: address repeats line 2 (one row per address)",
    ]
    assert (report.rows, *summary(report)) == (4, 2, 0, 0, 2)
    assert count(db, Contact) == 2


def test_many_rows_in_batches(
    db: sessionmaker[Session], service: Service, clock: Clock, tmp_path: Path
) -> None:
    small = Contacts(db, service, clock=clock, batch_size=100)
    numbers = [f"+3247{n:07d}" for n in range(1, 251)]
    first = "address,district\n" + "".join(f"{n},north\n" for n in numbers[:150])
    small.import_file(write(tmp_path, first))
    second = "address,district\n" + "".join(f"{n},east\n" for n in numbers)
    report = small.import_file(write(tmp_path, second))
    assert summary(report) == (100, 150, 0, 0)
    assert count(db, Contact) == 250
    with transaction(db, read_only=True) as s:
        _found, total = store.list_contacts(s, where={"district": "east"})
    assert total == 250


def test_a_crash_halfway_imports_nothing(
    db: sessionmaker[Session], service: Service, clock: Clock, tmp_path: Path
) -> None:
    small = Contacts(db, service, clock=clock, batch_size=100)
    path = write(tmp_path, "address\n" + "".join(f"+3247{n:07d}\n" for n in range(1, 1001)))

    def crash(line: int, total: int) -> None:
        assert total == 1001
        if line == 750:  # several batches are written by now
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        small.import_file(path, progress=crash)
    assert (count(db, Contact), count(db, AddressRow)) == (0, 0)
    assert audit_rows(db) == []


def test_a_fatal_problem_late_in_the_file_imports_nothing(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "city.csv"
    good = "".join(f"+3247{n:07d},x\n" for n in range(1, 2001)).encode()
    # 0x81: neither UTF-8 nor Windows-1252
    path.write_bytes(b"address,name\n" + good + b"+32470009999,Ren\x81\n")
    with pytest.raises(ContactsFileError, match=r"city\.csv:2002: this is not UTF-8 text"):
        contacts.import_file(path)
    assert count(db, Contact) == 0


def test_a_dry_run_stores_nothing(contacts: Contacts, db: sessionmaker[Session]) -> None:
    report = contacts.import_file(EXAMPLE, dry_run=True)
    assert summary(report) == (12, 0, 0, 0)
    assert count(db, Contact) == 0
    assert audit_rows(db) == []


def test_the_audit_log_has_counts_and_no_personal_data(
    contacts: Contacts, db: sessionmaker[Session], engine: Engine
) -> None:
    report = contacts.import_file(EXAMPLE)
    (entry,) = audit_rows(db)
    assert (entry.actor, entry.action, entry.subject) == ("staff", "contacts imported", None)
    assert entry.details == {
        "rows": 12,
        "created": 12,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "opted_out": 0,
        "declined": 0,
        "sha256": report.digest,
    }
    assert not any(t == "audit_log" for t, _, _ in cells_containing(engine, "470"))


def test_progress_goes_up_to_the_last_line(contacts: Contacts) -> None:
    seen: list[tuple[int, int]] = []
    contacts.import_file(EXAMPLE, progress=lambda line, total: seen.append((line, total)))
    assert seen[-1] == (13, 13)
    assert [line for line, _ in seen] == sorted(line for line, _ in seen)


def test_two_addresses_of_one_contact_merge(
    db: sessionmaker[Session], tmp_path: Path, contacts: Contacts
) -> None:
    contacts.import_file(write(tmp_path, "address\n+32470000001\n"))
    with transaction(db) as s:
        contact_id = s.scalars(select(Contact.id)).one()
        s.add(AddressRow(contact_id=contact_id, channel="telegram", value="4242", created_at=NOW))
    report = contacts.import_file(
        write(tmp_path, "address,district,tags\n+32470000001,north,a\ntelegram:4242,,b\n")
    )
    assert summary(report) == (0, 2, 0, 0)
    contact = contact_of(db, "telegram", "4242")
    assert (contact.attributes, contact.tags) == ({"district": "north"}, ["a", "b"])


def test_an_address_created_meanwhile_turns_an_insert_into_an_update(
    db: sessionmaker[Session], service: Service
) -> None:
    # What a concurrent first message does between the look-up and the insert (PostgreSQL).
    send(service, "sms", "+32470000001", "hello")
    row = ContactRow(line=2, channel="sms", value="+32470000001", attributes={"d": "n"})
    with transaction(db) as s:
        counts = store.UpsertCounts()
        lost = store._insert(s, [row], NOW, counts)
        assert lost == [row]
        assert counts.created == 1  # upsert_contacts takes it back and updates instead
    assert count(db, Contact) == 1


# --- looking people up ------------------------------------------------------------------------


def test_list_filters(contacts: Contacts) -> None:
    contacts.import_file(EXAMPLE)
    found, total = contacts.list()
    assert total == 12
    assert len(found) == 12
    found, total = contacts.list(channel="telegram")
    assert [a.channel for c in found for a in c.addresses] == ["telegram"] * 3
    found, total = contacts.list(where={"district": "north", "age_band": "65+"})
    assert [c.addresses[0].value for c in found] == ["+32470000003", "+32470000006"]
    found, total = contacts.list(tags=["volunteer"], language="nl")
    assert [c.addresses[0].value for c in found] == ["+32470000001", "+32470000006"]
    found, total = contacts.list(tags=["panel-2026"], limit=2)
    assert (len(found), total) == (2, 3)
    assert contacts.list(where={"district": "west"}) == ([], 0)


def test_list_leaves_out_erased_contacts(contacts: Contacts) -> None:
    contacts.import_file(EXAMPLE)
    contacts.erase(contacts.find("+32470000001"))
    assert contacts.list()[1] == 11


def test_find(contacts: Contacts, db: sessionmaker[Session], tmp_path: Path) -> None:
    contacts.import_file(
        write(tmp_path, "address\n+32470000001\nwhatsapp:+32470000001\ntelegram:4242\n")
    )
    sms_id = contact_id(db, "sms", "+32470000001")
    assert contacts.find(str(sms_id)) == sms_id
    assert contacts.find("sms:0470 00 00 01") == sms_id
    assert contacts.find("telegram:4242") == contact_id(db, "telegram", "4242")
    with pytest.raises(LookupError, match=r"several contacts have this number \(sms, whatsapp\)"):
        contacts.find("+32470000001")
    with pytest.raises(LookupError, match="no contact has this address"):
        contacts.find("+32470000099")
    with pytest.raises(LookupError, match="no contact 999"):
        contacts.find("999")
    with pytest.raises(LookupError, match="address: not a phone number"):
        contacts.find("hello")


def contact_id(db: sessionmaker[Session], channel: str, value: str) -> int:
    return address(db, channel, value).contact_id


def test_details_hold_everything(
    contacts: Contacts, service: Service, db: sessionmaker[Session]
) -> None:
    service.load_surveys(read_survey_sources([PARK]))
    contacts.import_file(EXAMPLE)
    for text in ("PARK", "4", "SKIP", "yes", "SKIP", "SKIP", "no"):
        send(service, "sms", "+32470000001", text)
    details = contacts.details(contact_id(db, "sms", "+32470000001"))
    assert details.contact.attributes == {"district": "north", "age_band": "35-49"}
    ((sms),) = details.contact.addresses
    assert sms.last_inbound_at == NOW
    (taken,) = details.consultations
    assert (taken.survey, taken.version, taken.status, taken.channel) == (
        "central-park",
        1,
        "completed",
        "sms",
    )
    assert details.answers == 6
    # The consent question said no: that is what the address now records.
    assert sms.declined
    assert sms.consent_source == "declined in survey central-park"


# --- erasing ----------------------------------------------------------------------------------


def test_erase_is_what_forget_does(
    contacts: Contacts, service: Service, db: sessionmaker[Session], engine: Engine
) -> None:
    service.load_surveys(read_survey_sources([PARK]))
    contacts.import_file(EXAMPLE)
    for text in ("PARK", "1", "1", "4", "yes"):
        send(service, "sms", "+32470000001", text)
    erased = contact_id(db, "sms", "+32470000001")
    assert cells_containing(engine, "32470000001")
    contacts.erase(erased)
    # No number left anywhere, in any column of any table (staff send no goodbye).
    assert cells_containing(engine, "32470000001") == []
    with transaction(db, read_only=True) as s:
        contact = s.get(Contact, erased)
        sessions = list(s.scalars(select(SessionRow)))
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact erased")).one()
    assert contact is not None
    assert (contact.forgotten_at, contact.language, contact.attributes) == (NOW, None, {})
    assert [(r.contact_id, r.status, r.respondent[:5]) for r in sessions] == [
        (None, "abandoned", "anon-")
    ]
    assert (entry.actor, entry.subject) == ("staff", f"contact:{erased}")
    with pytest.raises(LookupError, match=f"contact {erased} was erased on 2026-11-27"):
        contacts.erase(erased)
    # The other contacts are untouched.
    assert contacts.list()[1] == 11


# --- consent from a survey --------------------------------------------------------------------

POLL = """\
id = "poll"
title = { en = "Poll" }
languages = ["en"]
keywords = ["POLL"]

[[questions]]
id = "ok"
type = "yesno"
text = { en = "OK?" }

[[questions]]
id = "again"
type = "yesno"
consent = true
optional = true
text = { en = "May we ask you again?" }
"""


@pytest.fixture
def poll(service: Service) -> Service:
    service.load_surveys([("poll.toml", POLL)])
    return service


@pytest.mark.parametrize(
    ("answer", "consent_at", "source", "action"),
    [
        ("yes", NOW, "survey poll", "consent given"),
        ("no", None, "declined in survey poll", "consent withdrawn"),
    ],
)
def test_the_consent_question_records_consent(
    poll: Service,
    db: sessionmaker[Session],
    answer: str,
    consent_at: datetime | None,
    source: str,
    action: str,
) -> None:
    for text in ("POLL", "yes", answer):
        send(poll, "whatsapp", "+32470000001", text)
    row = address(db, "whatsapp", "+32470000001")
    assert (row.consent_at, row.consent_source) == (consent_at, source)
    entries = [e for e in audit_rows(db) if e.action.startswith("consent")]
    assert [(e.actor, e.action, e.details) for e in entries] == [
        ("citizen", action, {"survey": "poll", "channel": "whatsapp"})
    ]
    assert entries[0].subject is not None
    assert entries[0].subject.startswith("r-")


def test_a_later_no_withdraws_a_paper_consent(
    poll: Service, contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    contacts.import_file(
        write(tmp_path, "address,consent_source,consent_at\n+32470000001,paper,2026-10-01\n")
    )
    for text in ("POLL", "yes", "no"):
        send(poll, "sms", "+32470000001", text)
    row = address(db, "sms", "+32470000001")
    assert (row.consent_at, row.consent_source) == (None, "declined in survey poll")
    assert row.opted_out_at is None  # declining future consultations is not STOP


def test_skipping_the_consent_question_records_nothing(
    poll: Service, db: sessionmaker[Session]
) -> None:
    for text in ("POLL", "yes", "SKIP"):
        send(poll, "sms", "+32470000001", text)
    row = address(db, "sms", "+32470000001")
    assert (row.consent_at, row.consent_source) == (None, None)
    assert not any(e.action.startswith("consent") for e in audit_rows(db))


def test_the_simulator_records_no_consent(poll: Service, db: sessionmaker[Session]) -> None:
    # The staff's test phone answering "yes" must not become an address pushes may go to.
    for text in ("POLL", "yes", "yes"):
        msg = InboundMessage(Address("sms", "+15555550101"), text, f"in-{next(_ids)}", NOW)
        poll.receive(msg, simulated=True)
    assert address(db, "sms", "sim:+15555550101").consent_at is None
    assert not any(e.action.startswith("consent") for e in audit_rows(db))


def test_other_yes_answers_are_not_consent(poll: Service, db: sessionmaker[Session]) -> None:
    for text in ("POLL", "yes"):
        send(poll, "sms", "+32470000001", text)
    assert address(db, "sms", "+32470000001").consent_at is None


def test_control_characters_in_a_file_are_dropped_and_phone_numbers_checked(
    contacts: Contacts, db: sessionmaker[Session], tmp_path: Path
) -> None:
    """A NUL in a cell would stop the import on PostgreSQL; ``+123456`` is no phone number
    (the same rule as the webhooks: channels.addresses)."""
    text = (
        "address,district,consent_source,consent_at\n"
        "+32470000001,nor\x00th\x1b,paper\x00 form,2026-10-01\n"
        "+123456,south,,\n"
    )
    report = contacts.import_file(write(tmp_path, text))
    assert [p.message for p in report.problems] == ["address: not a valid phone number"]
    first = contact_of(db, "sms", "+32470000001")
    assert first.attributes == {"district": "north"}
    assert address(db, "sms", "+32470000001").consent_source == "paper form"
