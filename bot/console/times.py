"""Dates and times on the console's pages: one format, in the city's time zone.

Every page shows a time as ``7 Dec 2026, 14:05`` in the city's time zone (``[pushes]
timezone``), and names the zone once, on the first time of the page: ``7 Dec 2026, 14:05
(Europe/Brussels)``. A time in another zone (a contact's own) always names its zone. Templates
use the ``when`` filter; the live scripts get the same text from :func:`local_time`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g, has_request_context
from markupsafe import Markup, escape

from bot.console.context import console
from messages import channel_label


def zone_named(name: str | None) -> ZoneInfo:
    """The zone called ``name``, else the city's, else UTC (a contact file's typo is no 500)."""
    for candidate in (name, _city_zone_name()):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ValueError, ZoneInfoNotFoundError):
                continue
    return ZoneInfo("UTC")


def _city_zone_name() -> str:
    return console().config.pushes.timezone


def city_zone() -> ZoneInfo:
    """The city's time zone (``[pushes] timezone``)."""
    return zone_named(None)


def format_time(value: datetime, zone: ZoneInfo, *, day_only: bool = False) -> str:
    """``value`` in ``zone`` as staff read it, without the zone's name.

    >>> at = datetime(2026, 12, 7, 13, 5, tzinfo=UTC)
    >>> format_time(at, ZoneInfo("Europe/Brussels"))
    '7 Dec 2026, 14:05'
    >>> format_time(at, ZoneInfo("Europe/Brussels"), day_only=True)
    '7 Dec 2026'
    """
    if value.tzinfo is None:  # stored in UTC (SQLite hands naive values back)
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(zone)
    day = f"{shown.day} {shown:%b %Y}"
    return day if day_only else f"{day}, {shown:%H:%M}"


def format_day(value: date) -> str:
    """A calendar day: ``Mon 7 Dec 2026``.

    >>> format_day(date(2026, 12, 7))
    'Mon 7 Dec 2026'
    """
    return f"{value:%a} {value.day} {value:%b %Y}"


def local_time(value: datetime, zone_name: str | None = None, *, day_only: bool = False) -> str:
    """``value`` as every page shows it: in ``zone_name`` (else the city's zone), with the
    zone's name the first time a page shows a time, and always for a zone not the city's."""
    zone = zone_named(zone_name)
    text = format_time(value, zone, day_only=day_only)
    if day_only:
        return text
    city = zone.key == city_zone().key
    if not city or not _named_already():
        text += f" ({zone.key})"
    return text


def _named_already() -> bool:
    """Whether this page named the city's zone already (and remember that it has now)."""
    if not has_request_context():
        return False
    done = bool(g.get("voxpop_zone_named"))
    g.voxpop_zone_named = True
    return done


def when(
    value: datetime | None,
    zone_name: str | None = None,
    day_only: bool = False,
    *,
    named: bool = False,
) -> Markup:
    """The ``when`` filter: a ``<time>`` element with the machine-readable instant, and
    ``–`` for no time. ``named`` names the zone even if the page did already (a time that
    stands alone, far from the first)."""
    if value is None:
        return Markup("–")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = local_time(value, zone_name, day_only=day_only)
    if named and not day_only and not text.endswith(")"):
        text += f" ({zone_named(zone_name).key})"
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), escape(text))


def zone_header(label: str) -> str:
    """A table's column header over times: ``Closes (Europe/Brussels time)``. It names the
    city's zone for the page, so the cells below (and later times) need not repeat it."""
    if has_request_context():
        g.voxpop_zone_named = True
    return f"{label} ({city_zone().key} time)"


_ISO_INSTANT: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})"
)


def detail(value: object) -> object:
    """An audit entry's detail as staff read it: an instant (stored as ISO text in UTC) shown
    as every time is, anything else as it is."""
    if isinstance(value, str) and _ISO_INSTANT.fullmatch(value):
        try:
            return when(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


#: What a day field's hint says it takes (:func:`parse_day`).
DAY_HINT: Final = "For example 2026-12-01 or 1/12/2026"
_DAY_FORMS: Final = (
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(r"(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})"),
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_NAMED: Final = re.compile(r"(?P<d>\d{1,2}) (?P<m>[a-z]{3})[a-z]* (?P<y>\d{4})")


def parse_day(raw: str) -> date:
    """A day typed in a date field: ``2026-12-01``, ``1/12/2026`` (day first, as in Europe)
    or ``1 Dec 2026`` (as the pages show days). :class:`ValueError` for anything else.

    >>> parse_day("2026-12-01"), parse_day(" 1/12/2026 "), parse_day("1 December 2026")
    (datetime.date(2026, 12, 1), datetime.date(2026, 12, 1), datetime.date(2026, 12, 1))
    >>> parse_day("31/02/2026")
    Traceback (most recent call last):
    ValueError: day is out of range for month
    """
    text = " ".join(raw.strip().lower().split())
    if text.isascii():
        for form in _DAY_FORMS:
            found = form.fullmatch(text)
            if found:
                return _sensible(date(int(found["y"]), int(found["m"]), int(found["d"])))
        named = _NAMED.fullmatch(text)
        if named and named["m"] in _MONTHS:
            return _sensible(date(int(named["y"]), _MONTHS[named["m"]], int(named["d"])))
    raise ValueError(f"not a day: {raw[:20]!r}")


#: The years a day field takes. A consultation's answers and the audit log lie well inside;
#: the edges of Python's calendar (year 1, 9999) overflow once turned into UTC or a day is
#: added, so they are refused as typing mistakes.
DAY_YEARS: Final = range(1900, 3000)


def _sensible(day: date) -> date:
    """``day`` when its year is in :data:`DAY_YEARS`, else :class:`ValueError`.

    >>> _sensible(date(9999, 12, 31))
    Traceback (most recent call last):
    ValueError: the year 9999 is not between 1900 and 2999
    """
    if day.year not in DAY_YEARS:
        raise ValueError(f"the year {day.year} is not between 1900 and 2999")
    return day


def install_times(app: Flask) -> None:
    """The ``when``, ``detail``, ``day`` and ``channel`` filters and ``zone_header``, for
    every console template."""
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["detail"] = detail
    app.jinja_env.globals["zone_header"] = zone_header
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["channel"] = channel_label
    app.jinja_env.globals["day_hint"] = DAY_HINT
