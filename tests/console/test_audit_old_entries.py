"""Entries written before the audit log named actions in words (``push_create``,
``forget``...) read and filter on the Audit log page like new ones, after ``voxpop db
upgrade``, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import Engine, text

from bot.config import Config
from bot.service import Service
from bot.staff.accounts import Role
from bot.web.app import create_app
from storage.db import make_engine, session_factory
from storage.migrate import upgrade
from tests.console.test_contacts_pages import text_of
from tests.staff import sign_in
from tests.storage.test_migrations import fresh_url

__all__ = ["fresh_url"]  # a fixture, used by name

AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)

#: What the services and the console wrote before, as ``(actor, action, subject)``.
OLD = [
    ("staff:ana@city.example", "push_create", "push:1"),
    ("staff:ana@city.example", "push created", "push:1"),  # the console's own copy
    ("system", "push_fire", "push:1"),
    ("staff", "survey_load", "parks"),
    ("citizen", "opt_out", "contact:7"),
    ("citizen", "consent_given", "contact:7"),
    ("staff:ana@city.example", "forget", "contact:7"),
    ("staff:ana@city.example", "contacts erased", "contact:7"),
    ("staff:ana@city.example", "signed in", None),
]


@pytest.fixture
def old_log(fresh_url: tuple[str, str | None]) -> Iterator[Engine]:
    """A database with entries of the old names, then upgraded to the newest schema."""
    url, schema = fresh_url
    upgrade(url, schema=schema, revision="0007")
    engine = make_engine(url, schema=schema)
    try:
        with engine.begin() as conn:
            for n, (actor, action, subject) in enumerate(OLD):
                conn.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, subject, details) "
                        "VALUES (:at, :actor, :action, :subject, :details)"
                    ),
                    {
                        "at": AT.replace(minute=n),
                        "actor": actor,
                        "action": action,
                        "subject": subject,
                        "details": "{}",
                    },
                )
        upgrade(url, schema=schema)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def app(old_log: Engine) -> Flask:
    service = Service(session_factory(old_log), clock=lambda: AT, pseudonym_key="k")
    return create_app(service, Config(), clock=lambda: AT)


def test_old_entries_are_named_in_words(old_log: Engine) -> None:
    with old_log.connect() as conn:
        rows = conn.execute(text("SELECT actor, action FROM audit_log ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [
        ("staff:ana@city.example", "push created"),
        ("staff:ana@city.example", "push created"),
        ("system", "push fired"),
        ("staff", "consultation loaded"),
        ("citizen", "opted out"),
        ("citizen", "consent given"),
        ("staff:ana@city.example", "contact erased"),
        ("staff:ana@city.example", "contact erased"),
        ("staff:ana@city.example", "signed in"),
    ]


def test_the_audit_page_lists_and_filters_old_entries_in_words(app: Flask) -> None:
    admin = app.test_client()
    sign_in(admin, Role.ADMIN)
    page = admin.get("/audit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # The filter offers words only: no code is left to choose.
    for code in ("push_create", "push_fire", "survey_load", "opt_out", "forget"):
        assert f'value="{code}"' not in html
    for words in ("push created", "push fired", "consultation loaded", "contact erased"):
        assert f'value="{words}"' in html
    erased = text_of(admin.get("/audit?action=contact+erased").get_data(as_text=True))
    assert erased.count("contact erased contact:7") == 2
    assert "staff:ana@city.example contact erased contact:7" in erased
    assert "30 Nov 2026, 11:07" in erased  # as the page shows times, in the city's zone
    loaded = text_of(admin.get("/audit?action=consultation+loaded").get_data(as_text=True))
    assert "staff consultation loaded parks" in loaded
    assert "push:1" not in loaded
