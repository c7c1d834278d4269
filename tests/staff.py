"""Staff accounts for tests: make one of a role and sign a test client in with it."""

from __future__ import annotations

import itertools
from typing import Final

from flask import Flask
from flask.testing import FlaskClient

from bot.console.context import EXTENSION, ConsoleContext
from bot.staff.accounts import Role, StaffView

#: Long and unguessable enough for the password rules.
PASSWORD: Final = "tram lines under the old market square"
_numbers = itertools.count(1)


def context_of(app: Flask) -> ConsoleContext:
    context: ConsoleContext = app.extensions[EXTENSION]
    return context


def add_staff(app: Flask, role: Role, email: str | None = None) -> StaffView:
    """A new account of ``role`` (a fresh email each time unless one is given)."""
    email = email or f"{role.value}{next(_numbers)}@city.example"
    return context_of(app).staff.add(email, PASSWORD, role, actor="test")


def sign_in(client: FlaskClient, role: Role = Role.EDITOR, email: str | None = None) -> StaffView:
    """Make an account of ``role`` and sign ``client`` in with it, as the login form does."""
    staff = add_staff(client.application, role, email)
    response = client.post("/login", data={"email": staff.email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    return staff
