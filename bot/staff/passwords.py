"""Staff passwords: the policy a new password must meet, and argon2id hashing.

The policy follows NIST SP 800-63B: long enough (12 characters), not a common or easily
guessed password (zxcvbn's list of 30,000 common passwords and its guessing estimate), and no
composition rules. Hashes are argon2id with argon2-cffi's default (RFC 9106) parameters; a
hash made with older parameters is replaced at the next sign-in (:func:`needs_rehash`).
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_LENGTH: Final = 12
#: Longer passwords are refused: hashing is slow on purpose, and a megabyte would be slower.
MAX_LENGTH: Final = 256
#: zxcvbn's score from 0 (guessed at once) to 4; 3 resists an offline attack for a long time.
MIN_SCORE: Final = 3
#: zxcvbn grows quadratically with the length; its estimate is read from the start.
_ESTIMATE_CHARS: Final = 64

_HASHER: Final = PasswordHasher()
_COMMON: Final = frozenset(FREQUENCY_LISTS["passwords"])
#: Verified when the email names nobody, so that a wrong email costs as long as a wrong
#: password and the time of an answer does not tell which accounts exist.
_DUMMY_HASH: Final = _HASHER.hash("no account has this password, it only costs time")


def password_problem(password: str, email: str = "") -> str | None:
    """Why ``password`` may not be used, in plain words; ``None`` when it may.

    >>> password_problem("short")
    'Use at least 12 characters.'
    >>> password_problem("qwerty123456")
    'This password is one of the most common ones: choose another.'
    >>> password_problem("anna.devries@city.example", "anna.devries@city.example")
    'Do not use your email address as your password.'
    >>> password_problem("blue kettle under the old bridge") is None
    True
    """
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in _COMMON:
        return "This password is one of the most common ones: choose another."
    local = email.lower().split("@")[0]
    if email and (lowered == email.lower() or (len(local) >= 4 and local in lowered)):
        return "Do not use your email address as your password."
    estimate = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=[email, local, "voxpop"])
    if estimate["score"] < MIN_SCORE:
        warning = str(estimate["feedback"].get("warning") or "").strip()
        hint = f" ({warning.rstrip('.')})" if warning else ""
        return f"This password is too easy to guess{hint}: add more words or characters."
    return None


def hash_password(password: str) -> str:
    """The argon2id hash to store."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with ``None`` (no account) the same work is done
    and the answer is no."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password[:MAX_LENGTH]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)
