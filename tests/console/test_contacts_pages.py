"""The Contacts pages through Flask's client, on both databases: who may open them, the
import's steps (check without writing, confirm, summary), search, a contact's page, erasing
with confirmation and the audit log; and no page shows a whole phone number."""

from __future__ import annotations

import io
import logging
import re
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

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
from tests.staff import PASSWORD, add_staff

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
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject).order_by(AuditEntry.id)
        )
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
        if route.endswith(".json"):  # the progress bar's poll: told in JSON
            assert answer.status_code == 401
            continue
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
        # Rows, as the summary counts them: the header is no row.
        "row": 13,
        "rows": 13,
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
    # Once by whoever confirmed, and what the import wrote when it ended.
    imports = [row for row in audit_actions(db) if row[1].startswith("contacts import")]
    assert imports == [
        (actor, "contacts imported", None),
        ("system", "contacts import finished", None),
    ]
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


def _raw_upload(client: FlaskClient, data: bytes) -> TestResponse:
    # The body by hand: the test client would spool a large one to a file it leaves open.
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    return client.post(
        "/contacts/import", data=body, content_type="multipart/form-data; boundary=b"
    )


def test_no_file_and_a_file_too_large_get_a_message(app: Flask) -> None:
    client = signed_in(app, "editor")
    answer = client.post("/contacts/import", data={}, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert "Choose a CSV file to upload." in answer.get_data(as_text=True)
    # Over [contacts] max_upload_mb (20): refused before it is read, the message by the field.
    answer = _raw_upload(client, b"address\n" + b"+32470000001\n" * 1_700_000)
    assert answer.status_code == 413
    html = answer.get_data(as_text=True)
    assert '<p id="file-error" class="govuk-error-message">' in html
    assert "The file is larger than 20 MB" in html
    # Every other request keeps its 1 MB limit.
    assert client.post("/pushes/new", data={"at": "x" * 1_100_000}).status_code == 413


def test_a_file_over_a_megabyte_is_taken_and_checked(app: Flask) -> None:
    client = signed_in(app, "editor")
    note = "n" * 200
    rows = "".join(f"+3247{n:07d},{note}\n" for n in range(5_000))
    data = f"address,note\n{rows}".encode()
    assert len(data) > 1024 * 1024
    answer = _raw_upload(client, data)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    import_worker(app).join(120)
    progress = client.get(str(answer.headers["Location"]) + ".json").get_json()
    assert progress["status"] == "checked", progress
    assert "Import 5,000 rows" in client.get(answer.headers["Location"]).get_data(as_text=True)


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
        # Only for a browser without script: the script refreshes the page by itself.
        assert "<noscript><a" in html
        assert "Refresh this page</a>" in html
        assert "contacts-import.js" in html
    assert "Check the file before importing" in client.get(page).get_data(as_text=True)


# --- search, a contact, erase ---------------------------------------------------------------


def test_no_contacts_yet_is_not_no_match(app: Flask, db: sessionmaker[Session]) -> None:
    client = signed_in(app, "editor")
    empty = client.get("/contacts").get_data(as_text=True)
    assert "No contacts yet" in empty
    assert "No contacts match" not in empty
    assert 'href="/contacts/import">Import a contacts file</a>' in empty
    imported(client, app, fixed())
    none = client.get("/contacts?attribute=district%3Dnowhere").get_data(as_text=True)
    assert "No contacts match" in none
    assert "No contacts yet" not in none


def test_search_filters_and_finds(app: Flask, db: sessionmaker[Session]) -> None:
    client = signed_in(app, "editor")
    imported(client, app, fixed())
    html = text_of(client.get("/contacts?attribute=district%3Dnorth").get_data(as_text=True))
    assert "5 contacts" in html
    html = text_of(client.get("/contacts?channel=telegram&consent=given").get_data(as_text=True))
    assert "3 contacts" in html
    found = client.post("/contacts/find", data={"q": "whatsapp:+32470000002"})
    assert found.status_code == 303
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
        ("q=", "Enter a phone number, chat id or contact number."),
    ],
)
def test_bad_search_input_is_named_next_to_its_field(app: Flask, query: str, message: str) -> None:
    client = signed_in(app, "editor")
    if query.startswith("q="):  # finding one person: a POST
        answer = client.post("/contacts/find", data={"q": unquote(query[2:])})
    else:
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
    erased = [row for row in audit_actions(db) if row[1] == "contact erased"]
    assert erased == [(actor, "contact erased", f"contact:{n}")]
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


# --- a phone number is never in an address ----------------------------------------------------

#: The digits of +32 470 00 00 02 as any form of it writes them.
DIGITS = "470000002"
NOBODY = "470999902"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_finding_by_number_keeps_it_out_of_every_address(
    app: Flask, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(app, "editor")
    imported(client, app, fixed())
    caplog.set_level(logging.DEBUG)
    answers = []
    for typed in ("+32 470 00 00 02", "whatsapp:+32470000002", "+32470000002"):
        found = client.post("/contacts/find", data={"q": typed})
        assert found.status_code == 303
        assert found.headers["Location"] == f"/contacts/{id_of(db, '+32470000002')}"
        answers.append(found)
        answers.append(client.get(found.headers["Location"]))
    nobody = client.post("/contacts/find", data={"q": "+32 470 99 99 02"})
    assert nobody.status_code == 400
    assert "No contact has this address." in nobody.get_data(as_text=True)
    answers.append(nobody)
    for answer in answers:
        assert DIGITS not in _digits(answer.headers.get("Location", ""))
        html = answer.get_data(as_text=True)
        for link in re.findall(r'(?:href|action|src)="([^"]*)"', html):
            assert DIGITS not in _digits(link), link
            assert NOBODY not in _digits(link), link
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert DIGITS not in _digits(logged)
    assert NOBODY not in _digits(logged)


def test_the_find_form_is_a_post_with_a_csrf_token(app: Flask) -> None:
    client = signed_in(app, "editor")
    html = client.get("/contacts").get_data(as_text=True)
    form = re.search(r'<form method="(\w+)" action="/contacts/find"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None
    assert form.group(1) == "post"
    assert 'name="csrf_token"' in form.group(2)
    # With a forged token, nothing is looked up: the request is refused.
    forged = client.post(
        "/contacts/find", data={"q": "+32470000002"}, headers={"X-CSRFToken": "forged"}
    )
    assert forged.status_code == 400
    assert "CSRF" in forged.get_data(as_text=True)


def test_an_old_bookmark_with_a_number_goes_nowhere_with_it(app: Flask) -> None:
    # Signed out: the sign-in page's next= keeps the filters, not the number.
    answer = app.test_client().get("/contacts?q=%2B32470000002&channel=sms")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/contacts?channel%3Dsms"
    # Signed in: the page lists contacts by the filters; it finds nobody by number from a GET.
    client = signed_in(app, "editor")
    page = client.get("/contacts?q=%2B32470000002")
    assert page.status_code == 200
    assert DIGITS not in _digits(page.get_data(as_text=True))
    # A sign-in's next= that carries a number drops it.
    signed = signed_in_to(app.test_client(), "/contacts%3Fq%3D%252B32470000002%26tag%3Dvolunteer")
    assert signed.status_code == 303
    assert signed.headers["Location"] == "/contacts?tag=volunteer"


def signed_in_to(client: FlaskClient, next_path: str) -> TestResponse:
    """Sign the editor in from a sign-in page whose ``next=`` is ``next_path`` (quoted)."""
    return client.post(
        f"/login?next={next_path}",
        data={"email": email_of("editor"), "password": PASSWORD},
    )
