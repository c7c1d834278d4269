"""Who is signed in, what their role lets them do, and the audit log of what they did.

Every console view is decorated with :func:`requires`: signed out, a page asks to sign in;
with too low a role, the answer is 403 and the refusal is audited. The role each view needs
is kept on it (``required_role``), so a test can try every route with every role.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from bot.console.context import console
from bot.staff.accounts import Role, StaffView
from bot.staff.audit_log import audit_once_per_hold
from bot.staff.codes import OneTimeCodes
from bot.staff.limits import Turn
from storage import repo
from storage.db import transaction

__all__ = [
    "Role",
    "StaffView",
    "audit",
    "audit_held",
    "can_open",
    "current_staff",
    "install_access",
    "requires",
]

P = ParamSpec("P")
R = TypeVar("R", bound=ResponseReturnValue)

#: Where the session's token lives in Flask's (signed) session cookie.
SESSION_KEY: Final = "staff_session"


#: What a page's script shows when its session has ended (plain words, with a link).
SIGNED_OUT_MESSAGE: Final = "You have been signed out, sign in again."

_DIGITS: Final = re.compile(r"\d{7}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

#: What a consultation's id or a question's id in an address may be (surveys.validate): any
#: other value names nothing, and is refused before it reaches the database.
_ID_IN_PATH: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def install_access(app: Flask) -> None:
    """Read the signed-in member of staff, if any, before every request; keep what the
    pages of a signed-in member show out of the browser's cache."""
    app.url_value_preprocessor(_refuse_impossible_ids)
    app.before_request(load_staff)
    app.after_request(_not_cached)
    app.jinja_env.globals["can_open"] = can_open


def can_open(endpoint: str) -> bool:
    """Whether the signed-in member of staff may open ``endpoint``: a page links only where
    its viewer's role may go (an analyst's Home links to results, not to editing)."""
    staff: StaffView | None = g.get("staff")
    view = current_app.view_functions.get(endpoint)
    if staff is None or view is None:
        return False
    role = getattr(view, "required_role", None)
    return not isinstance(role, Role) or staff.role.allows(role)


def is_possible_id(value: str) -> bool:
    """Whether ``value`` could be a consultation's or a question's id.

    >>> is_possible_id("central-park"), is_possible_id(chr(0)), is_possible_id("a" * 65)
    (True, False, False)
    """
    return bool(_ID_IN_PATH.fullmatch(value))


def _refuse_impossible_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    for name in ("slug", "question_id"):
        value = (values or {}).get(name)
        if isinstance(value, str) and not is_possible_id(value):
            abort(404)


def _not_cached(response: Response) -> Response:
    # A shared town-hall PC: after sign-out, Back must not show contacts or answers again.
    if g.get("staff") is not None or g.get("pending_staff") is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


def load_staff() -> None:
    """Who is signed in, in ``g.staff`` (``g.pending_staff`` half way through signing in);
    once per request, whoever asks first (the upload limit asks before CSRF's check)."""
    if "staff" in g:
        return
    g.staff = None
    g.pending_staff = None
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return
    signed_in = console().staff.resolve(token, activity=not _is_poll())
    if signed_in is None:
        # Ended (idle, expired, revoked, account disabled): forget it.
        session.pop(SESSION_KEY, None)
        return
    g.session_id = signed_in.session_id
    if signed_in.stage == "signed_in":
        g.staff = signed_in.staff
    else:
        g.pending_staff = signed_in.staff


def _is_poll() -> bool:
    # A page's script asking for fresh numbers on its own is not someone at the keyboard:
    # it must not keep an unattended session alive until its absolute end.
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "is_poll", False))


def signed_out_json() -> Response:
    """What a poll gets once its session has ended: a 401 the page's script shows."""
    response = jsonify(
        signed_out=True,
        message=SIGNED_OUT_MESSAGE,
        sign_in=url_for("console_auth.login"),
    )
    response.status_code = 401
    return response


def current_staff() -> StaffView:
    """The signed-in member of staff (inside a view that :func:`requires` a role)."""
    staff: StaffView | None = g.get("staff")
    if staff is None:
        abort(401)
    return staff


def requires(
    role: Role, *, codes_first: bool = True, poll: bool = False
) -> Callable[[Callable[P, R]], Callable[P, ResponseReturnValue]]:
    """The view needs a member of staff with at least ``role``. Where an admin requires
    one-time codes, a member without them is sent to set them up first (``codes_first``
    is off only for the pages that do that, and signing out). A ``poll`` (JSON a page's
    script asks for on its own) does not count as activity, and gets a 401 when signed out."""

    def decorate(view: Callable[P, R]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            staff: StaffView | None = g.get("staff")
            if staff is None:
                return signed_out_json() if poll else sign_in_first()
            if codes_first:
                needed = set_up_codes_first()
                if needed is not None:
                    return needed
            if not staff.role.allows(role):
                audit("access refused", path=request.path, needed=role.value)
                abort(403)
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        guarded.is_poll = poll  # type: ignore[attr-defined]
        return guarded

    return decorate


def set_up_codes_first() -> Response | None:
    """Where one-time codes are required, a member of staff without them goes to set them
    up before any other page; ``None`` when they may go on."""
    staff: StaffView | None = g.get("staff")
    if staff is None or staff.totp_enabled:
        return None
    context = console()
    if not OneTimeCodes(context.sessions, context.clock).required():
        return None
    target = url_for("console_account.codes")
    return redirect(target) if request.method == "GET" else redirect(target, 303)


def sign_in_first() -> Response:
    """Send a signed-out visitor to the sign-in page, to come back here after (or, half
    signed in, to the one-time code step)."""
    if g.get("pending_staff") is not None:
        return redirect(url_for("console_auth.code"), 303 if request.method != "GET" else 302)
    if request.method == "GET":
        here = without_personal(request.full_path.rstrip("?"))
        return redirect(url_for("console_auth.login", next=here))
    return redirect(url_for("console_auth.login"), 303)


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another site: an open redirect).

    >>> safe_next("/pushes?page=2"), safe_next("//evil.example/"), safe_next("https://x/")
    ('/pushes?page=2', None, None)
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(c.isspace() or not c.isprintable() for c in target):
        return None  # a line break would end the Location header (and no path has one)
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return without_personal(target)


def without_personal(target: str) -> str:
    """``target`` (a path and query) without any query value that could be a phone number
    or a chat id: a ``next=`` lands in the address bar, the history and the logs, and no
    page's filters need such a value (an old bookmark of a search by number may have one).

    >>> without_personal("/contacts?q=%2B32+470+00+00+01&channel=sms&page=2")
    '/contacts?channel=sms&page=2'
    >>> without_personal("/results/park?since=2026-12-07&q=telegram:123456789")
    '/results/park?since=2026-12-07'
    >>> without_personal("/pushes/12")
    '/pushes/12'
    """
    parts = urlsplit(target)
    if not parts.query:
        return target
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [
        (name, value)
        for name, value in pairs
        if not _looks_personal(value) and not _looks_personal(name)
    ]
    if len(kept) == len(pairs):
        return target
    return parts.path + ("?" + urlencode(kept) if kept else "")


def _looks_personal(value: str) -> bool:
    # Seven digits once everything else is dropped: a phone number (8 to 15)
    # or a chat id. A date (2026-12-07) is not one; a page number never has seven digits.
    if _DATE.fullmatch(value.strip()):
        return False
    return bool(_DIGITS.search(re.sub(r"\D", "", value)))


def audit(action: str, subject: str | None = None, **details: Any) -> None:
    """Record a staff action in the audit log: who (the signed-in member of staff, or
    ``anonymous``), when, what. ``subject`` is a pseudonym, never a phone number."""
    staff: StaffView | None = g.get("staff") or g.get("pending_staff")
    actor = staff.actor if staff else "anonymous"
    context = console()
    with transaction(context.sessions) as s:
        repo.audit(s, actor, action, subject, details, context.clock())


def audit_held(action: str, turn: Turn, **details: Any) -> None:
    """Record a try the sign-in limits held (``turn``), once per wait (by who, with
    ``details``): repeating a held try writes nothing more (:func:`audit_once_per_hold`)."""
    assert turn.until is not None, "only a held turn is audited as held"
    staff: StaffView | None = g.get("staff") or g.get("pending_staff")
    actor = staff.actor if staff else "anonymous"
    context = console()
    audit_once_per_hold(context.sessions, actor, action, turn.until, details, context.clock())
