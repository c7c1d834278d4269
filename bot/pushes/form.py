"""What staff type to make a push, read into a :class:`~bot.pushes.service.PushSpec`. Pure.

The console's form and ``voxpop push`` give the same text fields (a time, a rate, a window of
quiet hours, filters...) to :func:`read_form`, which returns the spec, or every problem
attached to the field it concerns, so a page can show each one next to its field and the CLI
can name its option. :meth:`bot.pushes.service.Pushes.check` adds what needs the database
(the consultations named exist) and the config's defaults.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.pushes.audience import Audience, AudienceError, parse_where
from bot.pushes.quiet import QuietHours, QuietHoursError, zone_of
from bot.pushes.spec import PushSpec, Reminders, Variant, spec_problems

_RELATIVE = re.compile(r"^(?:now)?\s*\+\s*(\d+)\s*([smhd])$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}
#: A wording longer than this is a mistake (ten SMS segments of GSM-7).
VARIANT_LIMIT = 1530

#: The fields of the form, in the order a page shows them (and problems are listed).
FIELDS = (
    "survey",
    "at",
    "timezone",
    "channels",
    "languages",
    "where",
    "tags",
    "not_answered",
    "took_part",
    "quiet_hours",
    "rate",
    "remind_after",
    "reminders",
    "variants",
)


class FormError(ValueError):
    """One field's problem."""


@dataclass(frozen=True)
class PushForm:
    """A push as typed: every value is text, as a form or the command line gives it. Lists
    may hold comma-separated values (``"sms, telegram"``); empty ones are ignored."""

    survey: str = ""
    #: ``now``, ``+10m``, ``2026-12-01 10:00`` (in ``timezone``), ``2026-12-01T10:00``...
    at: str = ""
    timezone: str = ""
    channels: Sequence[str] = ()
    languages: Sequence[str] = ()
    #: ``district=north,east``, one attribute each.
    where: Sequence[str] = ()
    tags: Sequence[str] = ()
    not_answered: Sequence[str] = ()
    took_part: Sequence[str] = ()
    #: ``21:00-09:00``; ``""`` for none; ``None`` for the config's.
    quiet_hours: str | None = None
    #: ``50/s``, ``600/min``; ``""`` for the config's.
    rate: str = ""
    #: ``24h``, ``90m``; ``""`` for no reminders.
    remind_after: str = ""
    #: How many reminders at most; ``""`` for one.
    reminders: str = ""
    #: Wordings for every language, named A, B, C... in order (blank ones are skipped).
    variant_texts: Sequence[str] = ()
    #: A TOML text of wordings per language (``[A] en = "..."``) and where it came from.
    variants_toml: str | None = None
    variants_source: str = "variants"
    created_by: str = "staff"


@dataclass(frozen=True)
class Checked:
    """A form read: the spec when there is no problem, and the problems by field."""

    spec: PushSpec | None
    problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    def listed(self) -> list[tuple[str, str]]:
        """``(field, problem)`` in the form's order."""
        order = {name: index for index, name in enumerate(FIELDS)}
        return [
            (name, problem)
            for name in sorted(self.problems, key=lambda n: order.get(n, len(order)))
            for problem in self.problems[name]
        ]


class Problems:
    """Problems gathered field by field."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, name: str, problem: str) -> None:
        self.found.setdefault(name, []).append(problem)

    def frozen(self) -> dict[str, tuple[str, ...]]:
        return {name: tuple(found) for name, found in self.found.items()}


def split(values: Sequence[str]) -> tuple[str, ...]:
    """Values given several times or comma-separated, blanks dropped, each once, in order.

    >>> split(["sms, telegram", "", "sms"])
    ('sms', 'telegram')
    """
    found = (part.strip() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(part for part in found if part))


def parse_at(text: str, timezone: str, now: datetime) -> datetime:
    """``now``, ``+30s``/``+10m``/``+2h``/``+1d``, ``2026-12-01 10:00`` (in ``timezone``), or an
    ISO time with an offset; in UTC.

    >>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    >>> parse_at("+1m", "Europe/Brussels", now)
    datetime.datetime(2026, 12, 1, 9, 1, tzinfo=datetime.timezone.utc)
    >>> parse_at("2026-12-01T10:00", "Europe/Brussels", now)
    datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)
    """
    value = text.strip().lower()
    if not value:
        raise FormError("say when: now, +10m, or a date and time such as 2026-12-01 10:00")
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now + _within_reach(float(relative.group(1)) * _UNITS[relative.group(2)], text)
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone_of(timezone))
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FormError(
            f"{text!r} is not a time: use now, +10m, +2h, '2026-12-01 10:00' or an ISO time "
            "with an offset"
        ) from None
    _within_reach((moment - now).total_seconds(), text)
    return moment


def parse_rate(text: str) -> float:
    """``50/s``, ``600/min``, ``1000/h`` or a plain number per second.

    >>> parse_rate("600/min"), parse_rate("20")
    (10.0, 20.0)
    """
    match = _RATE.match(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise FormError(f"{text!r} is not a rate: use 50/s, 600/min or 1000/h")
    return float(match.group(1)) / _PER[match.group(2) or "s"]


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d`` (``30s`` too, to try reminders out).

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    match = _DURATION.match(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise FormError(f"{text!r} is not a duration: use 24h, 90m or 2d")
    return _within_reach(float(match.group(1)) * _UNITS[match.group(2)], text)


#: How far from now a push's time, or a duration, may reach: ten years. Further is a typing
#: mistake (and past the calendar's end, an overflow).
MAX_YEARS: Final = 10
MAX_REACH: Final = timedelta(days=round(365.25 * MAX_YEARS))


def _within_reach(seconds: float, text: str) -> timedelta:
    """``seconds`` as a duration when it is no further than :data:`MAX_REACH` either way,
    else a :class:`FormError` naming ``text``.

    >>> _within_reach(99999999999 * 86400.0, "+99999999999d")
    Traceback (most recent call last):
    bot.pushes.form.FormError: '+99999999999d' is too far away: use a time within 10 years
    """
    if abs(seconds) > MAX_REACH.total_seconds():
        raise FormError(f"{text!r} is too far away: use a time within {MAX_YEARS} years")
    return timedelta(seconds=seconds)


def parse_variants(
    texts: Sequence[str], toml: str | None, source: str = "variants"
) -> tuple[Variant, ...]:
    """Wordings for every language (named A, B, C... in order) and, from a TOML text, wordings
    per language (``[A] en = "..." nl = "..."``).

    >>> [v.name for v in parse_variants(["Hi", " ", "Hello"], '[Mine]\\nen = "Hey"')]
    ['A', 'B', 'Mine']
    """
    given = [text.strip() for text in texts if text.strip()]
    variants = [Variant(chr(ord("A") + index), {"*": text}) for index, text in enumerate(given)]
    if toml is not None:
        try:
            data = tomllib.loads(toml)
        except tomllib.TOMLDecodeError as exc:
            raise FormError(f"{source}: {exc}") from None
        for name, table in data.items():
            if not isinstance(table, dict) or not all(
                isinstance(v, str) and v.strip() for v in table.values()
            ):
                raise FormError(f'{source}: [{name}] needs a text per language, like en = "..."')
            variants.append(Variant(str(name), {str(k): str(v) for k, v in table.items()}))
    names = [v.name for v in variants]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FormError(f"two wordings are named {twice[0]}: give each its own name")
    for variant in variants:
        if any(len(text) > VARIANT_LIMIT for text in variant.texts.values()):
            raise FormError(f"wording {variant.name} is too long (at most {VARIANT_LIMIT})")
    return tuple(variants)


def read_form(
    form: PushForm,
    *,
    timezone: str,
    quiet_hours: str,
    rate: float,
    channels: Sequence[str],
    now: datetime,
) -> Checked:
    """The spec the form asks for, with the given defaults (the config's timezone, quiet
    hours, rate and channels) where it leaves a field empty; or every problem, by field.

    >>> now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    >>> bad = PushForm(survey="park", at="soon", rate="fast", channels=["sms", "fax"])
    >>> defaults = dict(timezone="UTC", quiet_hours="", rate=10, channels=["sms"])
    >>> read_form(bad, now=now, **defaults).listed()  # doctest: +NORMALIZE_WHITESPACE
    [('at', "'soon' is not a time: use now, +10m, +2h, '2026-12-01 10:00' or an ISO time
      with an offset"), ('channels', "unknown channel 'fax': choose sms, whatsapp or
      telegram"), ('rate', "'fast' is not a rate: use 50/s, 600/min or 1000/h")]
    """
    problems = Problems()
    survey = form.survey.strip()
    if not survey:
        problems.add("survey", "choose the consultation to send")
    zone = form.timezone.strip() or timezone
    try:
        zone_of(zone)
    except QuietHoursError:
        zone = timezone  # the spec's own check below names the timezone's problem
    at = now
    try:
        at = parse_at(form.at, zone, now)
    except FormError as exc:
        problems.add("at", str(exc))
    where: dict[str, tuple[str, ...]] = {}
    try:
        where = parse_where(item for item in form.where if item.strip())
    except AudienceError as exc:
        problems.add("where", str(exc))
    for name in where:
        if '"' in name or "\\" in name:
            problems.add("where", f"an attribute name has no quotes or backslashes: {name!r}")
    quiet_text = quiet_hours if form.quiet_hours is None else form.quiet_hours.strip()
    per_second = rate
    if form.rate.strip():
        try:
            per_second = parse_rate(form.rate)
        except FormError as exc:
            problems.add("rate", str(exc))
    reminders = None
    most = 1
    if form.reminders.strip():
        try:
            most = int(form.reminders.strip())
        except ValueError:
            most = 0
        if most < 1:
            problems.add("reminders", f"{form.reminders.strip()!r} is not a number of reminders")
        elif not form.remind_after.strip():
            problems.add("remind_after", "say how long to wait before reminding (24h, 90m...)")
    if form.remind_after.strip():
        try:
            reminders = Reminders(parse_duration(form.remind_after), max(most, 1))
        except FormError as exc:
            problems.add("remind_after", str(exc))
    variants: tuple[Variant, ...] = ()
    try:
        variants = parse_variants(form.variant_texts, form.variants_toml, form.variants_source)
    except FormError as exc:
        problems.add("variants", str(exc))
    chosen = split(form.channels)
    audience = Audience(
        channels=chosen,
        languages=split(form.languages),
        where=where,
        tags=split(form.tags),
        not_answered=split(form.not_answered),
        took_part=split(form.took_part),
    )
    spec = PushSpec(
        survey=survey,
        at=at,
        audience=audience,
        channels=chosen or tuple(channels),
        timezone=form.timezone.strip() or timezone,
        quiet_hours=quiet_text,
        rate_per_second=per_second,
        variants=variants,
        reminders=reminders,
        created_by=form.created_by,
    )
    for name, problem in spec_problems(spec):
        if name not in problems.found:  # a field that did not parse has said why already
            problems.add(name, problem)
    if problems.found:
        return Checked(None, problems.frozen())
    quiet = QuietHours.parse(quiet_text)
    return Checked(replace(spec, quiet_hours=str(quiet) if quiet else ""))
