"""Add the console to the Flask app: templates, the session cookie, CSRF, sign-in, pages."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Final

from flask import Blueprint, Flask
from flask_wtf.csrf import CSRFProtect

from bot.console import (
    account,
    audit_page,
    auth,
    consultations,
    contacts,
    home,
    outcomes,
    pushes,
    results,
    staff_pages,
)
from bot.console.access import install_access
from bot.console.context import ConsoleContext, install_context
from bot.console.layout import install_layout
from bot.console.times import install_times
from storage import repo
from storage.db import transaction

#: Signs the session cookie (Flask) and the CSRF tokens; made once per database.
SECRET_SETTING: Final = "console_secret_key"  # noqa: S105 (a setting's name)


def install_console(app: Flask, context: ConsoleContext, *, exempt: list[Blueprint]) -> None:
    """``exempt`` blueprints answer machines that sign their requests their own way (the
    providers' webhooks): no CSRF token is asked of them."""
    install_context(app, context)
    # Templates (console/, govuk_frontend_jinja/), /console/static/, the navigation by role.
    install_layout(app)
    install_times(app)
    _configure_cookies(app, context)
    # Before CSRFProtect's own hook, which reads the body: a contacts file may be larger.
    app.before_request(contacts.raise_upload_limit)
    csrf = CSRFProtect(app)
    for blueprint in exempt:
        csrf.exempt(blueprint)
    install_access(app)
    for module in (
        auth,
        home,
        account,
        staff_pages,
        audit_page,
        results,
        consultations,
        outcomes,
        contacts,
        pushes,
    ):
        app.register_blueprint(module.bp)


def _configure_cookies(app: Flask, context: ConsoleContext) -> None:
    with transaction(context.sessions) as s:
        app.secret_key = repo.init_setting(s, SECRET_SETTING, secrets.token_hex(32))
    https = context.config.server.public_url.startswith("https://")
    app.config.update(
        # __Host-: only this exact site, over HTTPS, may set or read it.
        SESSION_COOKIE_NAME="__Host-voxpop" if https else "voxpop",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=max(1, context.config.console.session_hours)),
        # A token lives as long as the session: a form left open over lunch still works.
        WTF_CSRF_TIME_LIMIT=None,
    )
