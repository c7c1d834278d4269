"""Reading the audit log: newest first, filtered by who, what and when, a page at a time;
and writing the entries that an attacker could otherwise repeat at will (a try held by the
sign-in limits), once per wait."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.days import day_end, day_start
from bot.staff.limits import LONGEST_WAIT
from storage import repo
from storage.db import transaction
from storage.models import AuditEntry

PER_PAGE: Final = 50


@dataclass(frozen=True)
class AuditFilter:
    #: Part of the actor, e.g. an email or ``citizen``; any case.
    who: str = ""
    action: str = ""
    #: From the start of ``since`` to the end of ``until`` (days in ``zone``), both included.
    since: date | None = None
    until: date | None = None
    #: The time zone of those days: the city's on the console, where times are shown in it.
    zone: tzinfo = UTC


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    page: int
    has_next: bool


def read_audit(
    sessions: sessionmaker[Session], wanted: AuditFilter, page: int = 1, per_page: int = PER_PAGE
) -> AuditPage:
    """One page (from 1) of entries matching ``wanted``, newest first."""
    page = max(1, page)
    stmt = select(AuditEntry)
    if wanted.who.strip():
        stmt = stmt.where(
            func.lower(AuditEntry.actor).contains(wanted.who.strip().lower(), autoescape=True)
        )
    if wanted.action:
        stmt = stmt.where(AuditEntry.action == wanted.action)
    if wanted.since:
        stmt = stmt.where(AuditEntry.at >= day_start(wanted.since, wanted.zone))
    if wanted.until:
        stmt = stmt.where(AuditEntry.at < day_end(wanted.until, wanted.zone))
    stmt = (
        stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    with transaction(sessions, read_only=True) as s:
        found = [
            AuditRow(row.at, row.actor, row.action, row.subject, dict(row.details or {}))
            for row in s.scalars(stmt)
        ]
    return AuditPage(found[:per_page], page, len(found) > per_page)


def audit_actions(sessions: sessionmaker[Session]) -> list[str]:
    """Every action the log holds, for the filter's list."""
    with transaction(sessions, read_only=True) as s:
        return list(s.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def audit_once_per_hold(
    sessions: sessionmaker[Session],
    actor: str,
    action: str,
    until: datetime,
    details: dict[str, Any],
    now: datetime,
) -> bool:
    """Record that a try was held (the sign-in limits said wait until ``until``), unless the
    same ``actor``, ``action`` and ``details`` were recorded for this same wait already: a
    held try costs a guesser nothing, so each further one must cost the log nothing either.
    The entry says when the wait ends; a new wait (after more failures) is a new entry.
    Whether an entry was written."""
    # As the Audit log page writes times: UTC, to the second.
    wanted = {**details, "until": f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"}
    with transaction(sessions) as s:
        _serialise(s, actor, action)
        # Every entry of this wait was written after it began, at most LONGEST_WAIT before
        # its end: the index on ``at`` keeps the look-up short however old the log.
        earlier = s.scalars(
            select(AuditEntry.details).where(
                AuditEntry.action == action,
                AuditEntry.actor == actor,
                AuditEntry.at >= until - LONGEST_WAIT,
            )
        )
        if any(dict(found or {}) == wanted for found in earlier):
            return False
        repo.audit(s, actor, action, None, wanted, now)
        return True


def _serialise(s: Session, *parts: str) -> None:
    """Parallel held tries see each other's entry: SQLite's ``BEGIN IMMEDIATE`` already
    serialises writers; PostgreSQL takes an advisory lock on ``parts`` until the commit."""
    if s.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256("\x1f".join(("audit hold", *parts)).encode()).digest()
    s.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest[:8], "big", signed=True)},
    )
