"""The outcome of a consultation ("you said, we did") as staff compose, check and publish it.

The file format is :mod:`surveys.outcomes`'s: a text per language, and optionally another
text per value of a contact attribute (a district). The console composes that file from a
form (:func:`outcome_source`); ``voxpop outcome publish`` reads it from disk; both check it
with :func:`check_outcome` and publish it with :func:`plan_outcome` and
:func:`publish_outcome`, which store it and push it to everyone who took part
(:mod:`bot.pushes.outcomes`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.consultations.preview import PREVIEW_CHANNELS, MessagePreview
from bot.consultations.pricing import PricedMessage
from bot.pushes.outcomes import outcome_push, publish
from bot.pushes.service import FireResult, Preview, Pushes, PushSpec
from bot.service import Service
from channels import sms
from channels.registry import renderer
from messages import Address, OutboundMessage
from storage.db import transaction
from storage.models import Contact, OutcomeRow, PushRow
from storage.pushes import participants
from surveys.model import Survey
from surveys.outcomes import Outcome, OutcomeReport, parse_outcome
from surveys.sms import sms_cost

__all__ = [
    "OutcomeCheck",
    "Planned",
    "PublishedOutcome",
    "PublishedRecord",
    "PublishedText",
    "SmsEstimate",
    "check_outcome",
    "outcome_source",
    "participant_values",
    "plan_outcome",
    "publish_outcome",
    "published_outcomes",
    "published_records",
    "sms_estimate",
]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class OutcomeCheck:
    """An outcome file checked: problems (``file:line``), and when it can be published,
    every text priced as SMS and rendered for each channel."""

    report: OutcomeReport
    #: The file as checked (what is stored when it is published).
    source: str
    prices: tuple[PricedMessage, ...] = ()
    previews: tuple[MessagePreview, ...] = ()

    @property
    def outcome(self) -> Outcome | None:
        return self.report.outcome


@dataclass(frozen=True)
class Planned:
    """An outcome push as it would go now: the push, and who it reaches."""

    spec: PushSpec
    preview: Preview


@dataclass(frozen=True)
class SmsEstimate:
    """What an outcome costs as SMS: each person on SMS gets one message, in their language
    (the longest of their language's texts when it is worded per district)."""

    people: int
    segments: int
    cost: float
    currency: str


@dataclass(frozen=True)
class PublishedOutcome:
    outcome_id: int
    push_id: int
    #: The push fired at once (its time had come): its recipients are planned.
    fired: FireResult | None


def outcome_source(
    slug: str,
    texts: Mapping[str, str],
    by: str = "",
    per_value: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """The outcome file for what staff typed in a form: a text per language, and another
    per value of the attribute ``by`` (empty texts are left out).

    >>> print(outcome_source("park", {"en": 'New "bins"', "nl": ""}, "district",
    ...                      {"north east": {"en": "A fountain"}}), end="")
    survey = "park"
    text.en = "New \\"bins\\""
    by = "district"
    <BLANKLINE>
    [texts."north east"]
    en = "A fountain"
    """
    lines = [f"survey = {_string(slug)}"]
    lines += [f"text.{_key(lang)} = {_string(text)}" for lang, text in texts.items() if text]
    chosen = {v: {k: t for k, t in tx.items() if t} for v, tx in (per_value or {}).items()}
    chosen = {value: found for value, found in chosen.items() if found}
    if by:
        lines.append(f"by = {_string(by)}")
    for value, found in chosen.items():
        lines += ["", f"[texts.{_key(value)}]"]
        lines += [f"{_key(lang)} = {_string(text)}" for lang, text in found.items()]
    return "\n".join(lines) + "\n"


def check_outcome(survey: Survey, data: bytes, name: str) -> OutcomeCheck:
    """Check an outcome file for ``survey`` (its languages are expected), price every text
    as SMS and render it for each channel, as it will be sent (a push message of its own)."""
    report = parse_outcome(data, name, survey.id, survey.languages)
    source = data.decode("utf-8-sig", errors="replace")
    outcome = report.outcome
    if outcome is None:
        return OutcomeCheck(report, source)
    prices: list[PricedMessage] = []
    previews: list[MessagePreview] = []
    # Named by their keys in the file: ``text``, ``texts.north``.
    tables = [("text", outcome.texts)] + [
        (f"texts.{value}", texts) for value, texts in outcome.per_value.items()
    ]
    for what, texts in tables:
        for language, text in texts.items():
            shown = sms.render(OutboundMessage(Address("sms", ""), text)).text
            prices.append(PricedMessage(language, what, shown, sms_cost(shown)))
            views = tuple(
                (channel, renderer(channel).render(OutboundMessage(Address(channel, ""), text)))
                for channel in PREVIEW_CHANNELS
            )
            label = "everyone" if what == "text" else f"{outcome.by} {what[len('texts.') :]}"
            previews.append(MessagePreview(language, label, views))
    return OutcomeCheck(report, source, tuple(prices), tuple(previews))


def plan_outcome(pushes: Pushes, outcome: Outcome, base: PushSpec) -> Planned:
    """The outcome's push (``base`` gives its time, channels, quiet hours and rate) and who
    it would reach now; :class:`bot.pushes.service.PushError` if it cannot be made."""
    spec = pushes.complete(outcome_push(outcome, base, base.created_by))
    return Planned(spec, pushes.preview(spec))


def sms_estimate(planned: Planned) -> SmsEstimate:
    """What the outcome costs as SMS (:class:`SmsEstimate`): the push's own preview prices
    the outcome's text each person on SMS gets, in their language
    (:func:`bot.pushes.service.outcome_segments`)."""
    preview = planned.preview
    return SmsEstimate(
        preview.by_channel.get("sms", 0), preview.sms_segments, preview.cost, preview.currency
    )


def publish_outcome(
    pushes: Pushes, service: Service, outcome: Outcome, source: str, planned: Planned
) -> PublishedOutcome:
    """Store the outcome and its push; a push whose time has come is fired at once (its
    recipients planned, the scheduler's tick sends them)."""
    published = publish(
        pushes, service, outcome, source, planned.spec, recipients=planned.preview.recipients
    )
    fired = pushes.fire(published.push_id) if planned.spec.at <= pushes.now() else None
    return PublishedOutcome(published.outcome_id, published.push_id, fired)


def participant_values(service: Service, slug: str, by: str) -> dict[str, int]:
    """The values of contact attribute ``by`` among those who took part in ``slug``, with
    how many have each, most first: the districts an outcome may be worded for."""
    with transaction(service.sessions, read_only=True) as s:
        took_part = participants(slug, completed=False)
        counts: Counter[str] = Counter()
        stmt = select(Contact.attributes).where(Contact.id.in_(took_part))
        for attributes in s.scalars(stmt.execution_options(yield_per=500)):
            value = (attributes or {}).get(by)
            if value not in (None, ""):
                counts[str(value)] += 1
        return dict(counts.most_common())


def published_outcomes(service: Service, slug: str | None = None) -> list[OutcomeRow]:
    """The outcomes published (of ``slug``, or all), newest first."""
    with transaction(service.sessions, read_only=True) as s:
        stmt = select(OutcomeRow).order_by(OutcomeRow.published_at.desc(), OutcomeRow.id.desc())
        if slug:
            stmt = stmt.where(OutcomeRow.survey_slug == slug)
        rows = list(s.scalars(stmt))
        s.expunge_all()
        return rows


@dataclass(frozen=True)
class PublishedText:
    """One text of a published outcome: for everyone (``group`` ``None``) or for those whose
    attribute ``by`` is ``group``, in ``language``."""

    group: str | None
    language: str
    text: str


@dataclass(frozen=True)
class PublishedRecord:
    """A published outcome as staff read it back: what, when, by whom, and its push."""

    id: int
    published_at: datetime
    #: Who published it (the push's maker, ``staff:<email>``), or ``None`` if not recorded.
    by: str | None
    push_id: int | None
    #: The contact attribute of the group texts (a district), if any.
    attribute: str | None
    texts: tuple[PublishedText, ...]


def published_records(service: Service, slug: str) -> list[PublishedRecord]:
    """The outcomes published for ``slug``, newest first, with every text as it was sent."""
    with transaction(service.sessions, read_only=True) as s:
        stmt = (
            select(OutcomeRow, PushRow.created_by)
            .outerjoin(PushRow, PushRow.id == OutcomeRow.push_id)
            .where(OutcomeRow.survey_slug == slug)
            .order_by(OutcomeRow.published_at.desc(), OutcomeRow.id.desc())
        )
        found: list[PublishedRecord] = []
        for row, by in s.execute(stmt):
            message = row.message or {}
            texts = [
                PublishedText(None, language, text)
                for language, text in (message.get("texts") or {}).items()
            ]
            for value, wording in (message.get("values") or {}).items():
                texts += [PublishedText(value, lang, text) for lang, text in wording.items()]
            found.append(
                PublishedRecord(
                    row.id,
                    row.published_at,
                    by,
                    row.push_id,
                    message.get("by"),
                    tuple(texts),
                )
            )
        return found


def _string(text: str) -> str:
    # A JSON string is a TOML basic string: the same quotes and escapes (but TOML's DEL).
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)
