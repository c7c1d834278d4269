"""Audiences: which contacts a push reaches, and on which of their addresses. Pure.

An audience is a filter: channels, languages, attribute values (``district = north or east``),
tags, and whether the contact took part in, or has not answered, given consultations. The
filter never overrides consent: an address is reachable only with a consent record, not opted
out and not reported invalid (:func:`reachable`). The one exception is an outcome, which goes
to those who took part: taking part was their consent to hear back.

The database applies the filter to every contact at once (``storage.pushes.audience``: one
statement that the preview counts and planning streams); :func:`reachable` checks one address
again when its invitation is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class AudienceError(ValueError):
    """A filter that cannot be used; the message says why."""


@dataclass(frozen=True)
class Audience:
    """Contacts matching every part that is set; an empty audience is everyone reachable."""

    channels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    #: Attribute name -> accepted values (any of them).
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The contact has every one of these tags.
    tags: tuple[str, ...] = ()
    #: Survey ids the contact has not completed.
    not_answered: tuple[str, ...] = ()
    #: Survey ids the contact answered at least one question of.
    took_part: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "languages": list(self.languages),
            "where": {k: list(v) for k, v in self.where.items()},
            "tags": list(self.tags),
            "not_answered": list(self.not_answered),
            "took_part": list(self.took_part),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Audience:
        return cls(
            channels=tuple(data.get("channels", ())),
            languages=tuple(data.get("languages", ())),
            where={str(k): tuple(v) for k, v in data.get("where", {}).items()},
            tags=tuple(data.get("tags", ())),
            not_answered=tuple(data.get("not_answered", ())),
            took_part=tuple(data.get("took_part", ())),
        )

    def describe(self) -> str:
        """One line for staff.

        >>> Audience(channels=("sms",), where={"district": ("north", "east")}).describe()
        'channel sms; district = north or east'
        >>> Audience().describe()
        'everyone who agreed to be contacted'
        """
        parts = []
        if self.channels:
            parts.append("channel " + " or ".join(self.channels))
        if self.languages:
            parts.append("language " + " or ".join(self.languages))
        parts += [f"{name} = {' or '.join(values)}" for name, values in self.where.items()]
        parts += [f"tagged {tag}" for tag in self.tags]
        parts += [f"has not answered {slug}" for slug in self.not_answered]
        parts += [f"took part in {slug}" for slug in self.took_part]
        return "; ".join(parts) or "everyone who agreed to be contacted"


def parse_where(items: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Attribute filters (``--where district=north,east``, a line of the console's form):
    name -> values; one name per item.

    >>> parse_where(["district=north,east", "age_band=65+"])
    {'district': ('north', 'east'), 'age_band': ('65+',)}
    >>> parse_where(["district"])
    Traceback (most recent call last):
    ...
    bot.pushes.audience.AudienceError: an attribute needs NAME=VALUE[,VALUE...], got 'district'
    """
    found: dict[str, tuple[str, ...]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        chosen = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not name.strip() or not chosen:
            raise AudienceError(f"an attribute needs NAME=VALUE[,VALUE...], got {item!r}")
        if name.strip() in found:
            raise AudienceError(f"attribute {name.strip()} is given twice: list its values once")
        found[name.strip()] = chosen
    return found


@dataclass(frozen=True)
class AddressView:
    channel: str
    value: str
    consent_at: datetime | None
    opted_out_at: datetime | None
    invalid_at: datetime | None


def reachable(address: AddressView, *, consent: bool = True) -> bool:
    """Consent recorded (unless ``consent`` is False: an outcome goes to everyone who took
    part, their consent for hearing back), not opted out, not reported invalid."""
    return (
        (address.consent_at is not None or not consent)
        and address.opted_out_at is None
        and address.invalid_at is None
    )
