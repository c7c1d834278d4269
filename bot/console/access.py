"""Who is signed in, what their role lets them do, and the audit log of what they did.

Every console view is decorated with :func:`requires`: signed out, a page asks to sign in;
with too low a role, the answer is 403 and the refusal is audited. The role each view needs
is kept on it (``required_role``), so a test can try every route with every role.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from bot.console.context import console
from bot.staff.accounts import Role, StaffView
from storage import repo
from storage.db import transaction

__all__ = ["Role", "StaffView", "audit", "current_staff", "install_access", "requires"]

P = ParamSpec("P")
R = TypeVar("R", bound=ResponseReturnValue)

#: Where the session's token lives in Flask's (signed) session cookie.
SESSION_KEY: Final = "staff_session"


def install_access(app: Flask) -> None:
    """Read the signed-in member of staff, if any, before every request."""
    app.before_request(_load_staff)


def _load_staff() -> None:
    g.staff = None
    g.pending_staff = None
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return
    signed_in = console().staff.resolve(token)
    if signed_in is None:
        # Ended (idle, expired, revoked, account disabled): forget it.
        session.pop(SESSION_KEY, None)
        return
    if signed_in.stage == "signed_in":
        g.staff = signed_in.staff
    else:
        g.pending_staff = signed_in.staff


def current_staff() -> StaffView:
    """The signed-in member of staff (inside a view that :func:`requires` a role)."""
    staff: StaffView | None = g.get("staff")
    if staff is None:
        abort(401)
    return staff


def requires(role: Role) -> Callable[[Callable[P, R]], Callable[P, ResponseReturnValue]]:
    """The view needs a member of staff with at least ``role``."""

    def decorate(view: Callable[P, R]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            staff: StaffView | None = g.get("staff")
            if staff is None:
                return sign_in_first()
            if not staff.role.allows(role):
                audit("access refused", path=request.path, needed=role.value)
                abort(403)
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def sign_in_first() -> Response:
    """Send a signed-out visitor to the sign-in page, to come back here after."""
    if request.method == "GET":
        return redirect(url_for("console_auth.login", next=request.full_path.rstrip("?")))
    return redirect(url_for("console_auth.login"), 303)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another site: an open redirect).

    >>> safe_next("/pushes?page=2"), safe_next("//evil.example/"), safe_next("https://x/")
    ('/pushes?page=2', None, None)
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def audit(action: str, subject: str | None = None, **details: Any) -> None:
    """Record a staff action in the audit log: who (the signed-in member of staff, or
    ``anonymous``), when, what. ``subject`` is a pseudonym, never a phone number."""
    staff: StaffView | None = g.get("staff") or g.get("pending_staff")
    actor = staff.actor if staff else "anonymous"
    context = console()
    with transaction(context.sessions) as s:
        repo.audit(s, actor, action, subject, details, context.clock())
