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

import functools
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.config import Config
from bot.conversation import engine
from bot.conversation.i18n import N_, t
from bot.pushes.audience import (
    AddressView,
    Audience,
    Candidate,
    choose_address,
    matches,
    reachable,
)
from bot.pushes.quiet import QuietHours, QuietHoursError, zone_of
from bot.service import Service, utc_now
from channels import sms
from messages import Address as MessageAddress
from messages import OutboundMessage
from storage import pushes as store
from storage import repo
from storage.db import transaction
from storage.models import Address, Contact, Message, PushRecipient, PushRow, SessionRow
from surveys.model import Survey
from surveys.outcomes import text_for

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_T = TypeVar("_T")
#: Someone in the middle of another consultation is looked at again this much later.
BUSY_RETRY = timedelta(minutes=15)
#: Invitations written per tick at most: the tick must end well before the next one.
INVITES_PER_TICK = 2000


class PushError(ValueError):
    """A push that cannot be made as asked; the message says why."""


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


@dataclass(frozen=True)
class Preview:
    """Who a push would reach, before it is made."""

    recipients: int
    by_channel: Mapping[str, int]
    by_language: Mapping[str, int]
    #: In the audience, but with no address they agreed to be contacted on.
    unreachable: int
    #: Completed the consultation already: not invited again.
    took_part: int
    sms_segments: int
    cost: float
    currency: str


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


@dataclass
class _Tally:
    unreachable: int = 0
    took_part: int = 0


@dataclass
class _Plan:
    """One planned recipient, before it is a row."""

    candidate: Candidate
    address: AddressView
    language: str


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
        """``spec`` with the config's defaults filled in and checked."""
        pushes = self._config.pushes
        channels = spec.channels or spec.audience.channels or pushes.channels
        unknown = [c for c in channels if c not in ("sms", "whatsapp", "telegram")]
        if unknown:
            raise PushError(f"unknown channel {unknown[0]!r} (sms, whatsapp or telegram)")
        timezone = spec.timezone or pushes.timezone
        text = pushes.quiet_hours if spec.quiet_hours is None else spec.quiet_hours
        try:
            zone_of(timezone)
            quiet = QuietHours.parse(text)
        except QuietHoursError as exc:
            raise PushError(str(exc)) from None
        rate = spec.rate_per_second or pushes.rate_per_second
        if rate <= 0:
            raise PushError("the rate must be above 0 per second")
        reminders = spec.reminders
        if reminders is not None and (reminders.most < 1 or reminders.after <= timedelta(0)):
            raise PushError("reminders need a positive interval and count")
        names = [v.name for v in spec.variants]
        if len(set(names)) != len(names):
            raise PushError("two variants have the same name")
        return PushSpec(
            survey=spec.survey,
            at=spec.at,
            audience=spec.audience,
            channels=tuple(channels),
            timezone=timezone,
            quiet_hours=str(quiet) if quiet else "",
            rate_per_second=rate,
            variants=spec.variants,
            reminders=spec.reminders,
            kind=spec.kind,
            message=spec.message,
            created_by=spec.created_by,
        )

    def preview(self, spec: PushSpec) -> Preview:
        """Who the push would reach now, per channel and language, and what its SMS cost."""
        spec = self.complete(spec)
        by_channel: dict[str, int] = {}
        by_language: dict[str, int] = {}
        segments = recipients = 0
        variants = spec.variants
        tally = _Tally()
        costs: dict[tuple[str, str | None], int] = {}
        with transaction(self._sessions, read_only=True) as s:
            survey = self._service.survey(s, spec.survey)
            for index, plan in enumerate(self._audience(s, spec, survey, tally)):
                recipients += 1
                by_channel[plan.address.channel] = by_channel.get(plan.address.channel, 0) + 1
                by_language[plan.language] = by_language.get(plan.language, 0) + 1
                if plan.address.channel == "sms":
                    variant = variants[index % len(variants)] if variants else None
                    key = (plan.language, variant.name if variant else None)
                    if key not in costs:
                        costs[key] = self._segments(survey, plan.language, variant, spec)
                    segments += costs[key]
        price = self._config.pushes.sms_price_per_segment
        return Preview(
            recipients=recipients,
            by_channel=by_channel,
            by_language=by_language,
            unreachable=tally.unreachable,
            took_part=tally.took_part,
            sms_segments=segments,
            cost=round(segments * price, 2),
            currency=self._config.pushes.currency,
        )

    def create(self, spec: PushSpec) -> int:
        """Store the push as ``scheduled``; the scheduler fires it at its time."""
        with transaction(self._sessions) as s:
            return self.add(s, spec)

    def add(self, s: Session, spec: PushSpec) -> int:
        """:meth:`create` in the caller's transaction, with what must be stored with it."""
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
        details = {"kind": spec.kind, "at": spec.at.isoformat(), "survey": spec.survey}
        repo.audit(s, spec.created_by, "push_create", f"push:{push.id}", details, now)
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
            repo.audit(s, actor, "push_cancel", f"push:{push_id}", {"waiting": waiting}, now)
            return waiting

    # --- what staff see ---------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[PushRow]:
        """The latest pushes, newest first."""
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(select(PushRow).order_by(PushRow.id.desc()).limit(limit)).all()
            s.expunge_all()
            return list(rows)

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
            s.expunge(push)
            return PushReport(push, total, by_channel, by_variant, reasons)

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
                repo.audit(s, "system", "push_missed", f"push:{push_id}", {}, now)
                log.warning("push %d missed: %s late", push_id, now - push.scheduled_at)
                return FireResult(push_id, "missed")
            planned = self._plan(s, push, now)
            push.status, push.fired_at, push.planned = "sending", now, planned
            repo.audit(s, "system", "push_fire", f"push:{push_id}", {"planned": planned}, now)
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

    def _audience(
        self, s: Session, spec: PushSpec, survey: Survey, tally: _Tally
    ) -> Iterator[_Plan]:
        """The recipients in contact order, streamed; ``tally`` counts who matched without
        a reachable address, and who completed the consultation already (an invitation
        skips them)."""
        audience = spec.audience
        completed = store.contacts_who(s, {*audience.not_answered, spec.survey}, completed=True)
        answered = store.contacts_who(s, audience.took_part, completed=False)
        done = completed.get(spec.survey, set()) if spec.kind == "invitation" else set()
        rows = store.candidate_rows(
            s, spec.channels, attributes=bool(audience.where), tags=bool(audience.tags)
        )
        for candidate in _grouped(rows):
            if not matches(
                audience,
                candidate,
                completed=completed,
                answered=answered,
                survey_language=survey.default_language,
            ):
                continue
            address = choose_address(candidate, spec.channels, consent=spec.kind == "invitation")
            if address is None:
                tally.unreachable += 1
                continue
            if candidate.contact_id in done:
                tally.took_part += 1
                continue
            language = survey.language_for(candidate.language)
            yield _Plan(candidate, address, language)

    def _plan(self, s: Session, push: PushRow, now: datetime) -> int:
        """Insert the push's recipients in batches as the contacts stream by: memory stays
        flat however large the audience."""
        spec = self._spec_of(push)
        survey = self._service.survey(s, push.survey_slug)
        start = max(push.scheduled_at, now)  # a late push spreads from now
        step = timedelta(seconds=1 / push.rate_per_second)
        rows: list[dict[str, Any]] = []
        planned = 0
        for index, plan in enumerate(self._audience(s, spec, survey, _Tally())):
            turn = start + step * index
            due = self._allowed(spec, plan.candidate.timezone, turn)
            reason = "quiet hours" if due > turn else None
            variant = _variant_for(push.id, plan.candidate.contact_id, spec.variants)
            rows.append(
                {
                    "push_id": push.id,
                    "contact_id": plan.candidate.contact_id,
                    "channel": plan.address.channel,
                    "address": plan.address.value,
                    "language": plan.language,
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


def _racing(work: Callable[[int], _T], recipient_id: int) -> _T | str:
    """``work(recipient_id)``, or ``"raced"`` when the citizen's own message changed their
    conversation at the same moment: the recipient is left as it was, for the next tick."""
    try:
        return work(recipient_id)
    except (StaleDataError, IntegrityError) as exc:
        log.info("recipient %d raced a message (%s): next tick", recipient_id, type(exc).__name__)
        return "raced"


def _grouped(rows: Iterator[store.CandidateRow]) -> Iterator[Candidate]:
    """Consecutive rows of one contact as one candidate."""
    current: list[store.CandidateRow] = []
    for row in rows:
        if current and row.contact_id != current[0].contact_id:
            yield _candidate(current)
            current = []
        current.append(row)
    if current:
        yield _candidate(current)


def _candidate(rows: Sequence[store.CandidateRow]) -> Candidate:
    first = rows[0]
    return Candidate(
        contact_id=first.contact_id,
        language=first.language,
        timezone=first.timezone,
        attributes=first.attributes or {},
        tags=first.tags or (),
        addresses=tuple(
            AddressView(r.channel, r.value, r.consent_at, r.opted_out_at, r.invalid_at)
            for r in rows
        ),
    )


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
