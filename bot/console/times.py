"""Dates and times on the console's pages: one format, in the city's time zone.

Every page shows a time as ``7 Dec 2026, 14:05`` in the city's time zone (``[pushes]
timezone``), and names the zone once, on the first time of the page: ``7 Dec 2026, 14:05
(Europe/Brussels)``. A time in another zone (a contact's own) always names its zone. Templates
use the ``when`` filter; the live scripts get the same text from :func:`local_time`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
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


def when(value: datetime | None, zone_name: str | None = None, day_only: bool = False) -> Markup:
    """The ``when`` filter: a ``<time>`` element with the machine-readable instant, and
    ``–`` for no time."""
    if value is None:
        return Markup("–")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = local_time(value, zone_name, day_only=day_only)
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), escape(text))


def install_times(app: Flask) -> None:
    """The ``when``, ``day`` and ``channel`` filters, for every console template."""
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["channel"] = channel_label
