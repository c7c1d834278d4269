"""A Flask test client that sends the CSRF token a real page would carry.

Pages put the token in their forms (and the simulator's page in a ``<meta>`` its script
sends back); tests that are not about CSRF post directly, so this client adds the token to
every state-changing request, as the browser's page would. Tests about CSRF itself use
:class:`flask.testing.FlaskClient` (``plain_client``), which sends none.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, session
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class CsrfClient(FlaskClient):
    def open(self, *args: Any, **kwargs: Any) -> Any:
        method = str(kwargs.get("method", "GET")).upper()
        app: Flask = self.application
        if method not in SAFE_METHODS and "csrf" in app.extensions:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self._token())
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)

    def _token(self) -> str:
        # The token is signed with the app's key and matches a raw one in the session.
        with self.session_transaction() as stored:
            raw = stored.get("csrf_token")
            with self.application.test_request_context():
                if raw:
                    session["csrf_token"] = raw
                token = str(generate_csrf())
                stored["csrf_token"] = session["csrf_token"]
        return token


def plain_client(app: Flask) -> FlaskClient:
    """A client that sends no CSRF token: what a forged cross-site request looks like."""
    return FlaskClient(app, app.response_class, use_cookies=True)
