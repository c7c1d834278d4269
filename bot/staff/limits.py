"""Slowing down password and code guessing, across every worker (the ``sign_in_failures``
table), without letting an attacker lock a real member of staff out.

Following OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a browser that
has signed in to an account before carries a signed "known device" cookie, and its failures
are counted on their own (a budget per device). Every other client shares one budget per
account, and one per client address (for guessing across many accounts). A few failures are
free; after that each one doubles the wait before the next try, up to a ceiling, so a
guesser gets a few dozen tries a day while the real person, on their own browser, signs in
as usual. Rows hold keyed hashes of the email, the address and the device, never the values;
rows older than :data:`WINDOW` are deleted as new ones are written.

:meth:`SignInLimits.reserve` checks the budget and writes the attempt as a failure in ONE
transaction that holds the attempt's keys (an advisory lock per key on PostgreSQL, the
write lock ``BEGIN IMMEDIATE`` takes on SQLite), BEFORE the password is checked; a right
password forgives it. So parallel guesses, in any number of workers, queue at the lock and
each sees the ones before it: no more passwords are checked than the budget allows.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.service import Clock
from storage.db import transaction
from storage.models import SignInFailure

#: Failures older than this are forgotten (and deleted).
WINDOW: Final = timedelta(hours=24)
FIRST_WAIT: Final = timedelta(seconds=30)
LONGEST_WAIT: Final = timedelta(minutes=15)


@dataclass(frozen=True)
class Budget:
    """``free`` failures within :data:`WINDOW`, then waits that double from
    :data:`FIRST_WAIT` to :data:`LONGEST_WAIT`."""

    free: int

    def wait_after(self, failures: int) -> timedelta:
        """How long after the last failure the next try may come.

        >>> b = Budget(free=5)
        >>> [int(b.wait_after(n).total_seconds()) for n in (4, 5, 6, 7, 20)]
        [0, 30, 60, 120, 900]
        """
        if failures < self.free:
            return timedelta(0)
        doublings = min(failures - self.free, 10)
        wait: timedelta = min(FIRST_WAIT * (2**doublings), LONGEST_WAIT)
        return wait


#: One account (or one known device): a person mistypes a few times, a guesser many.
ACCOUNT_BUDGET: Final = Budget(free=5)
#: One client address: a town hall's staff may share it, so more are free.
ADDRESS_BUDGET: Final = Budget(free=20)


@dataclass(frozen=True)
class Attempt:
    """One try at a step (``password`` or ``code``) of signing in.

    ``account`` names the account as typed (the normalised email, or the account id for the
    code step); ``device`` is the known-device cookie's nonce when that browser has signed
    in to this account before (its failures are counted on their own).
    """

    step: str
    account: str
    address: str
    device: str | None = None


def address_group(address: str) -> str:
    """The client address as counted: an IPv6 address by its /64 (one household or
    server gets a whole /64), an IPv4 address as it is.

    >>> address_group("2001:db8:1:2:3:4:5:6"), address_group("192.0.2.7"), address_group("x")
    ('2001:db8:1:2::/64', '192.0.2.7', 'x')
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class Turn:
    """What :meth:`SignInLimits.reserve` decided: ``wait`` this long (nothing may be checked),
    or go on, with ``failure`` the row written for this try."""

    wait: timedelta | None
    failure: int | None
    #: When the wait ends (``None`` when there is none), on the clock that decided it.
    until: datetime | None = None


def _lock(s: Session, *keys: str) -> None:
    """Hold ``keys`` until the transaction ends. SQLite's ``BEGIN IMMEDIATE`` already holds
    the whole database; PostgreSQL takes one advisory lock per key, in one order (no
    deadlock between an attempt on account A from address X and one on B from X)."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for number in sorted({int.from_bytes(bytes.fromhex(k)[:8], "big", signed=True) for k in keys}):
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})


class SignInLimits:
    """The limits over one database; ``key`` makes the stored hashes unguessable."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, key: bytes) -> None:
        self._sessions = sessions
        self._clock = clock
        self._key = key

    def _keyed(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _keys(self, attempt: Attempt) -> tuple[str, str]:
        if attempt.device:
            account = self._keyed(attempt.step, "device", attempt.device)
        else:
            account = self._keyed(attempt.step, "account", attempt.account)
        address = self._keyed(attempt.step, "address", address_group(attempt.address))
        return account, address

    def reserve(self, attempt: Attempt) -> Turn:
        """May ``attempt`` be checked now? If so, it is written as a failure (until
        :meth:`forgive`) in the same transaction, under a lock on its keys."""
        account, address = self._keys(attempt)
        now = self._clock()
        with transaction(self._sessions) as s:
            _lock(s, account, address)
            wait = self._wait(s, attempt, account, address, now)
            if wait is not None:
                return Turn(wait=wait, failure=None, until=now + wait)
            s.execute(delete(SignInFailure).where(SignInFailure.at < now - WINDOW))
            row = SignInFailure(at=now, account_key=account, address_key=address)
            s.add(row)
            s.flush()
            return Turn(wait=None, failure=row.id)

    @staticmethod
    def _wait(
        s: Session, attempt: Attempt, account: str, address: str, now: datetime
    ) -> timedelta | None:
        since = now - WINDOW
        until = now
        checks = [(SignInFailure.account_key, account, ACCOUNT_BUDGET)]
        # A known device has a budget of its own: a crowd guessing from the same address
        # (or at the same account) does not hold it up.
        if attempt.device is None:
            checks.append((SignInFailure.address_key, address, ADDRESS_BUDGET))
        for column, key, budget in checks:
            count, last = s.execute(
                select(func.count(), func.max(SignInFailure.at)).where(
                    column == key, SignInFailure.at > since
                )
            ).one()
            if last is not None:
                until = max(until, _aware(last, now) + budget.wait_after(int(count)))
        return until - now if until > now else None

    def forgive(self, attempt: Attempt, turn: Turn) -> None:
        """The attempt was right: not a failure, and the account's (or device's) earlier
        failures are forgotten. The address's stay: a guesser may know one password."""
        account, _ = self._keys(attempt)
        with transaction(self._sessions) as s:
            s.execute(delete(SignInFailure).where(SignInFailure.id == turn.failure))
            s.execute(delete(SignInFailure).where(SignInFailure.account_key == account))

    def device_key(self, account: str) -> str:
        """What the known-device cookie names an account by (never the email itself)."""
        return self._keyed("device-account", account)[:32]


def _aware(at: datetime, now: datetime) -> datetime:
    # SQLite gives back naive UTC datetimes.
    return at if at.tzinfo is not None else at.replace(tzinfo=now.tzinfo)
