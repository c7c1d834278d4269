"""One-time codes (TOTP, RFC 6238) and recovery codes: the second step of signing in.

A member of staff sets codes up by scanning a QR code (or typing the secret) into an
authenticator app and typing a first code; the secret counts only from then on. Ten recovery
codes are shown once, kept as SHA-256 (they are random, so a fast hash is enough), and each
works once. A code is accepted one time step either side of now (a phone's clock drifts),
and never twice: the last time step used is kept (in ``settings``, one row per account), so
a code seen over someone's shoulder is worth nothing once typed. An admin may require codes
of everyone (:data:`REQUIRED_SETTING`); ``voxpop staff reset-codes`` and the Staff page
clear them for someone who lost their phone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

import pyotp
import segno
from sqlalchemy.orm import Session, sessionmaker

from bot.service import Clock
from storage import repo
from storage.db import transaction
from storage.models import StaffAccount

#: ``"yes"`` when every member of staff must use one-time codes.
REQUIRED_SETTING: Final = "staff_codes_required"
#: The last time step accepted for an account (replay protection), ``<prefix><id>``.
STEP_SETTING_PREFIX: Final = "staff_code_step:"
RECOVERY_CODES: Final = 10
#: How many 30-second steps either side of now a code may be from.
VALID_WINDOW: Final = 1
ISSUER: Final = "Voxpop"
# No 0/O, 1/l/I: a recovery code is read off paper and typed.
_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class CodesSetup:
    """What the set-up page shows: the secret to type, and the QR code that carries it."""

    secret: str
    uri: str

    @property
    def grouped_secret(self) -> str:
        """The secret in groups of four, easier to type.

        >>> CodesSetup("ABCDEFGHIJKLMNOP", "").grouped_secret
        'ABCD EFGH IJKL MNOP'
        """
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))

    def qr_data_uri(self) -> str:
        """The QR code as an SVG ``data:`` address: an ``<img>`` the page's CSP allows."""
        qr = segno.make(self.uri, error="m")
        uri: str = qr.svg_data_uri(scale=6, border=4, dark="#0b0c0c", light="#ffffff")
        return uri


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_code(code: str) -> str:
    """What was typed, without spaces or dashes, lower case.

    >>> normalise_code(" 123 456 "), normalise_code("ABCDE-fghjk")
    ('123456', 'abcdefghjk')
    """
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


class OneTimeCodes:
    """Codes for the accounts of one database."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    # --- requiring them ---------------------------------------------------------------------

    def required(self) -> bool:
        with transaction(self._sessions, read_only=True) as s:
            return repo.get_setting(s, REQUIRED_SETTING) == "yes"

    def set_required(self, required: bool, *, actor: str) -> None:
        with transaction(self._sessions) as s:
            if (repo.get_setting(s, REQUIRED_SETTING) == "yes") == required:
                return
            if required:
                repo.set_setting(s, REQUIRED_SETTING, "yes")
            else:
                repo.delete_settings(s, [REQUIRED_SETTING])
            action = "one-time codes required" if required else "one-time codes made optional"
            repo.audit(s, actor, action, None, {}, self._clock())

    # --- setting up -------------------------------------------------------------------------

    def setup(self, staff_id: int) -> CodesSetup:
        """The secret being set up (a new one if there is none yet): the same on every visit,
        so a page reloaded after scanning still matches the app."""
        with transaction(self._sessions) as s:
            row = self._row(s, staff_id)
            if row.totp_confirmed_at is not None:
                raise CodesError("One-time codes are already set up.")
            if not row.totp_secret:
                row.totp_secret = pyotp.random_base32()
            return self._setup_of(row)

    @staticmethod
    def _setup_of(row: StaffAccount) -> CodesSetup:
        assert row.totp_secret
        uri = pyotp.TOTP(row.totp_secret).provisioning_uri(name=row.email, issuer_name=ISSUER)
        return CodesSetup(row.totp_secret, uri)

    def confirm(self, staff_id: int, code: str, *, actor: str) -> list[str]:
        """Turn codes on with a first right code; the recovery codes, shown only now."""
        with transaction(self._sessions) as s:
            row = self._row(s, staff_id)
            if row.totp_confirmed_at is not None:
                raise CodesError("One-time codes are already set up.")
            if not row.totp_secret:
                raise CodesError("Start again: open the set-up page.")
            step = self._matching_step(s, row, normalise_code(code))
            if step is None:
                raise CodesError("That code is not right. Type the 6 digits the app shows now.")
            now = self._clock()
            row.totp_confirmed_at = now
            plain = [_recovery_code() for _ in range(RECOVERY_CODES)]
            row.recovery_codes = [_hash(normalise_code(c)) for c in plain]
            repo.set_setting(s, STEP_SETTING_PREFIX + str(row.id), str(step))
            repo.audit(s, actor, "one-time codes set up", None, {"email": row.email}, now)
            return plain

    # --- using them -------------------------------------------------------------------------

    def check(self, staff_id: int, code: str) -> str | None:
        """Whether ``code`` (from the app, or a recovery code) is right now and unused:
        ``"code"`` or ``"recovery code"``, or ``None``. A right code is used up."""
        typed = normalise_code(code)
        with transaction(self._sessions) as s:
            row = self._row(s, staff_id)
            if row.totp_confirmed_at is None or not row.totp_secret:
                return None
            if typed.isascii() and typed.isdigit():
                step = self._matching_step(s, row, typed)
                if step is None:
                    return None
                repo.set_setting(s, STEP_SETTING_PREFIX + str(row.id), str(step))
                return "code"
            digest = _hash(typed)
            left = [h for h in row.recovery_codes if not hmac.compare_digest(h, digest)]
            if len(left) == len(row.recovery_codes):
                return None
            row.recovery_codes = left
            repo.audit(
                s,
                f"staff:{row.email}",
                "recovery code used",
                None,
                {"left": len(left)},
                self._clock(),
            )
            return "recovery code"

    def recovery_codes_left(self, staff_id: int) -> int:
        with transaction(self._sessions, read_only=True) as s:
            return len(self._row(s, staff_id, lock=False).recovery_codes)

    def _matching_step(self, s: Session, row: StaffAccount, typed: str) -> int | None:
        """The time step ``typed`` is the code of, if near now and later than the last used."""
        assert row.totp_secret
        if len(typed) != 6 or not (typed.isascii() and typed.isdigit()):
            return None
        totp = pyotp.TOTP(row.totp_secret)
        now = totp.timecode(self._clock())
        last = repo.get_setting(s, STEP_SETTING_PREFIX + str(row.id))
        used = int(last) if last and last.isdigit() else -1
        found = None
        # Every candidate is compared (no early return): the time taken tells nothing.
        for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step), typed) and step > used:
                found = step
        return found

    # --- for someone who lost their phone ---------------------------------------------------

    def reset(self, staff_id: int, *, actor: str) -> None:
        """Codes off for this account: the next sign-in asks for the password only (and,
        where codes are required, sets up new ones before anything else)."""
        with transaction(self._sessions) as s:
            row = self._row(s, staff_id)
            row.totp_secret = None
            row.totp_confirmed_at = None
            row.recovery_codes = []
            repo.delete_settings(s, [STEP_SETTING_PREFIX + str(row.id)])
            repo.audit(s, actor, "one-time codes reset", None, {"email": row.email}, self._clock())

    @staticmethod
    def _row(s: Session, staff_id: int, *, lock: bool = True) -> StaffAccount:
        # Locked: two sign-ins racing with the same code cannot both use it.
        row = s.get(StaffAccount, staff_id, with_for_update=lock)
        if row is None:
            raise CodesError("There is no such account.")
        return row


class CodesError(ValueError):
    """A code that cannot be set up or accepted, in plain words."""
