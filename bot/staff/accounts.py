"""Staff accounts and their signed-in sessions: the use cases the console and ``voxpop staff``
share (docs/console.md, "Accounts and roles").

Roles are ordered: an admin may do all an editor may, an editor all an analyst may. A session
is a random token in the browser's cookie; the database keeps only its SHA-256, with an idle
and an absolute end, so disabling an account or "sign out everywhere" ends it at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.service import Clock
from bot.staff.passwords import hash_password, needs_rehash, password_problem, verify_password
from safetext import clean_text
from storage import repo
from storage.db import transaction
from storage.models import STAFF_ROLES, Setting, StaffAccount, StaffSession, column_length

#: The one-time link that creates the first admin: its SHA-256 and when it stops working.
SETUP_SETTING: Final = "staff_setup_token"
SETUP_LIFETIME: Final = timedelta(hours=24)
#: A session's last activity is written at most this often (not on every page).
TOUCH_EVERY: Final = timedelta(minutes=1)
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Role(Enum):
    """What a member of staff may do; each role may do all the roles below it may."""

    ANALYST = "analyst"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may.

        >>> Role.ADMIN.allows(Role.EDITOR), Role.ANALYST.allows(Role.EDITOR)
        (True, False)
        """
        return self.rank >= needed.rank

    @property
    def label(self) -> str:
        return self.value.capitalize()


_RANKS: Final = {Role.ANALYST: 0, Role.EDITOR: 1, Role.ADMIN: 2}
assert {role.value for role in Role} == set(STAFF_ROLES)


class StaffError(ValueError):
    """A request about accounts that cannot be done; ``field`` names the input at fault."""

    def __init__(
        self, message: str, field: str | None = None, problems: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        #: Every input at fault, by field (a form shows them all at once).
        self.problems = problems or ({field: message} if field else {})


@dataclass(frozen=True)
class StaffView:
    id: int
    email: str
    role: Role
    disabled: bool = False
    totp_enabled: bool = False
    last_sign_in_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this member of staff."""
        return f"staff:{self.email}"


@dataclass(frozen=True)
class SignedIn:
    """A session the cookie's token names, still valid."""

    staff: StaffView
    session_id: str
    #: ``password``: a one-time code is still asked for; ``signed_in``: fully signed in.
    stage: str


@dataclass(frozen=True)
class SessionView:
    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str


def normalise_email(email: str) -> str:
    """The email as accounts are stored: cleaned, trimmed, lower case.

    >>> normalise_email("  Anna.DeVries@City.Example ")
    'anna.devries@city.example'
    """
    return clean_text(email, column_length(StaffAccount.email)).strip().lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` (normalised) is not an email address, or ``None``.

    >>> email_problem("anna@city.example") is None, email_problem("anna")
    (True, 'Enter an email address like name@city.example.')
    """
    if not _EMAIL.match(email):
        return "Enter an email address like name@city.example."
    return None


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise StaffError("Choose admin, editor or analyst.", "role") from None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(row: StaffAccount) -> StaffView:
    return StaffView(
        id=row.id,
        email=row.email,
        role=Role(row.role),
        disabled=row.disabled_at is not None,
        totp_enabled=row.totp_confirmed_at is not None,
        last_sign_in_at=row.last_sign_in_at,
        created_at=row.created_at,
    )


def account_problems(email: str, password: str) -> dict[str, str]:
    """What is wrong with a new account's email and password, by field: all of it at once.

    >>> sorted(account_problems("anna", "short"))
    ['email', 'password']
    """
    email = normalise_email(email)
    found = {"email": email_problem(email), "password": password_problem(password, email)}
    return {field: problem for field, problem in found.items() if problem}


def _checked_email(email: str, password: str) -> str:
    """The normalised email of a new account; :class:`StaffError` names every wrong field."""
    problems = account_problems(email, password)
    if problems:
        field, problem = next(iter(problems.items()))
        raise StaffError(problem, field, problems)
    return normalise_email(email)


def _has_accounts(s: Session) -> bool:
    return bool(s.scalar(select(func.count()).select_from(StaffAccount)))


class StaffAccounts:
    """Accounts and sessions over one database; build once per process or command."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        idle_timeout: timedelta = timedelta(minutes=30),
        session_lifetime: timedelta = timedelta(hours=12),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._idle = idle_timeout
        self._lifetime = session_lifetime

    # --- accounts ---------------------------------------------------------------------------

    def count(self) -> int:
        with transaction(self._sessions, read_only=True) as s:
            return int(s.scalar(select(func.count()).select_from(StaffAccount)) or 0)

    def add(self, email: str, password: str, role: Role, *, actor: str) -> StaffView:
        """Create an account; :class:`StaffError` says which input is wrong."""
        email = _checked_email(email, password)
        with transaction(self._sessions) as s:
            return self._add(s, email, password, role, actor)

    def _add(self, s: Session, email: str, password: str, role: Role, actor: str) -> StaffView:
        if s.scalar(select(StaffAccount.id).where(StaffAccount.email == email)) is not None:
            raise StaffError("There is already an account with this email.", "email")
        now = self._clock()
        row = StaffAccount(
            email=email,
            password_hash=hash_password(password),
            role=role.value,
            created_at=now,
            recovery_codes=[],
        )
        s.add(row)
        s.flush()
        repo.audit(s, actor, "staff account added", None, {"email": email, "role": role.value}, now)
        return _view(row)

    def all(self) -> list[StaffView]:
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(select(StaffAccount).order_by(StaffAccount.email))
            return [_view(row) for row in rows]

    def get(self, staff_id: int) -> StaffView | None:
        with transaction(self._sessions, read_only=True) as s:
            row = s.get(StaffAccount, staff_id)
            return _view(row) if row else None

    def by_email(self, email: str) -> StaffView | None:
        with transaction(self._sessions, read_only=True) as s:
            row = s.scalar(select(StaffAccount).where(StaffAccount.email == normalise_email(email)))
            return _view(row) if row else None

    def disable(self, email: str, *, actor: str) -> StaffView:
        """Disable an account and end every session it has, at once."""
        with transaction(self._sessions) as s:
            row = self._account(s, email)
            now = self._clock()
            if row.disabled_at is None:
                self._last_admin_check(s, row, "disable")
                row.disabled_at = now
                self._revoke_all(s, row.id, now)
                repo.audit(s, actor, "staff account disabled", None, {"email": row.email}, now)
            return _view(row)

    def enable(self, email: str, *, actor: str) -> StaffView:
        with transaction(self._sessions) as s:
            row = self._account(s, email)
            if row.disabled_at is not None:
                row.disabled_at = None
                now = self._clock()
                repo.audit(s, actor, "staff account enabled", None, {"email": row.email}, now)
            return _view(row)

    def set_role(self, email: str, role: Role, *, actor: str) -> StaffView:
        with transaction(self._sessions) as s:
            row = self._account(s, email)
            if row.role != role.value:
                if role is not Role.ADMIN:
                    self._last_admin_check(s, row, "change the role of")
                before, row.role = row.role, role.value
                repo.audit(
                    s,
                    actor,
                    "staff role changed",
                    None,
                    {"email": row.email, "from": before, "to": role.value},
                    self._clock(),
                )
            return _view(row)

    def set_password(self, staff_id: int, password: str, *, actor: str) -> None:
        """Replace a password; every other session of the account ends."""
        with transaction(self._sessions) as s:
            row = s.get(StaffAccount, staff_id)
            if row is None:
                raise StaffError("There is no such account.")
            problem = password_problem(password, row.email)
            if problem:
                raise StaffError(problem, "password")
            row.password_hash = hash_password(password)
            now = self._clock()
            self._revoke_all(s, row.id, now)
            repo.audit(s, actor, "staff password changed", None, {"email": row.email}, now)

    def _account(self, s: Session, email: str) -> StaffAccount:
        row = s.scalar(
            select(StaffAccount)
            .where(StaffAccount.email == normalise_email(email))
            .with_for_update()
        )
        if row is None:
            raise StaffError("There is no account with this email.", "email")
        return row

    def _last_admin_check(self, s: Session, row: StaffAccount, doing: str) -> None:
        # Nobody could manage accounts any more (short of the command line).
        if row.role != Role.ADMIN.value:
            return
        admins = s.scalar(
            select(func.count())
            .select_from(StaffAccount)
            .where(StaffAccount.role == Role.ADMIN.value, StaffAccount.disabled_at.is_(None))
        )
        if (admins or 0) <= 1:
            raise StaffError(f"You cannot {doing} the last admin: add another admin first.")

    # --- signing in -------------------------------------------------------------------------

    def authenticate(self, email: str, password: str) -> StaffView | None:
        """The account ``email`` and ``password`` name, if enabled; the same work is done
        whether or not the email exists. A hash with old parameters is renewed."""
        email = normalise_email(email)
        # The hash is checked with no transaction open: on SQLite a write transaction holds
        # the database's one write lock, and a check takes a good part of a second.
        with transaction(self._sessions, read_only=True) as s:
            row = s.scalar(select(StaffAccount).where(StaffAccount.email == email))
            stored = row.password_hash if row is not None else None
            view = _view(row) if row is not None and row.disabled_at is None else None
        if not verify_password(stored, password) or view is None or stored is None:
            return None
        if needs_rehash(stored):
            renewed = hash_password(password)
            with transaction(self._sessions) as s:
                # Only if it is still the hash just checked: a password changed meanwhile wins.
                s.execute(
                    update(StaffAccount)
                    .where(StaffAccount.id == view.id, StaffAccount.password_hash == stored)
                    .values(password_hash=renewed)
                )
        return view

    def start_session(self, staff_id: int, *, stage: str, user_agent: str) -> str:
        """A new session (a new token at every sign-in); the cookie's token is returned."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with transaction(self._sessions) as s:
            s.add(
                StaffSession(
                    id=_token_hash(token),
                    staff_id=staff_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self._lifetime,
                    stage=stage,
                    user_agent=clean_text(user_agent, column_length(StaffSession.user_agent)),
                )
            )
            # Old sessions are deleted here rather than by a job: sign-ins are rare.
            s.execute(delete(StaffSession).where(StaffSession.expires_at < now - self._lifetime))
        return token

    def complete_session(self, token: str) -> str:
        """The second step (a one-time code) is done: a NEW token replaces the old one."""
        with transaction(self._sessions) as s:
            row = s.get(StaffSession, _token_hash(token), with_for_update=True)
            if row is None:
                raise StaffError("This sign-in has ended: sign in again.")
            new = secrets.token_urlsafe(32)
            now = self._clock()
            s.add(
                StaffSession(
                    id=_token_hash(new),
                    staff_id=row.staff_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=row.expires_at,
                    stage="signed_in",
                    user_agent=row.user_agent,
                )
            )
            s.delete(row)
            account = s.get(StaffAccount, row.staff_id)
            if account is not None:
                account.last_sign_in_at = now
        return new

    def mark_signed_in(self, staff_id: int) -> None:
        with transaction(self._sessions) as s:
            s.execute(
                update(StaffAccount)
                .where(StaffAccount.id == staff_id)
                .values(last_sign_in_at=self._clock())
            )

    def resolve(self, token: str, *, activity: bool = True) -> SignedIn | None:
        """The valid session ``token`` names: not revoked, not idle too long, not past its
        end, its account enabled. Its last activity is recorded (at most once a minute),
        unless the request is not ``activity`` (a page's script polling on its own)."""
        if not token or len(token) > 128:
            return None
        now = self._clock()
        key = _token_hash(token)
        with transaction(self._sessions, read_only=True) as s:
            found = s.execute(
                select(StaffSession, StaffAccount)
                .join(StaffAccount, StaffAccount.id == StaffSession.staff_id)
                .where(StaffSession.id == key)
            ).one_or_none()
            if found is None:
                return None
            session, account = found
            if (
                session.revoked_at is not None
                or account.disabled_at is not None
                or now >= session.expires_at
                or now - session.last_seen_at >= self._idle
            ):
                return None
            signed_in = SignedIn(_view(account), key, session.stage)
            stale = activity and now - session.last_seen_at >= TOUCH_EVERY
        if stale:
            with transaction(self._sessions) as s:
                s.execute(
                    update(StaffSession).where(StaffSession.id == key).values(last_seen_at=now)
                )
        return signed_in

    def end_session(self, token: str) -> None:
        with transaction(self._sessions) as s:
            s.execute(
                update(StaffSession)
                .where(StaffSession.id == _token_hash(token))
                .values(revoked_at=self._clock())
            )

    def end_sessions(self, staff_id: int, *, actor: str, keep: str | None = None) -> int:
        """Sign an account out everywhere (but the session ``keep`` names, its own)."""
        with transaction(self._sessions) as s:
            now = self._clock()
            ended = self._revoke_all(s, staff_id, now, keep=_token_hash(keep) if keep else None)
            row = s.get(StaffAccount, staff_id)
            details = {"email": row.email if row else "", "sessions": ended}
            repo.audit(s, actor, "staff signed out everywhere", None, details, now)
            return ended

    def sessions_of(self, staff_id: int) -> list[SessionView]:
        now = self._clock()
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(
                select(StaffSession)
                .where(
                    StaffSession.staff_id == staff_id,
                    StaffSession.revoked_at.is_(None),
                    StaffSession.expires_at > now,
                    StaffSession.last_seen_at > now - self._idle,
                )
                .order_by(StaffSession.last_seen_at.desc())
            )
            return [SessionView(r.id, r.created_at, r.last_seen_at, r.user_agent) for r in rows]

    def _revoke_all(self, s: Session, staff_id: int, now: datetime, keep: str | None = None) -> int:
        stmt = (
            update(StaffSession)
            .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if keep is not None:
            stmt = stmt.where(StaffSession.id != keep)
        return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    # --- the first admin --------------------------------------------------------------------

    def setup_token(self) -> str | None:
        """A new one-time token that creates the first admin, while there is no account;
        any earlier token stops working. ``None`` once an account exists."""
        token = secrets.token_urlsafe(24)
        with transaction(self._sessions) as s:
            if _has_accounts(s):
                repo.delete_settings(s, [SETUP_SETTING])
                return None
            until = (self._clock() + SETUP_LIFETIME).isoformat()
            repo.set_setting(s, SETUP_SETTING, f"{_token_hash(token)} {until}")
        return token

    def setup_token_valid(self, token: str) -> bool:
        with transaction(self._sessions, read_only=True) as s:
            return self._setup_matches(s, token)

    def _setup_matches(self, s: Session, token: str) -> bool:
        stored = repo.get_setting(s, SETUP_SETTING)
        if not stored or not token or len(token) > 128:
            return False
        digest, _, until = stored.partition(" ")
        fresh = datetime.fromisoformat(until) > self._clock()
        return fresh and secrets.compare_digest(digest, _token_hash(token))

    def create_first_admin(self, token: str, email: str, password: str) -> StaffView:
        """Use the one-time token: the first admin, if there is still no account."""
        email = _checked_email(email, password)
        with transaction(self._sessions) as s:
            # Taken first, so two browsers racing with the link cannot both win.
            stored = s.get(Setting, SETUP_SETTING, with_for_update=True)
            if stored is None or not self._setup_matches(s, token):
                raise StaffError("This setup link has been used or has expired.")
            if _has_accounts(s):
                raise StaffError("This setup link has been used or has expired.")
            view = self._add(s, email, password, Role.ADMIN, "setup link")
            repo.delete_settings(s, [SETUP_SETTING])
            return view
