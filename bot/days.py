"""Days in the city's time zone as instants in UTC, for filters by day (results, audit log).

A day typed by staff is checked by the console (a sensible year); these stay safe at the
edges of the calendar anyway, since the command line and stored filters reach them too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo  # noqa: F401  (the doctests)

__all__ = ["day_end", "day_start"]

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC (the calendar's first instant for a
    day before it can be told in UTC).

    >>> day_start(date(2026, 7, 1), ZoneInfo("Europe/Brussels")).isoformat()
    '2026-06-30T22:00:00+00:00'
    >>> day_start(date(1, 1, 1), ZoneInfo("Europe/Brussels")) == _EARLIEST
    True
    """
    try:
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:
        return _EARLIEST


def day_end(day: date, zone: tzinfo) -> datetime:
    """The first instant after ``day`` in ``zone``, in UTC (the calendar's last instant for
    the calendar's last day).

    >>> day_end(date(2026, 7, 1), ZoneInfo("Europe/Brussels")).isoformat()
    '2026-07-01T22:00:00+00:00'
    >>> day_end(date(9999, 12, 31), ZoneInfo("Europe/Brussels")) == _LATEST
    True
    """
    try:
        return day_start(day + timedelta(days=1), zone)
    except OverflowError:
        return _LATEST
