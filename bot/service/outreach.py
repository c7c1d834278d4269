"""What Voxpop starts: invitations, reminders, outcome messages, and the end of idle
conversations."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversation import engine
from bot.conversation import router as conv
from bot.conversation.engine import Say, SessionState
from bot.service.core import Invitation, Outgoing, simulator_address
from bot.service.writing import EffectWriter
from messages import Address
from storage import repo
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import Contact, SessionRow, SurveyRow
from surveys.model import Survey

log = logging.getLogger(__name__)


class Outreach(EffectWriter):
    """Invitations, reminders and single pushes, inside the caller's transaction."""

    def start_survey(
        self, address: Address, slug: str, *, simulated: bool = False
    ) -> tuple[Outgoing, ...]:
        """Begin ``slug`` for ``address`` as an invitation (the staff's test phone when
        ``simulated``). Its messages are pushes, and the first carries what a WhatsApp
        template needs outside the 24-hour window (``payload["invitation"]``)."""
        if simulated:
            address = simulator_address(address)

        def start(s: Session) -> tuple[Outgoing, ...]:
            now = self._clock()
            contact, addr, _ = repo.find_or_create_contact(s, address.channel, address.value, now)
            repo.lock_contact(s, contact.id)
            survey = self._catalog.current(s, slug)
            return self.invite(s, contact, addr, survey, now, simulated=simulated).outgoing

        return self._write_retrying(start)

    def invite(
        self,
        s: Session,
        contact: Contact,
        addr: AddressRow,
        survey: Survey,
        now: datetime,
        *,
        simulated: bool = False,
        intro: str | None = None,
    ) -> Invitation:
        """Begin ``survey`` for a contact inside the caller's transaction: a conversation in
        progress ends as a switch would; ``intro`` replaces the survey's own (an A/B wording).
        """
        address = Address(addr.channel, addr.value)
        sessions = repo.sessions_for_contact(s, contact.id)
        ctx = self._context(s, contact, sessions, addr.opted_out_at is not None, now)
        effects: tuple[conv.Effect, ...] = ()
        if ctx.active is not None:
            # An invitation replaces the conversation in progress, as a switch would.
            active = ctx.active
            step = engine.resume(active.survey, active.state, engine.Timeout(), now)
            effects = (conv.UpdateSession(active.session_id, active.survey, step),)
            ctx = replace(ctx, active=None)
        begun = conv.begin(ctx, survey)
        started = next((e for e in begun if isinstance(e, conv.UpdateSession)), None)
        if started is not None and intro and started.session_id is None:
            begun = _with_intro(begun, intro, bool(survey.intro))
        if started is not None and not simulated:
            begun = tuple(replace(e, kind="push") if isinstance(e, Say) else e for e in begun)
        out = self._apply(s, effects + begun, contact, address, ctx, sessions, now, simulated)
        session_id: int | None = None
        if started is not None:
            session_id = started.session_id
            if session_id is None:
                created = repo.get_active_session(s, contact.id)
                session_id = created.id if created is not None else None
            if not simulated:
                opener = out[-len([e for e in begun if isinstance(e, Say)])]
                self._mark_invitation(s, opener.id, survey, started.step.state.language)
        return Invitation(tuple(out), session_id)

    def remind(
        self,
        s: Session,
        contact: Contact,
        addr: AddressRow,
        session: SessionRow,
        text: str,
        now: datetime,
    ) -> tuple[Outgoing, ...]:
        """A reminder line, then the session's current question again, as a push whose first
        message may go as a WhatsApp template (it opens a conversation like an invitation)."""
        survey = self._catalog.version(s, session.survey_id)
        state = SessionState.from_json(session.state)
        step = engine.resume(survey, state, engine.Repeat(), now)
        says = tuple(replace(say, kind="push") for say in step.says)
        effects: tuple[conv.Effect, ...] = (
            Say(text, kind="push"),
            conv.UpdateSession(session.id, survey, step),
            *says,
        )
        address = Address(addr.channel, addr.value)
        ctx = self._context(s, contact, [session], addr.opted_out_at is not None, now)
        out = self._apply(s, effects, contact, address, ctx, [session], now, False)
        self._mark_invitation(s, out[0].id, survey, state.language)
        return tuple(out)

    def notify(
        self, s: Session, contact: Contact, addr: AddressRow, text: str, now: datetime
    ) -> Outgoing:
        """One push message outside any consultation (an outcome), in the caller's
        transaction."""
        address = Address(addr.channel, addr.value)
        return self._say(s, Say(text, kind="push"), address, contact.id, None, now, False)

    def expire_idle(self, idle: timedelta, *, limit: int = 200) -> int:
        """End conversations left without a reply for ``idle``, and those of consultations
        that have closed: ``abandoned``, answers kept. How many ended (at most ``limit`` of
        each per call)."""
        with transaction(self._sessions) as s:
            now = self._clock()
            idle_rows = s.scalars(
                select(SessionRow)
                .where(SessionRow.status == "active", SessionRow.updated_at < now - idle)
                .order_by(SessionRow.updated_at)
                .limit(limit)
            ).all()
            closed_rows = s.scalars(
                select(SessionRow)
                .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
                .where(SessionRow.status == "active", SurveyRow.closes_at <= now)
                .order_by(SessionRow.id)
                .limit(limit)
            ).all()
            rows = {row.id: row for row in (*idle_rows, *closed_rows)}
            for row in rows.values():
                survey = self._catalog.version(s, row.survey_id)
                state = SessionState.from_json(row.state)
                step = engine.resume(survey, state, engine.Timeout(), now)
                row.state, row.status, row.updated_at = step.state.to_json(), "abandoned", now
            if rows:
                log.info("%d idle or closed consultations ended as abandoned", len(rows))
            return len(rows)


def _with_intro(
    effects: tuple[conv.Effect, ...], intro: str, replaces: bool
) -> tuple[conv.Effect, ...]:
    """The begin effects with ``intro`` as the first message (instead of the survey's own
    intro when it has one)."""
    first = next(i for i, e in enumerate(effects) if isinstance(e, Say))
    if replaces:
        own = effects[first]
        assert isinstance(own, Say)
        return (*effects[:first], replace(own, text=intro), *effects[first + 1 :])
    return (*effects[:first], Say(intro), *effects[first:])
