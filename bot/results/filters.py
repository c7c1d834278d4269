"""Which responses a results view or an export covers: one consultation (every version, or
one), a date range in the city's own days, the responses' status, the simulator's runs or not.

A *response* is one citizen answering one consultation: a session with at least one answer,
or completed (an invitation nobody answered is not one; the funnel counts those). Dates are
days in the city's timezone (``[pushes] timezone``), inclusive, on the day a response began.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement

from bot.days import day_end, day_start
from storage.models import SessionRow, SurveyRow
from storage.repo import is_response

#: A response's status as staff see it (``partial``: still answering), as in the export.
STATUSES: Final = ("completed", "partial", "abandoned")
_STORED: Final = {"completed": "completed", "partial": "active", "abandoned": "abandoned"}


class FilterError(ValueError):
    """A filter that cannot be applied; the message says why, in staff's words."""


@dataclass(frozen=True)
class ResultsFilter:
    """What to count. Every field but ``slug`` narrows it; the defaults take everything
    citizens answered."""

    slug: str
    #: One version of the consultation file, or ``None`` for all of them.
    version: int | None = None
    #: First and last day (inclusive) on which responses began, in the city's timezone.
    since: date | None = None
    until: date | None = None
    #: Some of :data:`STATUSES`; empty for all.
    statuses: tuple[str, ...] = ()
    #: Staff's own test runs in the simulator (left out by default).
    include_simulated: bool = False

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in STATUSES]
        if unknown:
            raise FilterError(f"unknown status {unknown[0]!r} (known: {', '.join(STATUSES)})")
        if self.since and self.until and self.since > self.until:
            raise FilterError("the first day is after the last day")
        if self.version is not None and self.version < 1:
            raise FilterError("versions are numbered from 1")


def sessions_where(
    f: ResultsFilter, zone: ZoneInfo, *, with_status: bool = True, responses: bool = True
) -> Sequence[ColumnElement[bool]]:
    """Conditions on ``sessions`` joined to ``surveys`` for ``f``: the responses it covers
    (``responses=False``: every session, answered or not, for the funnel; ``with_status=
    False``: whatever their status)."""
    where: list[ColumnElement[bool]] = [SurveyRow.slug == f.slug]
    if f.version is not None:
        where.append(SurveyRow.version == f.version)
    if not f.include_simulated:
        where.append(SessionRow.simulated.is_(False))
    if f.since is not None:
        where.append(SessionRow.started_at >= day_start(f.since, zone))
    if f.until is not None:
        where.append(SessionRow.started_at < day_end(f.until, zone))
    if with_status and f.statuses:
        where.append(SessionRow.status.in_([_STORED[s] for s in f.statuses]))
    if responses:
        where.append(is_response())
    return where


def export_status(stored: str) -> str:
    """The stored status as staff see it.

    >>> export_status("active"), export_status("completed")
    ('partial', 'completed')
    """
    return "partial" if stored == "active" else stored
