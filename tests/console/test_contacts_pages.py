"""The Contacts pages through Flask's client, on both databases: who may open them, the
import's steps (check without writing, confirm, summary), search, a contact's page, erasing
with confirmation and the audit log; and no page shows a whole phone number."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.contacts import import_worker
from bot.service import Service
from bot.staff.accounts import Role
from messages import Address, InboundMessage
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import AuditEntry, Contact
from tests.bot.test_service import cells_containing
from tests.console.contacts_support import (
    clock,
    email_of,
    fixed,
    signed_in,
    whole_numbers,
    with_bad_line,
)
from tests.csrf_client import plain_client
from tests.staff import add_staff

__all__ = ["clock"]  # a fixture, used by name

ROUTES = (
    "/contacts",
    "/contacts?attribute=district%3Dnorth",
    "/contacts/import",
    "/contacts/{contact}",
    "/contacts/{contact}/erase",
    "/contacts/import/1",
    "/contacts/import/1.json",
)


def upload(client: FlaskClient, app: Flask, data: bytes, name: str = "city.csv") -> str:
    """Upload a file and wait for its check; the import's page."""
    answer = client.post(
        "/contacts/import",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    import_worker(app).join(60)
    return str(answer.headers["Location"])


def imported(client: FlaskClient, app: Flask, data: bytes) -> str:
    page = upload(client, app, data)
    assert client.post(page + "/confirm").status_code == 303
    import_worker(app).join(60)
    return page


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def audit_actions(db: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with transaction(db, read_only=True) as s:
        rows = s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject))
        return [(a, b, c) for a, b, c in rows]


def contact_ids(db: sessionmaker[Session]) -> list[int]:
    """The contacts' ids, in order. (Not 1, 2...: on PostgreSQL a file's check takes ids from
    the sequence that its rollback does not give back.)"""
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(Contact.id).order_by(Contact.id)))


def id_of(db: sessionmaker[Session], value: str) -> int:
    with transaction(db, read_only=True) as s:
        found = s.scalar(select(AddressRow.contact_id).where(AddressRow.value == value))
    assert found is not None
    return found


def addresses(db: sessionmaker[Session]) -> list[str]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(AddressRow.value)))


# --- who may open them ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_analysts_get_403_and_it_is_audited(
    app: Flask, db: sessionmaker[Session], route: str
) -> None:
    client = signed_in(app, "analyst")
    assert client.get(route.format(contact=1)).status_code == 403
    assert client.post("/contacts/1/erase").status_code == 403
    refused = [a for a in audit_actions(db) if a[1] == "access refused"]
    assert refused
    assert all(actor == f"staff:{email_of('analyst')}" for actor, _a, _s in refused)


def test_signed_out_they_ask_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    for route in ROUTES:
        answer = client.get(route.format(contact=1))
        assert answer.status_code == 302
        assert "/login" in answer.headers["Location"]


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_editors_and_admins_use_them(app: Flask, db: sessionmaker[Session], role: str) -> None:
    client = signed_in(app, role)
    imported(client, app, fixed())
    for route in ROUTES:
        path = route.format(contact=contact_ids(db)[0])
        assert client.get(path).status_code == 200, path


# --- import ---------------------------------------------------------------------------------


def test_the_check_shows_problems_by_line_and_writes_nothing(
    app: Flask, db: sessionmaker[Session]
) -> None:
    client = signed_in(app, "editor")
    page = upload(client, app, with_bad_line())
    html = text_of(client.get(page).get_data(as_text=True))
    assert "Check the file before importing" in html
    assert "1 row has a problem and would be skipped" in html
    assert "14 language 'xx' is not one Voxpop speaks" in html.replace("&#39;", "'")
    assert "Import 12 rows" in html
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0
    assert client.get(page + ".json").get_json() == {
        "status": "checked",
        "working": False,
        "percent": 100,
        "line": 14,
        "lines": 14,
    }


def test_confirmed_it_imports_and_shows_the_summary(app: Flask, db: sessionmaker[Session]) -> None:
    client = signed_in(app, "editor")
    page = imported(client, app, with_bad_line())
    html = text_of(client.get(page).get_data(as_text=True))
    assert "Contacts imported" in html
    assert "12 rows imported" in html
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 12
    actor = f"staff:{email_of('editor')}"
    job = page.rsplit("/", 1)[1]
    assert (actor, "contacts imported", f"import:{job}") in audit_actions(db)
    assert (actor, "contacts_import", None) in audit_actions(db)
    # Confirming twice imports nothing more.
    client.post(page + "/confirm")
    assert "cannot be imported now" in client.get(page).get_data(as_text=True)


def test_a_file_without_an_address_column_is_refused(app: Flask) -> None:
    client = signed_in(app, "editor")
    page = upload(client, app, b"phone,district\n+32470000001,north\n")
    html = text_of(client.get(page).get_data(as_text=True)).replace("&#39;", "'")
    assert "The file cannot be imported" in html
    assert "line 1: no 'address' column" in html
    assert "nothing was imported" in html


def test_no_file_and_a_file_too_large_get_a_message(app: Flask) -> None:
    client = signed_in(app, "editor")
    answer = client.post("/contacts/import", data={}, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert "Choose a CSV file to upload." in answer.get_data(as_text=True)
    # The body by hand: the test client would spool a large one to a file it leaves open.
    big = b"address\n" + b"+32470000001\n" * 100_000
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + big + b"\r\n--b--\r\n"
    )
    answer = client.post(
        "/contacts/import", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert answer.status_code == 413
    assert "The file is larger than 1 MB" in answer.get_data(as_text=True)


def test_cancel_drops_the_upload(app: Flask) -> None:
    client = signed_in(app, "editor")
    page = upload(client, app, fixed())
    assert client.post(page + "/discard").status_code == 303
    html = client.get(page).get_data(as_text=True)
    assert "Import cancelled" in html
    assert "Import 13 rows" not in html


def test_a_confirmation_without_its_csrf_token_changes_nothing(app: Flask) -> None:
    client = signed_in(app, "editor")
    page = upload(client, app, fixed())
    forged = plain_client(app)
    with client.session_transaction() as theirs, forged.session_transaction() as ours:
        ours.update(theirs)
    assert forged.post(page + "/confirm").status_code == 400
    assert client.get(page + ".json").get_json()["status"] == "checked"


def test_without_script_the_progress_page_says_to_reload(
    app: Flask, db: sessionmaker[Session]
) -> None:
    client = signed_in(app, "editor")
    answer = client.post(
        "/contacts/import",
        data={"file": (io.BytesIO(fixed()), "city.csv")},
        content_type="multipart/form-data",
    )
    page = str(answer.headers["Location"])
    html = client.get(page).get_data(as_text=True)
    import_worker(app).join(60)
    if "<progress" in html:  # still checking when the page was made
        assert "Refresh this page" in html
        assert "contacts-import.js" in html
    assert "Check the file before importing" in client.get(page).get_data(as_text=True)


# --- search, a contact, erase ---------------------------------------------------------------


def test_search_filters_and_finds(app: Flask, db: sessionmaker[Session]) -> None:
    client = signed_in(app, "editor")
    imported(client, app, fixed())
    html = text_of(client.get("/contacts?attribute=district%3Dnorth").get_data(as_text=True))
    assert "5 contacts" in html
    html = text_of(client.get("/contacts?channel=telegram&consent=given").get_data(as_text=True))
    assert "3 contacts" in html
    found = client.get("/contacts?q=whatsapp%3A%2B32470000002")
    assert found.status_code == 302
    assert found.headers["Location"].endswith(f"/contacts/{id_of(db, '+32470000002')}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("channel=fax", "Choose a channel from the list."),
        ("language=xx", "Choose a language from the list."),
        ("consent=maybe", "Choose a consent from the list."),
        ("attribute=north", "Write the attribute as name=value"),
        ("q=hello", "Address: not a phone number"),
        ("q=%2B32470999999", "No contact has this address."),
    ],
)
def test_bad_search_input_is_named_next_to_its_field(app: Flask, query: str, message: str) -> None:
    client = signed_in(app, "editor")
    answer = client.get(f"/contacts?{query}")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "There is a problem" in html
    assert message in html
    assert client.get("/contacts?page=-3&page=abc").status_code == 200


def test_erasing_asks_first_then_does_what_forget_does(
    app: Flask, db: sessionmaker[Session], engine: Engine
) -> None:
    client = signed_in(app, "editor")
    imported(client, app, fixed())
    n = id_of(db, "+32470000001")
    html = text_of(client.get(f"/contacts/{n}/erase").get_data(as_text=True))
    assert f"Erase contact {n}?" in html
    assert "This cannot be undone." in html
    assert cells_containing(engine, "32470000001")
    answer = client.post(f"/contacts/{n}/erase")
    assert answer.status_code == 303
    assert f"Contact {n} was erased." in client.get(answer.headers["Location"]).get_data(
        as_text=True
    )
    gone = client.get(f"/contacts/{n}")
    assert gone.status_code == 404
    assert "was erased on" in gone.get_data(as_text=True)
    assert cells_containing(engine, "32470000001") == []
    actor = f"staff:{email_of('editor')}"
    assert (actor, "contacts erased", f"contact:{n}") in audit_actions(db)
    assert (actor, "forget", f"contact:{n}") in audit_actions(db)
    assert f"Contact {n}<" not in client.get("/contacts").get_data(as_text=True)


def test_no_page_shows_a_whole_phone_number(
    app: Flask, service: Service, db: sessionmaker[Session]
) -> None:
    client = signed_in(app, "admin")
    add_staff(app, Role.EDITOR, email_of("editor"))
    page = imported(client, app, with_bad_line())
    # A conversation, with a number typed into a text answer.
    for n, text in enumerate(("PARK", "4", "call me: +32 470 12 34 56", "yes", "no")):
        service.receive(
            InboundMessage(Address("sms", "+32470000001"), text, f"in-{n}", service.now())
        )
    stored = addresses(db)
    assert "+32470000001" in stored
    first = id_of(db, "+32470000001")
    pages = [r.format(contact=first) for r in ROUTES]
    pages += [page, "/contacts?channel=sms", "/contacts/import"]
    pages += [f"/contacts/{n}" for n in contact_ids(db)]
    pages += [f"/contacts/{n}/erase" for n in contact_ids(db)]
    for route in pages:
        html = client.get(route).get_data(as_text=True)
        assert whole_numbers(html, stored) == [], route
    html = client.get(f"/contacts/{first}").get_data(as_text=True)
    assert "+32 470 •• •• 01" in html
    assert "call me: +•• ••• •• •• 56" in html
