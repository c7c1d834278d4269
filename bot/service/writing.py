"""How the conversation's decisions are written: each effect (a message to say, a step of a
consultation, a language, an opt-out, FORGET...) becomes rows in the caller's transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.consultations.results import latest_outcome, summary_text
from bot.conversation import router as conv
from bot.conversation.engine import Finish, Record, Say, SessionState, session_status
from bot.conversation.i18n import N_, t
from bot.service.core import Outgoing, ServiceCore
from channels.registry import renderer
from messages import Address, Option, OutboundMessage
from storage import repo
from storage.contacts import DECLINED_PREFIX, record_consent
from storage.models import AnswerRow, Contact, Message, SessionRow
from surveys.model import Survey

log = logging.getLogger(__name__)


class EffectWriter(ServiceCore):
    """Applies a run of effects for one contact inside the caller's transaction."""

    def _mark_invitation(self, s: Session, message_id: int, survey: Survey, language: str) -> None:
        row = s.get(Message, message_id)
        assert row is not None
        payload = dict(row.payload) if isinstance(row.payload, Mapping) else {}
        payload["invitation"] = {
            "survey": survey.id,
            "language": language,
            # Fallbacks for the template's language, in order.
            "languages": [survey.default_language],
            "title": survey.title.get(language) or survey.title.get(survey.default_language, ""),
            "titles": dict(survey.title),
            "keyword": survey.keywords[0] if survey.keywords else "",
            "questions": str(len(survey.questions)),
        }
        row.payload = payload

    def _context(
        self,
        s: Session,
        contact: Contact,
        sessions: list[SessionRow],
        opted_out: bool,
        now: datetime,
    ) -> conv.Context:
        keywords = self._catalog.keywords(s)
        active: conv.SessionView | None = None
        previous: dict[str, conv.SessionView] = {}
        for row in reversed(sessions):  # newest first
            # The row's status is the truth (erasure or expiry may end a session elsewhere).
            state = replace(SessionState.from_json(row.state), status=session_status(row.status))
            view = conv.SessionView(row.id, self._catalog.version(s, row.survey_id), state)
            if row.status == "active":
                active = view
            else:
                previous.setdefault(view.survey.id, view)
        return conv.Context(
            contact=conv.ContactView(
                language=contact.language,
                opted_out=opted_out,
                pending=contact.pending,
                last_help_at=contact.last_help_at,
            ),
            now=now,
            keywords={k: v[0] for k, v in keywords.items()},
            active=active,
            previous=previous,
            default_language=self._default_language,
        )

    def _apply(
        self,
        s: Session,
        effects: Iterable[conv.Effect],
        contact: Contact,
        address: Address,
        ctx: conv.Context,
        sessions: list[SessionRow],
        now: datetime,
        simulated: bool,
    ) -> list[Outgoing]:
        out: list[Outgoing] = []
        loaded = {row.id: row for row in sessions}
        session_id = ctx.active.session_id if ctx.active else None
        contact_id: int | None = contact.id
        # Who acted, for the audit log: a simulator never speaks for a citizen.
        actor = "simulator" if simulated else "citizen"
        languages = _Languages(conv.language_of(ctx))
        for effect in effects:
            languages.follow(effect)
            if isinstance(effect, Say):
                language = languages.of(effect)
                out.append(
                    self._say(s, effect, address, contact_id, session_id, now, simulated, language)
                )
            elif isinstance(effect, conv.UpdateSession):
                session_id = self._store_step(s, effect, contact, address, loaded, now, simulated)
            elif isinstance(effect, conv.ChangeLanguage):
                repo.update_columns(s, contact, language=effect.language)
            elif isinstance(effect, conv.SetPending):
                pending = dict(effect.pending) if effect.pending else None
                repo.update_columns(s, contact, pending=pending)
            elif isinstance(effect, conv.MarkHelped):
                repo.update_columns(s, contact, last_help_at=now)
            elif isinstance(effect, conv.OptOut | conv.OptIn):
                opted_out = isinstance(effect, conv.OptOut)
                for addr in repo.addresses_of(s, contact.id):
                    addr.opted_out_at = now if opted_out else None
                action = "opted out" if opted_out else "opted in"
                repo.audit(s, actor, action, self.pseudonym(s, contact.id), {}, now)
            elif isinstance(effect, conv.ReportInfo | conv.ReportResults):
                if isinstance(effect, conv.ReportInfo):
                    text = self._info_text(s, contact, address, effect.language)
                else:
                    text = results_text(s, self, contact, effect.language, ctx)
                say = Say(text)
                out.append(
                    self._say(
                        s, say, address, contact_id, session_id, now, simulated, effect.language
                    )
                )
            elif isinstance(effect, conv.Forget):
                self.forget(s, contact, now, actor=actor)
                contact_id = None
        return out

    def _say(
        self,
        s: Session,
        say: Say,
        address: Address,
        contact_id: int | None,
        session_id: int | None,
        now: datetime,
        simulated: bool,
        language: str | None = None,
    ) -> Outgoing:
        message = OutboundMessage(address, say.text, say.options, say.kind)
        options = [{"key": o.key, "label": o.label, "payload": o.payload} for o in say.options]
        payload: dict[str, Any] | None = {"options": options} if options else None
        if simulated and language:
            # Kept for the simulator's transcript: a page reload shows each message as written.
            payload = {**(payload or {}), "language": language}
        message_id = repo.add_outbound(
            s,
            channel=address.channel,
            # A contact forgotten a moment ago: a simulated goodbye keeps no trace of the number.
            address=None if simulated and contact_id is None else address.value,
            contact_id=contact_id,
            session_id=session_id,
            kind=say.kind,
            text=say.text,
            payload=payload,
            now=now,
            # The simulator shows the message instead of sending it; no dispatcher may pick it up.
            status="simulated" if simulated else "queued",
            segments=renderer(address.channel).render(message).segments if simulated else None,
        )
        return Outgoing(message_id, message, language)

    def _store_step(
        self,
        s: Session,
        effect: conv.UpdateSession,
        contact: Contact,
        address: Address,
        loaded: dict[int, SessionRow],
        now: datetime,
        simulated: bool,
    ) -> int:
        state = effect.step.state
        completed = any(
            isinstance(e, Finish) and e.status == "completed" for e in effect.step.effects
        )
        if effect.session_id is None:
            # The end of the previous session is written already (Core statements run at
            # once): one active session per contact.
            if s.dirty or s.new:
                s.flush()
            session_id = repo.insert_session(
                s,
                contact_id=contact.id,
                survey_id=self._catalog.row_id_of(s, effect.survey),
                respondent=self.pseudonym(s, contact.id),
                channel=address.channel,
                language=state.language,
                status=state.status,
                state=state.to_json(),
                started_at=now,
                updated_at=now,
                completed_at=now if completed else None,
                simulated=simulated,
            )
        else:
            row = loaded.get(effect.session_id) or s.get(SessionRow, effect.session_id)
            assert row is not None
            session_id = row.id
            repo.update_session(
                s,
                row,
                state=state.to_json(),
                status=state.status,
                language=state.language,
                now=now,
                completed_at=now if completed else None,
            )
        for e in effect.step.effects:
            if isinstance(e, Record):
                repo.upsert_answer(s, session_id, e.question_id, e.value, e.raw, e.how, now)
                if not simulated:  # staff's test phones are not contacts to push to
                    self._record_consent(s, effect.survey, e, contact, address, now)
        return session_id

    def _record_consent(
        self,
        s: Session,
        survey: Survey,
        record: Record,
        contact: Contact,
        address: Address,
        now: datetime,
    ) -> None:
        """The answer to a survey's consent question is the citizen's own word on future
        consultations, recorded on the address they answered from (docs/contacts.md)."""
        question = survey.question(record.question_id)
        if question is None or not question.consent or not isinstance(record.value, bool):
            return  # not the consent question, or skipped
        given = record.value
        source = f"survey {survey.id}" if given else f"{DECLINED_PREFIX}survey {survey.id}"
        record_consent(s, address.channel, address.value, given=given, source=source, now=now)
        action = "consent given" if given else "consent withdrawn"
        details = {"survey": survey.id, "channel": address.channel}
        repo.audit(s, "citizen", action, self.pseudonym(s, contact.id), details, now)

    def _info_text(self, s: Session, contact: Contact, address: Address, language: str) -> str:
        answers = (
            s.scalar(
                select(func.count(AnswerRow.id))
                .join(SessionRow, SessionRow.id == AnswerRow.session_id)
                .where(SessionRow.contact_id == contact.id)
            )
            or 0
        )
        surveys = (
            s.scalar(select(func.count(SessionRow.id)).where(SessionRow.contact_id == contact.id))
            or 0
        )
        return t(
            language,
            N_(
                "We hold: your {channel} address, language {language}, answers: {answers}, "
                "consultations: {surveys}. FORGET erases it."
            ),
            channel=address.channel.upper() if address.channel == "sms" else address.channel,
            language=(contact.language or language).upper(),
            answers=answers,
            surveys=surveys,
        )

    # --- privacy ----------------------------------------------------------------------------


class _Languages:
    """The language each message of a run of effects is written in: a survey step's in the
    session's language, the others in the conversation's (after any LANG in the run)."""

    def __init__(self, language: str) -> None:
        self._language = language
        self._step: dict[tuple[str, tuple[Option, ...]], str] = {}

    def follow(self, effect: conv.Effect) -> None:
        if isinstance(effect, conv.ChangeLanguage):
            self._language = effect.language
        elif isinstance(effect, conv.UpdateSession):
            said = effect.step.state.language
            self._step = {(say.text, say.options): said for say in effect.step.says}

    def of(self, say: Say) -> str:
        return self._step.get((say.text, say.options), self._language)


def results_text(
    s: Session, service: ServiceCore, contact: Contact, language: str, ctx: conv.Context
) -> str:
    """RESULTS: the latest outcome published for the consultation the citizen is in or took
    part in last (else the latest of any), or else how that consultation is going."""
    slug: str | None = None
    if ctx.active is not None:
        slug = ctx.active.survey.id
    elif ctx.previous:
        slug = repo.last_survey_of(s, contact.id)
    found = latest_outcome(s, slug, contact.attributes, language)
    if found is not None:
        return found
    summary = summary_text(s, service.survey(s, slug), language) if slug else None
    return summary or t(language, N_("No results have been published yet."))
