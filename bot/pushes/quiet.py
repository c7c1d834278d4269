"""Quiet hours: no invitation or reminder arrives at night in the citizen's own time.

Pure: times in, times out. A window like ``21:00-09:00`` crosses midnight; ``12:00-14:00``
does not. Daylight saving time is handled by :mod:`zoneinfo`: a moment is converted to the
contact's local time, and the end of the window is found on the local calendar, then
converted back to UTC (an end that falls in a skipped hour lands just after the gap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class QuietHoursError(ValueError):
    """A window or timezone that cannot be used; the message says why."""


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` to ``end`` in local time; ``start == end`` is never quiet."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``"21:00-09:00"``; an empty text is no quiet hours.

        >>> QuietHours.parse("21:00-09:00")
        QuietHours(start=datetime.time(21, 0), end=datetime.time(9, 0))
        >>> QuietHours.parse("") is None
        True
        >>> QuietHours.parse("9-17")
        Traceback (most recent call last):
        ...
        bot.pushes.quiet.QuietHoursError: quiet hours must look like 21:00-09:00, got '9-17'
        """
        if not text.strip():
            return None
        match = _WINDOW.match(text)
        if match is None:
            raise QuietHoursError(f"quiet hours must look like 21:00-09:00, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise QuietHoursError(f"quiet hours: {text!r} is not a time of day")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def to_json(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}"}

    @classmethod
    def from_json(cls, data: dict[str, str] | None) -> QuietHours | None:
        return None if not data else cls.parse(f"{data['start']}-{data['end']}")

    def is_quiet(self, local: time) -> bool:
        """Whether a local time of day falls in the window (start included, end not).

        >>> night = QuietHours(time(21), time(9))
        >>> night.is_quiet(time(23, 30)), night.is_quiet(time(9)), night.is_quiet(time(8, 59))
        (True, False, True)
        """
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """``moment`` (aware) if it is outside the window in ``zone``, else the window's end.

        >>> brussels = ZoneInfo("Europe/Brussels")
        >>> night = QuietHours(time(21), time(9))
        >>> night.next_allowed(datetime(2026, 12, 1, 22, 30, tzinfo=UTC), brussels)
        datetime.datetime(2026, 12, 2, 8, 0, tzinfo=datetime.timezone.utc)
        >>> night.next_allowed(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), brussels)
        datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
        """
        local = moment.astimezone(zone)
        if not self.is_quiet(local.time()):
            return moment
        day = local.date()
        # Before midnight in a window that crosses it: the end is tomorrow.
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        return _local_to_utc(day, self.end, zone)


def _local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day at`` local time in UTC. A time repeated when clocks go back is its first
    occurrence; a time skipped when they go forward is read with the offset before the jump,
    which lands just after it (02:30 on a 02:00-03:00 gap is 03:30).

    >>> brussels = ZoneInfo("Europe/Brussels")
    >>> _local_to_utc(date(2026, 3, 29), time(2, 30), brussels).astimezone(brussels).time()
    datetime.time(3, 30)
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def zone_of(name: str) -> ZoneInfo:
    """The IANA timezone ``name``, with a clear error.

    >>> zone_of("Mars/Olympus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bot.pushes.quiet.QuietHoursError: unknown timezone 'Mars/Olympus' (an IANA name like ...)
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QuietHoursError(
            f"unknown timezone {name!r} (an IANA name like Europe/Brussels)"
        ) from None
