"""Pushes: a consultation (or its outcome) sent to an audience at a chosen time.

A push is a row (``pushes``), the truth staff see. The scheduler (:mod:`bot.pushes.scheduler`) only
wakes this module up: :meth:`Pushes.fire` when a push falls due, :meth:`Pushes.tick` every
few seconds for what falls due in between. Both take the time from the injected clock, so
tests drive them with a fixed one.

Firing *plans*: it streams the contacts, keeps those in the audience with a reachable address
(consent recorded, not opted out), and inserts one ``push_recipients`` row each with the time
its invitation is due: the push's time, spread at its rate, moved out of the contact's quiet
hours. The unique ``(push, contact)`` makes a second fire plan nobody twice. The tick then
*invites*: each due recipient, in its own short transaction, gets the consultation begun and
its first messages written to the outbox, unless they are in the middle of another
consultation (they wait until it ends or expires), opted out since, or took part already.
The tick also sends reminders, ends idle conversations, and closes what has closed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.config import Config, configured_channels
from bot.conversation import engine
from bot.conversation.i18n import N_, t
from bot.pushes.audience import AddressView, Audience, reachable
from bot.pushes.form import Checked, PushForm, read_form, split
from bot.pushes.quiet import QuietHours, QuietHoursError, zone_of
from bot.pushes.spec import PushError as PushError
from bot.pushes.spec import PushSpec as PushSpec
from bot.pushes.spec import Reminders as Reminders
from bot.pushes.spec import Variant as Variant
from bot.pushes.spec import spec_problems
from bot.pushes.stats import FunnelRow, funnel
from bot.service import Clock, Service, utc_now
from bot.wording import plural
from channels import sms
from messages import Address as MessageAddress
from messages import OutboundMessage, channel_label
from storage import pushes as store
from storage import repo
from storage.db import transaction
from storage.models import (
    Address,
    Contact,
    Message,
    PushRecipient,
    PushRow,
    SessionRow,
    SurveyRow,
)
from surveys.model import Survey
from surveys.outcomes import text_for

log = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Someone in the middle of another consultation is looked at again this much later.
BUSY_RETRY = timedelta(minutes=15)
#: Invitations written per tick at most: the tick must end well before the next one.
INVITES_PER_TICK = 2000


@dataclass(frozen=True)
class Preview:
    """Who a push would reach, before it is made: counted in the database, so it is quick
    enough to run on every change of the console's form."""

    #: Contacts a firing now would plan (as ``planned`` in the push's report).
    recipients: int
    by_channel: Mapping[str, int]
    by_language: Mapping[str, int]
    #: ``(channel, language) -> recipients``.
    by_channel_language: Mapping[tuple[str, str], int]
    #: In the audience but not planned, by reason (``storage.pushes.LEFT_OUT``, in that order).
    left_out: Mapping[str, int]
    #: Of the recipients, answering this consultation now: counted as invited, sent nothing.
    answering: int
    #: Of the recipients, in another consultation now: invited when it ends.
    busy: int
    sms_segments: int
    cost: float
    currency: str
    #: ``language they get -> {language they chose: recipients}``, for those who chose a
    #: language the consultation lacks.
    fallback: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: When the first invitations go, if quiet hours (in the push's time zone) hold them.
    quiet_until: datetime | None = None

    @property
    def left_out_total(self) -> int:
        return sum(self.left_out.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "by_channel": dict(self.by_channel),
            "by_language": dict(self.by_language),
            "by_channel_language": [
                {"channel": c, "language": lang, "recipients": n}
                for (c, lang), n in sorted(self.by_channel_language.items())
            ],
            "left_out": [{"reason": why, "contacts": n} for why, n in self.left_out.items()],
            "left_out_total": self.left_out_total,
            "answering": self.answering,
            "busy": self.busy,
            "sms_segments": self.sms_segments,
            "cost": self.cost,
            "currency": self.currency,
            "fallback": {k: dict(v) for k, v in self.fallback.items()},
            "quiet_until": self.quiet_until.isoformat() if self.quiet_until else None,
        }


@dataclass(frozen=True)
class FireResult:
    """What firing a push did: ``planned`` recipients, or why nothing happened."""

    push_id: int
    #: ``"fired"``, ``"already fired"``, ``"missed"``, ``"cancelled"``, ``"unknown"``.
    outcome: str
    planned: int = 0


@dataclass(frozen=True)
class TickReport:
    invited: int = 0
    postponed: int = 0
    skipped: int = 0
    reminded: int = 0
    expired: int = 0
    finished: int = 0


@dataclass(frozen=True)
class PushReport:
    """A push as staff see it: the row, its counts overall, per channel and per variant."""

    push: PushRow
    total: store.PushCounts
    by_channel: Mapping[str, store.PushCounts]
    by_variant: Mapping[str, store.PushCounts]
    #: Why recipients were skipped or are waiting: reason -> count.
    reasons: Mapping[str, int]
    #: The channels this Voxpop can send on (``bot.config.configured_channels``).
    configured: tuple[str, ...] = ()
    #: When the first planned recipient still waiting is due (quiet hours end, their turn).
    next_due: datetime | None = None

    def funnel(self) -> list[FunnelRow]:
        """Planned, sent, delivered, started, completed, for all, per channel, per variant."""
        return funnel(self.total, self.by_channel, self.by_variant)

    def not_invited(self) -> dict[str, int]:
        """Why recipients were not invited (yet), reason -> count; those waiting for no
        recorded reason wait for their turn at the push's rate."""
        reasons = dict(self.reasons)
        explained = sum(n for why, n in reasons.items() if why in WAITING_REASONS)
        if self.total.waiting > explained:
            reasons["their turn at the push's rate"] = self.total.waiting - explained
        return dict(sorted(reasons.items()))

    def not_invited_yet(self) -> dict[str, int]:
        """Of :meth:`not_invited`, those still waiting: they will be invited."""
        later = WAITING_REASONS | {"their turn at the push's rate"}
        return {why: n for why, n in self.not_invited().items() if why in later}

    def never_invited(self) -> dict[str, int]:
        """Of :meth:`not_invited`, those skipped or cancelled: they never will be."""
        yet = self.not_invited_yet()
        return {why: n for why, n in self.not_invited().items() if why not in yet}

    def unset_channels(self) -> list[str]:
        """The channels with messages of this push waiting in the outbox that no provider
        is set up for: those wait until one is."""
        return [c for c, n in self.by_channel.items() if n.queued and c not in self.configured]

    def unsent(self) -> str:
        """Invitations written but still in the outbox, and why, in a sentence; ``""`` if
        none: ``4 invitations waiting to be sent; no SMS channel is set up``.

        >>> from storage.pushes import PushCounts
        >>> queued = PushCounts(4, 4, 0, 0, 0, 0, 0, 0, 0, queued=4)
        >>> row = PushRow(kind="invitation", status="done")
        >>> report = PushReport(row, queued, {"sms": queued}, {}, {})
        >>> report.status_text()
        'done: 4 invitations waiting to be sent; no SMS channel is set up'
        >>> replace(report, configured=("sms",)).unsent()
        '4 invitations waiting to be sent'
        """
        n = self.total.queued
        if not n:
            return ""
        what = "invitation" if self.push.kind == "invitation" else "message"
        text = f"{plural(n, what)} waiting to be sent"
        unset = [channel_label(c) for c in self.unset_channels()]
        if unset:
            text += f"; no {' or '.join(unset)} channel is set up"
        return text

    def status_text(self) -> str:
        """The push's status, and what still waits to be sent when there is any: a push
        that planned everyone is ``done`` even while its messages sit in the outbox."""
        unsent = self.unsent()
        return f"{self.push.status}: {unsent}" if unsent else self.push.status

    def to_json(self) -> dict[str, Any]:
        """What the console's push page polls while the push runs."""
        row = self.push
        return {
            "id": row.id,
            "status": row.status,
            "status_text": self.status_text(),
            "queued": self.total.queued,
            "planned": row.planned,
            "funnel": [r.to_json() for r in self.funnel()],
            "reminders": self.total.reminders,
            "not_invited": self.not_invited(),
        }


#: Reasons a planned recipient waits (the others say why one was skipped or cancelled).
WAITING_REASONS = frozenset({"quiet hours", "in another consultation"})


class Pushes:
    """Voxpop's push use cases over one database; build once per process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        service: Service,
        config: Config,
        *,
        clock: Clock = utc_now,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._config = config
        self._clock = clock
        self._on_outbox = on_outbox
        self._zones: dict[str, ZoneInfo] = {}

    def now(self) -> datetime:
        return self._clock()

    # --- making a push ----------------------------------------------------------------------

    def complete(self, spec: PushSpec) -> PushSpec:
        """``spec`` with the config's defaults filled in and checked (:exc:`PushError`, with
        the field, at the first problem)."""
        pushes = self._config.pushes
        quiet = pushes.quiet_hours if spec.quiet_hours is None else spec.quiet_hours
        done = replace(
            spec,
            channels=tuple(spec.channels or spec.audience.channels or pushes.channels),
            timezone=spec.timezone or pushes.timezone,
            quiet_hours=quiet,
            rate_per_second=spec.rate_per_second or pushes.rate_per_second,
        )
        problems = spec_problems(done)
        if problems:
            name, problem = problems[0]
            raise PushError(problem, name)
        return replace(done, quiet_hours=str(done.quiet or ""))

    def check(self, form: PushForm) -> Checked:
        """Read a push as staff typed it (the console's form, ``voxpop push``'s options):
        the completed spec, or every problem by field, the consultations it names included.
        The one reading of a push's fields: the CLI and the console both call it."""
        pushes = self._config.pushes
        checked = read_form(
            form,
            timezone=pushes.timezone,
            quiet_hours=pushes.quiet_hours,
            rate=pushes.rate_per_second,
            channels=pushes.channels,
            now=self._clock(),
        )
        problems = {name: list(found) for name, found in checked.problems.items()}
        named = {
            "survey": split([form.survey]),
            "not_answered": split(form.not_answered),
            "took_part": split(form.took_part),
        }
        known = set(self.surveys())
        for name, slugs in named.items():
            for slug in slugs:
                if slug not in known:
                    problems.setdefault(name, []).append(f"no consultation {slug!r} is loaded")
        if problems or checked.spec is None:
            return Checked(None, {name: tuple(found) for name, found in problems.items()})
        return Checked(self.complete(checked.spec))

    def surveys(self) -> list[str]:
        """The consultations that can be pushed (loaded, any status), by id."""
        with transaction(self._sessions, read_only=True) as s:
            return sorted(set(s.scalars(select(SurveyRow.slug))))

    def titles(self) -> dict[str, str]:
        """Each loaded consultation's title (its current version's, in its default language),
        by id: what staff read in place of the id."""
        with transaction(self._sessions, read_only=True) as s:
            found = {}
            for row in repo.latest_surveys(s):
                survey = self._service.survey_version(s, row.id)
                found[row.slug] = survey.title.get(survey.default_language) or row.slug
            return dict(sorted(found.items()))

    def preview(self, spec: PushSpec) -> Preview:
        """Who the push would reach now, per channel and language, who is left out and why,
        and what its SMS cost. Counted by the database in one statement (GROUP BY), not
        contact by contact."""
        spec = self.complete(spec)
        with transaction(self._sessions, read_only=True) as s:
            survey = self._service.survey(s, spec.survey)
            counts = store.audience_counts(s, self._query(spec, survey))
        by_pair: dict[tuple[str, str], int] = {}
        left_out = dict.fromkeys(store.LEFT_OUT, 0)
        busy = dict.fromkeys(store.BUSY, 0)
        sms_by_language: dict[str, int] = {}
        fallback: dict[str, dict[str, int]] = {}
        for row in counts:
            if row.left_out is not None or row.channel is None:
                left_out[row.left_out or store.LEFT_OUT[0]] += row.contacts
                continue
            pair = (row.channel, row.language)
            by_pair[pair] = by_pair.get(pair, 0) + row.contacts
            if row.preferred:
                chose = fallback.setdefault(row.language, {})
                chose[row.preferred] = chose.get(row.preferred, 0) + row.contacts
            if row.busy is not None:
                busy[row.busy] += row.contacts
            # Someone answering already gets no new invitation; an outcome goes to everyone.
            gets_one = spec.kind == "outcome" or row.busy != "answering"
            if row.channel == "sms" and gets_one:
                sms_by_language[row.language] = sms_by_language.get(row.language, 0) + row.contacts
        by_channel: dict[str, int] = {}
        by_language: dict[str, int] = {}
        for (channel, language), n in sorted(by_pair.items()):
            by_channel[channel] = by_channel.get(channel, 0) + n
            by_language[language] = by_language.get(language, 0) + n
        segments = sum(
            self._sms_segments(survey, language, n, spec)
            for language, n in sorted(sms_by_language.items())
        )
        price = self._config.pushes.sms_price_per_segment
        return Preview(
            recipients=sum(by_pair.values()),
            by_channel=by_channel,
            by_language=by_language,
            by_channel_language=by_pair,
            left_out={why: n for why, n in left_out.items() if n},
            answering=busy["answering"],
            busy=busy["busy"],
            sms_segments=segments,
            cost=round(segments * price, 2),
            currency=self._config.pushes.currency,
            fallback=fallback,
            quiet_until=self._quiet_until(spec),
        )

    def _quiet_until(self, spec: PushSpec) -> datetime | None:
        """When the first invitations of ``spec`` go if its start falls in quiet hours (in
        the push's time zone: most people's), else ``None``."""
        quiet = spec.quiet
        if quiet is None:
            return None
        start = max(spec.at, self._clock())
        allowed = quiet.next_allowed(start, self._zone(None, spec))
        return allowed if allowed > start else None

    def _sms_segments(self, survey: Survey, language: str, n: int, spec: PushSpec) -> int:
        """The segments of ``n`` invitations by SMS in ``language``, the variants shared out
        evenly (each recipient's is drawn when the push fires)."""
        if spec.kind == "outcome":
            return n * outcome_segments(spec.message or {}, language)
        variants = spec.variants
        if not variants:
            return n * self._segments(survey, language, None, spec)
        share, extra = divmod(n, len(variants))
        return sum(
            (share + (1 if index < extra else 0)) * self._segments(survey, language, v, spec)
            for index, v in enumerate(variants)
        )

    def create(self, spec: PushSpec) -> int:
        """Store the push as ``scheduled``; the scheduler fires it at its time."""
        with transaction(self._sessions) as s:
            return self.add(s, spec)

    def add(self, s: Session, spec: PushSpec, *, audited: bool = True) -> int:
        """:meth:`create` in the caller's transaction, with what must be stored with it.
        ``audited=False`` when the caller audits the staff action the push is part of (an
        outcome published): one entry per action."""
        spec = self.complete(spec)
        now = self._clock()
        self._service.survey(s, spec.survey)  # it must be loaded
        push = PushRow(
            survey_slug=spec.survey,
            kind=spec.kind,
            status="scheduled",
            scheduled_at=spec.at,
            created_at=now,
            created_by=spec.created_by,
            audience=spec.audience.to_json(),
            channels=list(spec.channels),
            timezone=spec.timezone,
            quiet_hours=spec.quiet.to_json() if spec.quiet else None,
            rate_per_second=spec.rate_per_second,
            variants=[v.to_json() for v in spec.variants] or None,
            reminders=spec.reminders.to_json() if spec.reminders else None,
            message=dict(spec.message) if spec.message else None,
            planned=0,
        )
        s.add(push)
        s.flush()
        if audited:
            details = {"kind": spec.kind, "at": spec.at.isoformat(), "survey": spec.survey}
            repo.audit(s, spec.created_by, "push created", f"push:{push.id}", details, now)
        return push.id

    def cancel(self, push_id: int, actor: str = "staff") -> int:
        """Cancel a push: nobody more is invited, and invitations not sent yet are not sent.
        How many recipients were still waiting."""
        now = self._clock()
        with transaction(self._sessions) as s:
            push = s.get(PushRow, push_id, with_for_update=True)
            if push is None:
                raise LookupError(f"no push {push_id}")
            if push.status in ("done", "cancelled", "missed"):
                raise PushError(f"push {push_id} is {push.status}: there is nothing to cancel")
            push.status, push.finished_at = "cancelled", now
            push.note = f"cancelled by {actor} at {now:%Y-%m-%d %H:%M} UTC"
            waiting = len(
                s.scalars(
                    update(PushRecipient)
                    .where(PushRecipient.push_id == push_id, PushRecipient.status == "planned")
                    .values(status="cancelled", reason="push cancelled")
                    .returning(PushRecipient.id),
                    execution_options={"synchronize_session": False},
                ).all()
            )
            s.execute(
                update(PushRecipient)
                .where(PushRecipient.push_id == push_id)
                .values(next_reminder_at=None)
            )
            mine = select(PushRecipient.id).where(PushRecipient.push_id == push_id)
            s.execute(
                update(Message)
                .where(
                    Message.recipient_id.in_(mine),
                    Message.status.in_(("queued", "held")),
                )
                .values(status="failed", error="push cancelled")
            )
            repo.audit(s, actor, "push cancelled", f"push:{push_id}", {"waiting": waiting}, now)
            return waiting

    def send_now(self, push_id: int, actor: str = "staff") -> FireResult:
        """Fire a scheduled push now, not at its time: its time becomes now."""
        now = self._clock()
        with transaction(self._sessions) as s:
            push = s.get(PushRow, push_id, with_for_update=True)
            if push is None:
                raise LookupError(f"no push {push_id}")
            if push.status != "scheduled":
                raise PushError(
                    f"push {push_id} is {push.status}: only a scheduled push can go now"
                )
            push.scheduled_at = min(push.scheduled_at, now)
            repo.audit(s, actor, "push sent now", f"push:{push_id}", {}, now)
        return self.fire(push_id)

    # --- what staff see ---------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[PushRow]:
        """The latest pushes, newest first."""
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(select(PushRow).order_by(PushRow.id.desc()).limit(limit)).all()
            s.expunge_all()
            return list(rows)

    def totals(self, push_ids: Sequence[int]) -> dict[int, store.PushTotals]:
        """Invited and completed per push, for a list of pushes."""
        with transaction(self._sessions, read_only=True) as s:
            return store.push_totals(s, push_ids)

    def report(self, push_id: int) -> PushReport:
        with transaction(self._sessions, read_only=True) as s:
            push = s.get(PushRow, push_id)
            if push is None:
                raise LookupError(f"no push {push_id}")
            empty = store.PushCounts(0, 0, 0, 0, 0, 0, 0, 0, 0)
            total = store.push_counts(s, push_id).get("", empty)
            by_channel = store.push_counts(s, push_id, by="channel")
            by_variant = store.push_counts(s, push_id, by="variant") if push.variants else {}
            reasons = store.reasons(s, push_id)
            next_due = s.scalar(
                select(func.min(PushRecipient.due_at)).where(
                    PushRecipient.push_id == push_id, PushRecipient.status == "planned"
                )
            )
            s.expunge(push)
            return PushReport(
                push,
                total,
                by_channel,
                by_variant,
                reasons,
                configured_channels(self._config),
                next_due,
            )

    def unsent(self, slug: str) -> tuple[int, list[str]]:
        """People invited to ``slug`` whose invitation is still in the outbox, and the
        channels among theirs that no provider is set up for (what the Results page says)."""
        with transaction(self._sessions, read_only=True) as s:
            queued = store.queued_invitations(s, slug)
        configured = configured_channels(self._config)
        return sum(queued.values()), [c for c in sorted(queued) if c not in configured]

    def running(self, slug: str) -> dict[str, int]:
        """The pushes of ``slug`` scheduled or sending, by kind (``invitation``,
        ``outcome``): what closing the consultation stops, or lets go on."""
        with transaction(self._sessions, read_only=True) as s:
            stmt = (
                select(PushRow.kind, func.count(PushRow.id))
                .where(PushRow.survey_slug == slug, PushRow.status.in_(("scheduled", "sending")))
                .group_by(PushRow.kind)
            )
            return {str(kind): int(n) for kind, n in s.execute(stmt)}

    # --- the scheduler's calls --------------------------------------------------------------

    def scheduled(self) -> list[tuple[int, datetime]]:
        """Pushes waiting for their time, ``(id, scheduled_at)``: what the scheduler's jobs
        must match."""
        with transaction(self._sessions, read_only=True) as s:
            rows = s.execute(
                select(PushRow.id, PushRow.scheduled_at)
                .where(PushRow.status == "scheduled")
                .order_by(PushRow.scheduled_at, PushRow.id)
            )
            return [(push_id, at) for push_id, at in rows]

    def fire(self, push_id: int) -> FireResult:
        """Plan the push's recipients, once: a second fire (two schedulers, a restart
        mid-fire) plans nobody twice. Too late after downtime, the push is ``missed``."""
        now = self._clock()
        grace = timedelta(hours=self._config.pushes.misfire_grace_hours)
        with transaction(self._sessions) as s:
            push = s.get(PushRow, push_id, with_for_update=True)
            if push is None:
                return FireResult(push_id, "unknown")
            if push.status == "cancelled":
                return FireResult(push_id, "cancelled")
            if push.status != "scheduled":
                return FireResult(push_id, "already fired", push.planned)
            if now < push.scheduled_at:
                return FireResult(push_id, "not yet")
            if now - push.scheduled_at > grace:
                push.status = "missed"
                push.note = (
                    f"missed: due {push.scheduled_at:%Y-%m-%d %H:%M} UTC, but no scheduler ran "
                    f"until {now:%Y-%m-%d %H:%M} UTC (more than "
                    f"{self._config.pushes.misfire_grace_hours:g} h late); schedule it again"
                )
                repo.audit(s, "system", "push missed", f"push:{push_id}", {}, now)
                log.warning("push %d missed: %s late", push_id, now - push.scheduled_at)
                return FireResult(push_id, "missed")
            planned = self._plan(s, push, now)
            push.status, push.fired_at, push.planned = "sending", now, planned
            repo.audit(s, "system", "push fired", f"push:{push_id}", {"planned": planned}, now)
        log.info("push %d fired: %d recipients planned", push_id, planned)
        return FireResult(push_id, "fired", planned)

    def tick(self) -> TickReport:
        """Carry out what fell due: invitations, reminders, idle conversations, closing."""
        invited, postponed, skipped = self._invite_due()
        reminded = self._remind_due()
        try:
            expired = self._service.expire_idle(
                timedelta(hours=self._config.conversation.session_timeout_hours)
            )
        except StaleDataError:
            expired = 0  # a citizen wrote at that moment: the next tick looks again

        finished = self._finish()
        if (invited or reminded) and self._on_outbox is not None:
            self._on_outbox()
        return TickReport(invited, postponed, skipped, reminded, expired, finished)

    # --- planning ---------------------------------------------------------------------------

    def _spec_of(self, push: PushRow) -> PushSpec:
        return PushSpec(
            survey=push.survey_slug,
            at=push.scheduled_at,
            audience=Audience.from_json(push.audience),
            channels=tuple(push.channels),
            timezone=push.timezone,
            quiet_hours=str(QuietHours.from_json(push.quiet_hours) or ""),
            rate_per_second=push.rate_per_second,
            variants=tuple(
                Variant(str(v["name"]), dict(v["texts"])) for v in (push.variants or ())
            ),
            reminders=Reminders.from_json(push.reminders),
            kind=push.kind,
            message=push.message,
        )

    def _query(self, spec: PushSpec, survey: Survey) -> store.AudienceQuery:
        """The push's audience as the database reads it (:func:`storage.pushes.audience`).
        An invitation needs consent and leaves out who completed it already; an outcome
        goes to everyone who took part, their consent to hear back."""
        audience = spec.audience
        invitation = spec.kind == "invitation"
        return store.AudienceQuery(
            survey=spec.survey,
            channels=spec.channels,
            survey_languages=survey.languages,
            default_language=survey.default_language,
            languages=audience.languages,
            where=audience.where,
            tags=audience.tags,
            not_answered=audience.not_answered,
            took_part=audience.took_part,
            consent=invitation,
            skip_completed=invitation,
        )

    def _plan(self, s: Session, push: PushRow, now: datetime) -> int:
        """Insert the push's recipients in batches as the contacts stream by: memory stays
        flat however large the audience."""
        spec = self._spec_of(push)
        survey = self._service.survey(s, push.survey_slug)
        start = max(push.scheduled_at, now)  # a late push spreads from now
        step = timedelta(seconds=1 / push.rate_per_second)
        rows: list[dict[str, Any]] = []
        planned = 0
        for index, found in enumerate(store.audience(s, self._query(spec, survey))):
            turn = start + step * index
            due = self._allowed(spec, found.timezone, turn)
            reason = "quiet hours" if due > turn else None
            variant = _variant_for(push.id, found.contact_id, spec.variants)
            rows.append(
                {
                    "push_id": push.id,
                    "contact_id": found.contact_id,
                    "channel": found.channel,
                    "address": found.value,
                    "language": found.language,
                    "variant": variant.name if variant else None,
                    "status": "planned",
                    "due_at": due,
                    "reason": reason,
                    "reminders_sent": 0,
                }
            )
            if len(rows) >= store.PLAN_BATCH:
                store.insert_recipients(s, rows)
                planned, rows = planned + len(rows), []
        store.insert_recipients(s, rows)
        return planned + len(rows)

    def _allowed(self, spec: PushSpec, timezone: str | None, moment: datetime) -> datetime:
        """``moment``, or the end of the contact's quiet hours when it falls in them."""
        quiet = spec.quiet
        if quiet is None:
            return moment
        return quiet.next_allowed(moment, self._zone(timezone, spec))

    def _zone(self, name: str | None, spec: PushSpec) -> ZoneInfo:
        """The contact's timezone, or the push's when theirs is unknown or not valid."""
        key = name or spec.timezone
        zone = self._zones.get(key)
        if zone is None:
            try:
                zone = zone_of(key)
            except QuietHoursError:
                zone = zone_of(spec.timezone)
            self._zones[key] = zone
        return zone

    def _segments(
        self, survey: Survey, language: str, variant: Variant | None, spec: PushSpec
    ) -> int:
        """SMS segments of an invitation's first messages (intro and first question)."""
        step = engine.start(survey, language, spec.at)
        total = 0
        for index, say in enumerate(step.says):
            text = say.text
            if index == 0 and variant is not None:
                text = variant.text_for(language, survey.default_language) or text
            message = OutboundMessage(MessageAddress("sms", "+1"), text, say.options, "push")
            total += sms.render(message).segments or 1
        return total

    # --- the tick: invitations --------------------------------------------------------------

    def _invite_due(self) -> tuple[int, int, int]:
        invited = postponed = skipped = 0
        done: set[int] = set()
        while invited + postponed + skipped < INVITES_PER_TICK:
            now = self._clock()
            with transaction(self._sessions, read_only=True) as s:
                due = [i for i in store.due_recipients(s, now, 200) if i not in done]
            if not due:
                break
            for recipient_id in due:
                done.add(recipient_id)
                outcome = _racing(self._invite, recipient_id)
                if outcome == "invited":
                    invited += 1
                elif outcome in ("postponed", "raced"):
                    postponed += 1
                else:
                    skipped += 1
        return invited, postponed, skipped

    def _invite(self, recipient_id: int) -> str:
        """Invite one recipient in its own transaction: ``invited``, ``postponed`` or
        ``skipped`` (the reason is stored on the row)."""
        with transaction(self._sessions) as s:
            now = self._clock()
            r = s.get(PushRecipient, recipient_id, with_for_update=True)
            if r is None or r.status != "planned" or r.due_at > now:
                return "skipped"
            push = s.get(PushRow, r.push_id)
            assert push is not None
            spec = self._spec_of(push)
            found = self._reachable(s, r, consent=push.kind == "invitation")
            if isinstance(found, str):
                return _skip(r, found)
            contact, address = found
            allowed = self._allowed(spec, contact.timezone, now)
            if allowed > now:
                r.due_at, r.reason = allowed, "quiet hours"
                return "postponed"
            if push.kind == "outcome":
                return self._send_outcome(s, r, push, contact, address, now)
            survey = self._service.survey(s, push.survey_slug)
            if survey.is_closed(now):
                return _skip(r, "closed")
            active = repo.get_active_session(s, contact.id)
            if active is not None:
                if self._service.survey_slug_of(s, active) == push.survey_slug:
                    r.status, r.session_id, r.invited_at = "invited", active.id, now
                    r.reason = "already answering"
                    return "invited"
                # One conversation at a time: wait until that one ends or expires.
                r.due_at, r.reason = now + BUSY_RETRY, "in another consultation"
                return "postponed"
            variant = next((v for v in spec.variants if v.name == r.variant), None)
            intro = variant.text_for(r.language, survey.default_language) if variant else None
            invitation = self._service.invite(s, contact, address, survey, now, intro=intro)
            if invitation.session_id is None:
                return _skip(r, "took part already")
            _link(s, invitation.outgoing, r.id)
            r.status, r.invited_at, r.session_id, r.reason = (
                "invited",
                now,
                invitation.session_id,
                None,
            )
            if spec.reminders is not None:
                r.next_reminder_at = now + spec.reminders.after
            return "invited"

    def _reachable(
        self, s: Session, r: PushRecipient, *, consent: bool = True
    ) -> tuple[Contact, Address] | str:
        """The recipient's contact and address if they may still be contacted, else why not."""
        contact = s.get(Contact, r.contact_id) if r.contact_id is not None else None
        if contact is None or contact.forgotten_at is not None or r.address is None:
            return "forgotten"
        address = s.scalars(
            select(Address).where(Address.channel == r.channel, Address.value == r.address)
        ).one_or_none()
        if address is None or address.contact_id != contact.id:
            return "address removed"
        view = AddressView(
            address.channel,
            address.value,
            address.consent_at,
            address.opted_out_at,
            address.invalid_at,
        )
        if not reachable(view, consent=consent):
            if address.opted_out_at is not None:
                return "opted out"
            return "invalid number" if address.invalid_at is not None else "no consent"
        return contact, address

    def _send_outcome(
        self,
        s: Session,
        r: PushRecipient,
        push: PushRow,
        contact: Contact,
        address: Address,
        now: datetime,
    ) -> str:
        text = text_for(push.message or {}, r.language, contact.attributes)
        if not text:
            return _skip(r, "no text for the language")
        outgoing = self._service.notify(s, contact, address, text, now)
        _link(s, (outgoing,), r.id)
        r.status, r.invited_at, r.reason = "invited", now, None
        return "invited"

    # --- the tick: reminders ----------------------------------------------------------------

    def _remind_due(self) -> int:
        reminded = 0
        now = self._clock()
        with transaction(self._sessions, read_only=True) as s:
            due = store.due_reminders(s, now, INVITES_PER_TICK)
        for recipient_id in due:
            reminded += 1 if _racing(self._remind, recipient_id) == 1 else 0
        return reminded

    def _remind(self, recipient_id: int) -> int:
        with transaction(self._sessions) as s:
            now = self._clock()
            r = s.get(PushRecipient, recipient_id, with_for_update=True)
            if r is None or r.next_reminder_at is None or r.next_reminder_at > now:
                return 0
            push = s.get(PushRow, r.push_id)
            assert push is not None
            spec = self._spec_of(push)
            session = s.get(SessionRow, r.session_id) if r.session_id is not None else None
            found = self._reachable(s, r)
            if (
                spec.reminders is None
                or push.status == "cancelled"
                or session is None
                or session.status != "active"
                or isinstance(found, str)
            ):
                r.next_reminder_at = None  # answered, left, opted out: nothing to remind
                return 0
            contact, address = found
            survey = self._service.survey(s, push.survey_slug)
            if survey.is_closed(now):
                r.next_reminder_at = None
                return 0
            # The wait runs from the citizen's last step, not from the invitation: someone
            # who answered a moment ago is not nudged yet (every step updates the session).
            quiet_until = session.updated_at + spec.reminders.after
            if quiet_until > now:
                r.next_reminder_at = quiet_until
                return 0
            allowed = self._allowed(spec, contact.timezone, now)
            if allowed > now:
                r.next_reminder_at = allowed
                return 0
            title = survey.title.get(session.language) or survey.title.get(
                survey.default_language, survey.id
            )
            if repo.answers_of(s, session.id):
                message = N_("You are halfway through {title}. Reply to go on.")
            else:
                message = N_("A reminder: {title} is waiting for your answers.")
            text = t(session.language, message, title=title)
            outgoing = self._service.remind(s, contact, address, session, text, now)
            _link(s, outgoing, r.id)
            r.reminders_sent += 1
            more = r.reminders_sent < spec.reminders.most
            r.next_reminder_at = now + spec.reminders.after if more else None
            return 1

    # --- the tick: finishing ----------------------------------------------------------------

    def _finish(self) -> int:
        """Closed consultations invite nobody more; a push with nobody left to invite is
        ``done``. How many pushes finished."""
        now = self._clock()
        finished = 0
        with transaction(self._sessions) as s:
            sending = s.scalars(select(PushRow).where(PushRow.status == "sending")).all()
            for push in sending:
                if push.kind == "invitation":
                    survey = self._service.survey(s, push.survey_slug)
                    if survey.is_closed(now):
                        s.execute(
                            update(PushRecipient)
                            .where(
                                PushRecipient.push_id == push.id,
                                PushRecipient.status == "planned",
                            )
                            .values(status="skipped", reason="closed")
                        )
                        s.execute(
                            update(PushRecipient)
                            .where(PushRecipient.push_id == push.id)
                            .values(next_reminder_at=None)
                        )
                # Done when nobody waits for an invitation or a reminder any more.
                waiting = s.scalar(
                    select(PushRecipient.id)
                    .where(
                        PushRecipient.push_id == push.id,
                        or_(
                            PushRecipient.status == "planned",
                            PushRecipient.next_reminder_at.is_not(None),
                        ),
                    )
                    .limit(1)
                )
                if waiting is None:
                    push.status, push.finished_at = "done", now
                    finished += 1
        return finished


def outcome_segments(message: Mapping[str, Any], language: str) -> int:
    """SMS segments of the outcome a person in ``language`` gets (:func:`text_for`, the text
    the push sends): the longest of the texts for their language when it is worded per
    district, as the preview does not know each person's district.

    >>> outcome_segments({"texts": {"en": "Bins in May.", "nl": "x" * 200}}, "nl")
    2
    >>> outcome_segments({"texts": {"en": "Bins."}, "by": "district",
    ...                   "values": {"north": {"en": "y" * 161}}}, "en")
    2
    """
    values = message.get("values") or {}
    by = message.get("by")
    texts = {text_for(message, language, {})}
    if by:
        texts |= {text_for(message, language, {by: value}) for value in values}
    return max(
        (
            sms.render(OutboundMessage(MessageAddress("sms", "+1"), text, (), "push")).segments or 1
            for text in texts
            if text
        ),
        default=0,
    )


def _racing(work: Callable[[int], _T], recipient_id: int) -> _T | str:
    """``work(recipient_id)``, or ``"raced"`` when the citizen's own message changed their
    conversation at the same moment: the recipient is left as it was, for the next tick."""
    try:
        return work(recipient_id)
    except (StaleDataError, IntegrityError) as exc:
        log.info("recipient %d raced a message (%s): next tick", recipient_id, type(exc).__name__)
        return "raced"


def _variant_for(push_id: int, contact_id: int, variants: Sequence[Variant]) -> Variant | None:
    """A recipient's wording: random across recipients, the same every time for one.

    >>> vs = (Variant("A", {"*": "a"}), Variant("B", {"*": "b"}))
    >>> _variant_for(7, 42, vs) == _variant_for(7, 42, vs)
    True
    """
    if not variants:
        return None
    digest = hashlib.sha256(f"push:{push_id}:contact:{contact_id}".encode()).digest()
    return variants[int.from_bytes(digest[:8], "big") % len(variants)]


def _skip(r: PushRecipient, reason: str) -> str:
    r.status, r.reason, r.next_reminder_at = "skipped", reason, None
    return "skipped"


def _link(s: Session, outgoing: Sequence[Any], recipient_id: int) -> None:
    """Tie the messages to the recipient, for the push's delivery counts."""
    ids = [o.id for o in outgoing]
    if ids:
        s.execute(update(Message).where(Message.id.in_(ids)).values(recipient_id=recipient_id))
