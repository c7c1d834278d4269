"""Staff passwords: the policy a new password must meet, and argon2id hashing.

The policy follows NIST SP 800-63B: long enough (12 characters), not a common or easily
guessed password (zxcvbn's list of 30,000 common passwords and its guessing estimate), and no
composition rules. Hashes are argon2id with argon2-cffi's default (RFC 9106) parameters; a
hash made with older parameters is replaced at the next sign-in (:func:`needs_rehash`).
"""

from __future__ import annotations

import re
from typing import Any, Final

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
    'Do not use the email address as the password.'
    >>> password_problem("annadevries2026", "anna.devries@city.example").split(": ")[1]
    'it contains words from the email address. Add more words, or other ones.'
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
    words = email_words(email)
    local = email.lower().partition("@")[0]
    if email and _letters(lowered) in {_letters(email.lower()), _letters(local)}:
        # "The", not "your": an admin sets passwords for others too (the Staff page).
        return "Do not use the email address as the password."
    estimate = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=[*words, SERVICE_NAME])
    if estimate["score"] < MIN_SCORE:
        reason = _weakness(estimate["sequence"])
        because = f" {reason}." if reason else ""
        return f"This password is too easy to guess:{because} Add more words, or other ones."
    return None


#: The service's name: in a password, as easy to guess as the user's own email.
SERVICE_NAME: Final = "voxpop"


def email_words(email: str) -> list[str]:
    """The words of an email address that a guesser would try first (its name and domain).

    >>> email_words("anna.de-vries@city.example")
    ['anna', 'vries', 'city', 'example', 'anna.de-vries', 'annadevries']
    """
    local, _, domain = email.lower().partition("@")
    words = [w for w in re.split(r"[^a-z0-9]+", f"{local} {domain}") if len(w) >= 3]
    whole = [local, _letters(local)] if local else []
    return list(dict.fromkeys([*words, *whole]))


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text)


#: What each kind of zxcvbn match says about a weak password, in plain words. zxcvbn's own
#: feedback names only the weakest part and says nothing for words of the email.
_WEAKNESS: Final = {
    "user_inputs": "it contains words from the email address",
    "service": "it contains the name of this service",
    "passwords": "it contains a common password",
    "names": "it contains a common first name or surname",
    "words": "it contains common words",
    "spatial": "it follows a pattern of keys on the keyboard",
    "repeat": "it repeats characters or words",
    "sequence": 'it contains a sequence like "abc" or "6543"',
    "regex": "it contains a recent year",
    "date": "it contains a date",
}
_NAMES: Final = frozenset({"surnames", "male_names", "female_names"})


def _weakness(sequence: list[dict[str, Any]]) -> str:
    """The main reason a guesser finds the password fast: the longest part matched by
    something else than brute force, the email's words first."""
    kinds: list[tuple[int, str]] = []
    for match in sequence:
        pattern = str(match.get("pattern", ""))
        if pattern == "dictionary":
            name = str(match.get("dictionary_name", ""))
            if name == "user_inputs":
                service = str(match.get("matched_word", "")) == SERVICE_NAME
                kind = "service" if service else "user_inputs"
            else:
                kind = (
                    "passwords" if name == "passwords" else "names" if name in _NAMES else "words"
                )
        elif pattern in _WEAKNESS:
            kind = pattern
        else:
            continue
        length = len(str(match.get("token", "")))
        # The user's own words matter more than any other: they are the first a guesser tries.
        kinds.append((length + (1000 if kind == "user_inputs" else 0), kind))
    return _WEAKNESS[max(kinds)[1]] if kinds else ""


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
