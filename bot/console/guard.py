"""The sign-in limits at the edge: the client's address, the known-device cookie, and the
plain message that says when to try again (:mod:`bot.staff.limits` counts).

The known-device cookie is signed with the console's secret and lists, for up to
:data:`MAX_DEVICES` accounts, a keyed name of the account and a random nonce: it proves this
browser signed in to that account before, so its failures do not count against the account's
shared budget (an attacker elsewhere cannot hold up the real person).
"""

from __future__ import annotations

import math
import secrets
from datetime import timedelta
from typing import Final

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.wrappers import Response

from bot.console.context import console
from bot.staff.limits import Attempt, SignInLimits

#: How long a browser stays known: a year, as a staff member's PC does.
DEVICE_DAYS: Final = 365
MAX_DEVICES: Final = 5
_SALT: Final = "voxpop known device"


def limits() -> SignInLimits:
    context = console()
    key = str(current_app.secret_key or "").encode()
    return SignInLimits(context.sessions, context.clock, key)


def client_address() -> str:
    # ProxyFix (``[server] trusted_proxies``) has already put the forwarded client here.
    return request.remote_addr or "unknown"


def device_cookie_name() -> str:
    secure = bool(current_app.config.get("SESSION_COOKIE_SECURE"))
    # __Host-: only this exact site, over HTTPS, may set or read it.
    return "__Host-voxpop-device" if secure else "voxpop_device"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(str(current_app.secret_key or ""), salt=_SALT)


def _known() -> list[tuple[str, str]]:
    raw = request.cookies.get(device_cookie_name())
    if not raw or len(raw) > 2048:
        return []
    try:
        data = _serializer().loads(raw)
    except BadSignature:
        return []
    if not isinstance(data, list):
        return []
    return [
        (str(item[0]), str(item[1])) for item in data if isinstance(item, list) and len(item) == 2
    ][:MAX_DEVICES]


def attempt(step: str, account: str) -> Attempt:
    """This request's try at ``step`` for ``account`` (an email, or an account id)."""
    named = limits().device_key(account)
    device = next((nonce for name, nonce in _known() if name == named), None)
    return Attempt(step=step, account=account, address=client_address(), device=device)


def remember_device(response: Response, account: str) -> None:
    """Mark this browser as known for ``account`` (after a full sign-in)."""
    named = limits().device_key(account)
    entries = [(name, nonce) for name, nonce in _known() if name != named]
    current = next((nonce for name, nonce in _known() if name == named), None)
    entries.insert(0, (named, current or secrets.token_urlsafe(16)))
    response.set_cookie(
        device_cookie_name(),
        _serializer().dumps([list(entry) for entry in entries[:MAX_DEVICES]]),
        max_age=DEVICE_DAYS * 24 * 3600,
        path="/",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )


def wait_message(wait: timedelta) -> str:
    """Plain words for how long to wait.

    >>> wait_message(timedelta(seconds=30))
    'Too many tries that were not right. Try again in 1 minute.'
    >>> wait_message(timedelta(seconds=61))
    'Too many tries that were not right. Try again in 2 minutes.'
    """
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many tries that were not right. Try again in {minutes} {unit}."


def retry_after(wait: timedelta) -> str:
    return str(max(1, math.ceil(wait.total_seconds())))
