"""Small steps the security tests share: sign in from an address, set up one-time codes as a
person would."""

from __future__ import annotations

import re
from datetime import datetime

import pyotp
from flask.testing import FlaskClient

_SECRET = re.compile(r'id="secret">([A-Z2-7 ]+)<')
_RECOVERY = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")


def secret_on_page(html: str) -> str:
    """The key the set-up page shows for typing into an app (spaces dropped)."""
    found = _SECRET.search(html)
    assert found, "the set-up page shows no key"
    return found.group(1).replace(" ", "")


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def set_up_codes(client: FlaskClient, now: datetime) -> tuple[str, list[str]]:
    """Open the set-up page, read the key, confirm with a first code: the key and the
    recovery codes shown."""
    page = client.get("/account/codes")
    assert page.status_code == 200
    secret = secret_on_page(page.get_data(as_text=True))
    done = client.post("/account/codes", data={"code": code_at(secret, now)})
    assert done.status_code == 200, done.get_data(as_text=True)
    recovery = _RECOVERY.findall(done.get_data(as_text=True))
    assert len(recovery) == 10
    return secret, recovery


#: A password no test account has.
WRONG = "not the password at all"


def try_sign_in(client: FlaskClient, email: str, password: str, address: str = "192.0.2.10") -> int:
    """The sign-in form sent from ``address``: the answer's status."""
    response = client.post(
        "/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )
    return response.status_code
