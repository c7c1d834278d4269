"""Error pages for the whole app, in plain words and the console's layout (install_error_pages).

A request that asked for JSON (an API path, a JSON body, or ``Accept`` preferring JSON)
gets ``{"error": message}`` instead, with the same status and headers (``Allow``,
``Retry-After``). Views that answer their own errors (the webhooks' plain text, the
simulator's :class:`~bot.web.app.ApiError`) keep doing so.

A bug never shows a traceback: the page says what to do and gives a short reference, and
the log line with that reference names the exception's type, the route and the stack, but
not the exception's message nor the address asked for, which may hold what a citizen
wrote or a phone number.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from flask import (
    Flask,
    Response,
    has_request_context,
    jsonify,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

__all__ = ["ERRORS", "ErrorText", "install_error_pages", "wants_json"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorText:
    """What an error page says: a heading and short paragraphs for staff."""

    title: str
    paragraphs: tuple[str, ...]


ERRORS: Final[Mapping[int, ErrorText]] = {
    400: ErrorText(
        "Sorry, something went wrong with that request",
        (
            "The page could not use what your browser sent.",
            "Go back, reload the page and try again.",
        ),
    ),
    403: ErrorText(
        "You cannot open this page",
        (
            "Your account does not give you access to it.",
            "If you need it for your work, ask an administrator of Voxpop.",
        ),
    ),
    404: ErrorText(
        "Page not found",
        (
            "If you typed the web address, check it is correct.",
            "If you pasted the web address, check you copied the entire address.",
        ),
    ),
    405: ErrorText(
        "Sorry, this page cannot do that",
        (
            "The page was asked for in a way it does not answer.",
            "Go back to the page you came from and use its links and buttons.",
        ),
    ),
    413: ErrorText(
        "What you sent is too large",
        (
            "Voxpop accepts up to {limit} in one go.",
            "Go back and send a smaller file, or split it into parts.",
        ),
    ),
    429: ErrorText(
        "Too many attempts",
        (
            "You have tried this too often in a short time.",
            "Wait a minute, then try again.",
        ),
    ),
    500: ErrorText(
        "Sorry, there is a problem with Voxpop",
        (
            "Try again in a few minutes.",
            "If it happens again, tell your Voxpop administrator, with the time and "
            "this reference: {reference}.",
        ),
    ),
}
_OTHER: Final = ErrorText("Sorry, something went wrong", ("Go back and try again.",))
#: A form that did not carry its page's token: left open too long, or sent from elsewhere.
_FORM_TOKEN: Final = ErrorText(
    "This form could not be accepted",
    (
        "For your safety, Voxpop only accepts a form sent from its own page, with the page's "
        "security token (a CSRF check), and this one had none or a wrong one.",
        "Go back, reload the page and send the form again.",
    ),
)


def wants_json(json_paths: Iterable[str] = ()) -> bool:
    """Whether the request asked for JSON rather than a page."""
    if any(request.path.startswith(prefix) for prefix in json_paths):
        return True
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def install_error_pages(
    app: Flask,
    *,
    json_paths: Iterable[str] = (),
    json_messages: Mapping[int, str] | None = None,
) -> None:
    """Answer every HTTP error and every uncaught exception of ``app`` as described in the
    module doc. ``json_paths`` are path prefixes answered in JSON whatever the request says;
    ``json_messages`` override the JSON message for some status codes. Needs the console's
    templates (:func:`bot.console.install_console`).
    """
    prefixes = tuple(json_paths)
    messages = dict(json_messages or {})

    def answer(exc: HTTPException, reference: str | None = None) -> Response:
        code = exc.code or 500
        if wants_json(prefixes):
            message = messages.get(code) or exc.description or exc.name
            if reference is not None:
                message = f"{ERRORS[500].title} (reference {reference})"
            response = jsonify(error=message)
        else:
            text = _FORM_TOKEN if isinstance(exc, CSRFError) else ERRORS.get(code, _OTHER)
            limit = _size(request.max_content_length if has_request_context() else None)
            paragraphs = [p.format(limit=limit, reference=reference) for p in text.paragraphs]
            page = render_template(
                "console/error.html", code=code, title=text.title, paragraphs=paragraphs
            )
            response = Response(page, mimetype="text/html")
        response.status_code = code
        # Keep what Werkzeug and the rate limiter put on the error (Allow, Retry-After).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return answer(exc)

    @app.errorhandler(Exception)
    def bug(exc: Exception) -> Response:
        # Flask would log str(exc) and the address: this handler logs neither (module doc).
        reference = secrets.token_hex(4)
        route = request.url_rule.rule if request.url_rule is not None else "(no route)"
        stack = "".join(traceback.format_tb(exc.__traceback__))
        log.error(
            "%s in %s %s (reference %s); the message is not logged, it may be personal\n%s",
            _kind(exc),
            request.method,
            route,
            reference,
            stack.rstrip(),
        )
        return answer(InternalServerError(), reference)


def _kind(exc: BaseException) -> str:
    """The exception's type, with the types it came from (never their messages)."""
    kinds = [type(exc).__qualname__]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(kinds) < 5:
        kinds.append(type(cause).__qualname__)
        cause = cause.__cause__ or cause.__context__
    return " from ".join(kinds)


def _size(limit: object) -> str:
    """
    >>> _size(1024 * 1024)
    '1 MB'
    >>> _size(None)
    'a limited size'
    """
    if not isinstance(limit, int):
        return "a limited size"
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit / 1024:g} KB"
