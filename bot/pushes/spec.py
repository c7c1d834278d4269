"""What staff ask for when they make a push, and the rules its values must keep. Pure."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.pushes.audience import Audience
from bot.pushes.quiet import QuietHours, QuietHoursError, zone_of

#: The channels a push can use.
CHANNELS = ("sms", "whatsapp", "telegram")
#: The slowest rate a push may have, per second (1 per day).
MIN_RATE = 1 / 86400


class PushError(ValueError):
    """A push that cannot be made as asked; the message says why, ``field`` which field of
    the form (:data:`bot.pushes.form.FIELDS`) it concerns."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Variant:
    """One wording of the invitation's first message, by language (``*``: any language)."""

    name: str
    texts: Mapping[str, str]

    def text_for(self, language: str, default: str) -> str | None:
        return self.texts.get(language) or self.texts.get("*") or self.texts.get(default)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "texts": dict(self.texts)}


@dataclass(frozen=True)
class Reminders:
    """Remind those who did not start or stopped halfway, ``most`` times: each ``after`` the
    invitation, their last answer or the last reminder, whichever came last."""

    after: timedelta
    most: int = 1

    def to_json(self) -> dict[str, float | int]:
        return {"after_hours": self.after.total_seconds() / 3600, "max": self.most}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Reminders | None:
        if not data:
            return None
        return cls(timedelta(hours=float(data["after_hours"])), int(data["max"]))


@dataclass(frozen=True)
class PushSpec:
    """What staff ask for; :meth:`Pushes.create` stores it as a row."""

    survey: str
    at: datetime
    audience: Audience = field(default_factory=Audience)
    channels: tuple[str, ...] = ()
    timezone: str = ""
    #: ``"21:00-09:00"``; ``""`` for none; ``None`` for the config's.
    quiet_hours: str | None = None
    rate_per_second: float = 0.0
    variants: tuple[Variant, ...] = ()
    reminders: Reminders | None = None
    kind: str = "invitation"
    #: An outcome push's message (see :mod:`bot.pushes.outcomes`).
    message: Mapping[str, Any] | None = None
    created_by: str = "staff"

    @functools.cached_property
    def quiet(self) -> QuietHours | None:
        # Parsed once: planning asks for every recipient.
        return QuietHours.parse(self.quiet_hours or "")


def spec_problems(spec: PushSpec) -> list[tuple[str, str]]:
    """What is wrong with a push's values, as ``(field, problem)``; empty when nothing is.
    The defaults must be filled in first (:meth:`bot.pushes.service.Pushes.complete`).

    >>> from datetime import UTC
    >>> at = datetime(2026, 12, 1, tzinfo=UTC)
    >>> spec_problems(PushSpec("park", at, channels=("sms",), timezone="UTC", rate_per_second=5))
    []
    >>> spec_problems(PushSpec("park", at, channels=("fax",), timezone="Mars/Base"))
    ... # doctest: +NORMALIZE_WHITESPACE
    [('channels', "unknown channel 'fax': choose sms, whatsapp or telegram"),
     ('timezone', "unknown timezone 'Mars/Base' (an IANA name like Europe/Brussels)"),
     ('rate', 'the rate must be above 0 per second')]
    """
    problems: list[tuple[str, str]] = []
    for channel in spec.channels:
        if channel not in CHANNELS:
            problems.append(
                ("channels", f"unknown channel {channel!r}: choose sms, whatsapp or telegram")
            )
    if not spec.channels:
        problems.append(("channels", "choose at least one channel"))
    try:
        zone_of(spec.timezone)
    except QuietHoursError as exc:
        problems.append(("timezone", str(exc)))
    try:
        QuietHours.parse(spec.quiet_hours or "")
    except QuietHoursError as exc:
        problems.append(("quiet_hours", str(exc)))
    if spec.rate_per_second <= 0:
        problems.append(("rate", "the rate must be above 0 per second"))
    elif spec.rate_per_second < MIN_RATE:
        # Slower would spread a large audience past any sensible date (and past year 9999).
        problems.append(("rate", "the rate must be at least 1 per day"))
    reminders = spec.reminders
    if reminders is not None and (reminders.most < 1 or reminders.after <= timedelta(0)):
        problems.append(("remind_after", "reminders need a positive interval and count"))
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names):
        problems.append(("variants", "two wordings have the same name: give each its own"))
    return problems
