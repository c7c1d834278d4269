"""The service: the only place where the engine's decisions meet the database and the clock.

``receive`` handles one inbound message in ONE transaction: store the inbound row (a
redelivery is a no-op), find or create the contact, route the text (commands, keywords,
the active survey), store answers and state, and write the outbound rows (the outbox).
``receive_press`` does the same for a tapped button, ``notify_ignored`` asks for text after a
sticker or a voice note, and ``record_status`` applies a provider's delivery report.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.consultations.catalog import CATALOG_SETTING, LoadedSurvey, SurveyCatalog, loaded_keywords
from bot.consultations.results import latest_outcome, summary_text
from bot.conversation import engine
from bot.conversation import router as conv
from bot.conversation.engine import Finish, Record, Say, SessionState, session_status
from bot.conversation.i18n import N_, t
from channels.base import ButtonPress, Ignored, Rendered, StatusUpdate
from channels.registry import renderer
from messages import Address, InboundMessage, Option, OutboundMessage, stored_outbound
from storage import repo
from storage.contacts import DECLINED_PREFIX, record_consent
from storage.db import SCRUB_WAIT_MS, scrub_wal, transaction
from storage.models import Address as AddressRow
from storage.models import AnswerRow, Contact, Message, SessionRow, SurveyRow
from surveys.model import Survey

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_T = TypeVar("_T")
PSEUDONYM_SETTING = "pseudonym_key"
#: Tries of one write that lost a race with the same citizen's other message. After the first,
#: each try waits for the contact's lock, so it can only lose to a message that was already
#: under way: a burst of messages from one citizen settles within as many tries.
CONCURRENT_TRIES = 10
#: PostgreSQL's deadlock and serialization failures: the transaction is undone, try again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
#: Outbox kinds besides "reply"/"push" that the dispatcher carries out for Telegram buttons:
#: answerCallbackQuery (payload ``{"callback_id"}``) and the removal of an answered keyboard
#: (payload ``{"chat", "message_id"}``). Their ``text`` is empty; nothing is shown.
CALLBACK_ANSWER = "callback_answer"
KEYBOARD_REMOVE = "keyboard_remove"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outgoing:
    """An outbound row as written, for the simulator to show."""

    id: int
    message: OutboundMessage
    #: The language the text is written in (for the simulator's ``lang`` attribute).
    language: str | None = None

    @property
    def address(self) -> Address:
        return self.message.address

    @property
    def text(self) -> str:
        return self.message.text

    def render(self) -> Rendered:
        """The message exactly as its channel will show it."""
        return renderer(self.address.channel).render(self.message)


@dataclass(frozen=True)
class Received:
    duplicate: bool
    outgoing: tuple[Outgoing, ...] = ()


@dataclass(frozen=True)
class Invitation:
    """What an invitation wrote: its messages, and the session it began (``None`` when it
    began none: the survey is closed, or the contact took part already)."""

    outgoing: tuple[Outgoing, ...]
    session_id: int | None


@dataclass
class _Ready:
    """What an inbound message is decided on: read before its write transaction."""

    contact: Contact
    address: AddressRow
    sessions: list[SessionRow]
    active: int | None
    ctx: conv.Context
    #: What the conversation makes of the message, decided ahead (None: decide in the
    #: write transaction).
    effects: tuple[conv.Effect, ...] | None = None


@dataclass(frozen=True)
class _Handled:
    received: Received
    #: Rows were queued for the dispatcher: wake it after the commit.
    notify: bool
    #: The contact was erased: scrub after the commit.
    erased: bool = False


class Service:
    """Voxpop's use cases over one database. Build once per process: it caches surveys."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utc_now,
        default_language: str = "en",
        pseudonym_key: str = "",
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        #: Called after a commit that queued messages to send (wakes the dispatcher).
        self._on_outbox = on_outbox
        self._clock = clock
        self._default_language = default_language
        self._pseudonym_key = pseudonym_key.encode() if pseudonym_key else b""
        # Surveys are parsed once per stored version (row id) and kept for the process.
        self._catalog = SurveyCatalog()

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database sessions this service works on (for use cases built on it)."""
        return self._sessions

    def now(self) -> datetime:
        """The service's clock."""
        return self._clock()

    # --- inbound ----------------------------------------------------------------------------

    def receive(self, msg: InboundMessage, *, simulated: bool = False) -> Received:
        """Handle one inbound message; ``simulated`` replies are shown, never sent, and the
        conversation lives in the simulators' own address space (:func:`simulator_address`)."""
        if simulated:
            msg = replace(msg, address=simulator_address(msg.address))
        return self._receive(msg, simulated=simulated)

    def receive_press(self, press: ButtonPress) -> Received:
        """Handle a tapped button as :meth:`receive` does, and queue the callback's answer
        (:data:`CALLBACK_ANSWER`) and the keyboard's removal (:data:`KEYBOARD_REMOVE`).

        A tap on a keyboard already answered, or on a button of a question that is no longer
        current, gets its callback answered and changes nothing else.
        """
        return self._receive(press.message, press=press)

    def _receive(
        self, msg: InboundMessage, *, simulated: bool = False, press: ButtonPress | None = None
    ) -> Received:
        # Two messages from one citizen at once: the later commit lost the optimistic lock or
        # the one-active-session index, or a deadlock with FORGET. Again, under the contact's
        # lock, it sees the first.
        result = self._retrying(
            lambda again: self._receive_once(msg, simulated=simulated, press=press, locked=again)
        )
        if result.erased:
            self.scrub()
        if result.notify and self._on_outbox is not None:
            self._on_outbox()  # after the commit: the dispatcher must see the rows
        return result.received

    def _receive_once(
        self, msg: InboundMessage, *, simulated: bool, press: ButtonPress | None, locked: bool
    ) -> _Handled:
        now = self._clock()
        channel, value = msg.address.channel, msg.address.value
        ready: _Ready | None = None
        if press is None and not locked:
            # Read and decide before the write transaction: on SQLite writers take turns, so
            # only the writes should hold the lock. A message from the same citizen committed
            # in between is caught by the session's optimistic lock (and tried again).
            with transaction(self._sessions, read_only=True) as r:
                found = repo.find_contact(r, channel, value)
                if found is not None:
                    ready = self._ready(r, found[0], found[1], now)
                    ready.effects = conv.handle(ready.ctx, msg.text, msg.payload)
        with transaction(self._sessions) as s:
            if ready is None:  # a new contact, a tapped button or a retry: all under the lock
                contact, address, _ = repo.find_or_create_contact(s, channel, value, now)
                # Two taps (or messages) at once wait for each other here, so the second sees
                # what the first did (its keyboard removal, its answer).
                repo.lock_contact(s, contact.id)
                ready = self._ready(s, contact, address, now)
            else:
                repo.lock_contact(s, ready.contact.id)
            return self._handle(s, msg, ready, simulated, press, now)

    def _ready(self, s: Session, contact: Contact, address: AddressRow, now: datetime) -> _Ready:
        sessions = repo.sessions_for_contact(s, contact.id)
        ctx = self._context(s, contact, sessions, address.opted_out_at is not None, now)
        active = next((r.id for r in sessions if r.status == "active"), None)
        return _Ready(contact, address, sessions, active, ctx)

    def _handle(
        self,
        s: Session,
        msg: InboundMessage,
        ready: _Ready,
        simulated: bool,
        press: ButtonPress | None,
        now: datetime,
    ) -> _Handled:
        """The writes of one inbound message, in the caller's (write) transaction."""
        contact, address, sessions, active, ctx = (
            ready.contact,
            ready.address,
            ready.sessions,
            ready.active,
            ready.ctx,
        )
        row = repo.insert_inbound(
            s,
            channel=msg.address.channel,
            address=msg.address.value,
            provider_id=msg.provider_id,
            text=msg.text,
            payload=msg.payload,
            received_at=msg.received_at,
            contact_id=contact.id,
            session_id=active,
        )
        if row is None:
            # Providers retry on errors and timeouts: a redelivery answers 200, changes nothing.
            log.info("duplicate inbound on %s for contact %d", msg.address.channel, contact.id)
            return _Handled(Received(duplicate=True), notify=False)
        repo.touch_address(s, address, now)
        fresh = press is None or self._answer_press(s, press, contact.id, active, ctx, now)
        go_ahead = conv.is_go_ahead(ctx, msg.text, msg.payload)
        released = () if simulated else self._release_held(s, msg.address, go_ahead, now)
        if "push" in released and go_ahead:
            # The citizen answered an invitation sent as a template outside WhatsApp's
            # window: what it held back (the first question) goes now; this is no answer.
            log.info("contact %d answered a template: invitation continues", contact.id)
            fresh = False
        effects: tuple[conv.Effect, ...] = ()
        if fresh:
            decided = ready.effects
            effects = decided if decided is not None else conv.handle(ctx, msg.text, msg.payload)
        if press is None and not simulated and msg.address.channel == "telegram":
            # Before the replies: the old buttons go before the next question shows.
            self._remove_answered_keyboard(s, effects, contact.id, active, now)
        out = self._apply(s, effects, contact, msg.address, ctx, sessions, now, simulated)
        # The contact id is the pseudonym in logs: never the number or the chat id.
        log.info(
            "inbound on %s for contact %d: %d effects, %d replies",
            msg.address.channel,
            contact.id,
            len(effects),
            len(out),
        )
        queued = bool(out or press is not None or released)
        erased = any(isinstance(e, conv.Forget) for e in effects)
        return _Handled(Received(False, tuple(out)), queued and not simulated, erased)

    def _release_held(
        self, s: Session, address: Address, go_ahead: bool, now: datetime
    ) -> tuple[str, ...]:
        """Messages held for WhatsApp's window go once the citizen writes (the kinds); a
        command or keyword instead supersedes them: the conversation has moved on."""
        if renderer(address.channel).capabilities.session_window is None:
            return ()
        return tuple(repo.release_held(s, address.channel, address.value, now, cancel=not go_ahead))

    def _remove_answered_keyboard(
        self,
        s: Session,
        effects: Iterable[conv.Effect],
        contact_id: int,
        session_id: int | None,
        now: datetime,
    ) -> None:
        """A typed answer to a question shown with buttons: remove the buttons, as a tap would,
        so an old button cannot look current."""
        answered = any(
            isinstance(e, conv.UpdateSession) and any(isinstance(x, Record) for x in e.step.effects)
            for e in effects
        )
        if not answered:
            return
        keyboard = repo.last_keyboard(s, contact_id, "telegram")
        if keyboard is not None:
            self._remove_keyboard(s, keyboard, contact_id, session_id, now)

    def _remove_keyboard(
        self,
        s: Session,
        keyboard: Mapping[str, str],
        contact_id: int,
        session_id: int | None,
        now: datetime,
    ) -> bool:
        """Queue the removal of a message's buttons, once; whether it was queued now."""
        if self._keyboard_removed(s, contact_id, keyboard):
            return False
        repo.add_outbound(
            s,
            channel="telegram",
            address=keyboard["chat"],
            text="",
            now=now,
            kind=KEYBOARD_REMOVE,
            payload=dict(keyboard),
            contact_id=contact_id,
            session_id=session_id,
        )
        return True

    def _keyboard_removed(self, s: Session, contact_id: int, keyboard: Mapping[str, str]) -> bool:
        earlier = s.scalars(
            select(Message.payload).where(
                Message.contact_id == contact_id,
                Message.direction == "out",
                Message.kind == KEYBOARD_REMOVE,
            )
        )
        return any(payload == keyboard for payload in earlier)

    def _answer_press(
        self,
        s: Session,
        press: ButtonPress,
        contact_id: int,
        session_id: int | None,
        ctx: conv.Context,
        now: datetime,
    ) -> bool:
        """Queue the callback's answer and the keyboard's removal; whether the tap counts."""
        channel, chat = press.message.address.channel, press.message.address.value
        # Always answered: until then the citizen's app shows a spinner on the button.
        repo.add_outbound(
            s,
            channel=channel,
            address=chat,
            text="",
            now=now,
            kind=CALLBACK_ANSWER,
            payload={"callback_id": press.callback_id},
            contact_id=contact_id,
            session_id=session_id,
        )
        if press.keyboard_chat is not None and press.keyboard_message is not None:
            keyboard = {"chat": press.keyboard_chat, "message_id": press.keyboard_message}
            if not self._remove_keyboard(s, keyboard, contact_id, session_id, now):
                return False  # a second tap on an answered keyboard (a double tap, a lag)
        payload = press.message.payload
        if payload is None:
            return True  # a typed key (Telegram's k:<key>) counts as typed text
        # The engine would take an old question's button as a wrong answer to the current one.
        current = ctx.active.state.current if ctx.active is not None else None
        return current is not None and payload.startswith(f"{current}:")

    def notify_ignored(self, item: Ignored) -> bool:
        """Ask the sender of something Voxpop cannot read (a sticker, a voice note) to reply
        with text, in their language: once per provider update (``item.provider_id``), and
        never to an opted-out contact. Under an invitation sent as a WhatsApp template, it
        lets the consultation go on instead. Whether a message was queued."""
        target = item.notify
        if target is None or item.provider_id is None:
            return False
        with transaction(self._sessions) as s:
            now = self._clock()
            contact, address, _ = repo.find_or_create_contact(s, target.channel, target.value, now)
            active = repo.get_active_session(s, contact.id)
            session_id = active.id if active is not None else None
            row = repo.insert_inbound(
                s,
                channel=target.channel,
                address=target.value,
                provider_id=item.provider_id,
                text="",
                payload=None,
                received_at=now,
                contact_id=contact.id,
                session_id=session_id,
            )
            if row is None:
                log.info("duplicate inbound on %s for contact %d", target.channel, contact.id)
                return False
            # It still opens WhatsApp's 24-hour window: the citizen wrote to us; a thumbs-up
            # sticker under an invitation's template lets the consultation go on.
            repo.touch_address(s, address, now)
            if "push" in self._release_held(s, target, True, now):
                log.info("contact %d answered a template: invitation continues", contact.id)
            elif address.opted_out_at is not None:
                return False
            else:
                sessions = repo.sessions_for_contact(s, contact.id)
                ctx = self._context(s, contact, sessions, False, now)
                text = t(
                    conv.language_of(ctx),
                    N_("Sorry, I can only read text. Please reply with a text message."),
                )
                repo.add_outbound(
                    s,
                    channel=target.channel,
                    address=target.value,
                    text=text,
                    now=now,
                    contact_id=contact.id,
                    session_id=session_id,
                )
                log.info(
                    "unreadable inbound on %s for contact %d: asked for text",
                    target.channel,
                    contact.id,
                )
        if self._on_outbox is not None:
            self._on_outbox()
        return True

    def record_status(self, update: StatusUpdate) -> bool:
        """Apply a delivery report to the outbound message with that provider id, forward
        only (:data:`storage.repo.STATUS_RANK`); whether it moved.

        A report can overtake the dispatcher: Twilio may call back before our record of its
        API answer commits. A report for an id not recorded yet is kept and applied when the
        dispatcher records it (unmatched ones are pruned after an hour).
        """
        if repo.STATUS_RANK.get(update.status, 0) == 0:
            # queued, sending, accepted...: still with the provider, and already ``sent`` here.
            log.debug("status %s on %s: nothing to record", update.status, update.channel)
            return False
        with transaction(self._sessions) as s:
            repo.lock_provider_ids(s, update.channel, [update.provider_id])
            moved = repo.apply_status(
                s, update.channel, update.provider_id, update.status, update.error_code
            )
            if moved is None:
                repo.store_early_report(
                    s,
                    update.channel,
                    update.provider_id,
                    update.status,
                    update.error_code,
                    self._clock(),
                )
        outcome = {True: "recorded", False: "no change", None: "kept until the message is known"}
        log.info("status %s on %s: %s", update.status, update.channel, outcome[moved])
        return moved is True

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

    def _write_retrying(self, write: Callable[[Session], _T]) -> _T:
        """``write`` in a transaction of its own, tried again when it lost a race with the
        same citizen's other write (:func:`lost_a_race`)."""

        def once(_again: bool) -> _T:
            with transaction(self._sessions) as s:
                return write(s)

        return self._retrying(once)

    @staticmethod
    def _retrying(attempt: Callable[[bool], _T]) -> _T:
        """``attempt(again)`` until it does not lose a race with the same citizen's other
        write (:func:`lost_a_race`), at most :data:`CONCURRENT_TRIES` times; ``again`` is
        true from the second try on."""
        for tries in range(1, CONCURRENT_TRIES + 1):
            try:
                return attempt(tries > 1)
            except Exception as exc:
                if tries == CONCURRENT_TRIES or not lost_a_race(exc):
                    raise
                log.info("concurrent update (%s); trying again", type(exc).__name__)
        raise AssertionError("unreachable")

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

    def survey(self, s: Session, slug: str) -> Survey:
        """The current version of a loaded survey; :class:`LookupError` if none."""
        self._catalog.keywords(s, fresh=True)  # another process may have loaded or closed it
        return self._catalog.current(s, slug)

    def close_survey(self, slug: str, at: datetime, actor: str = "staff") -> int:
        """Close every version of ``slug`` at ``at`` (now, or later): from then on nobody is
        invited or reminded, and late replies hear it is closed. How many versions."""
        with transaction(self._sessions) as s:
            now = self._clock()
            rows = repo.all_versions(s, slug)
            if not rows:
                raise LookupError(f"no survey {slug!r} is loaded")
            for row in rows:
                row.closes_at = at
            repo.set_setting(s, CATALOG_SETTING, f"{now.isoformat()} {secrets.token_hex(4)}")
            details = {"at": at.isoformat(), "versions": len(rows)}
            repo.audit(s, actor, "consultation closed", slug, details, now)
        self._catalog.changed()
        return len(rows)

    def survey_of(self, s: Session, session: SessionRow) -> Survey:
        """The survey version a session answers."""
        return self._catalog.version(s, session.survey_id)

    def survey_version(self, s: Session, row_id: int) -> Survey:
        """The survey version stored as ``row_id`` (parsed once for the process)."""
        return self._catalog.version(s, row_id)

    def survey_slug_of(self, s: Session, session: SessionRow) -> str:
        """The survey id a session answers (whatever its version)."""
        return self._catalog.version(s, session.survey_id).id

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

    def forget(
        self, s: Session, contact: Contact, now: datetime, *, actor: str = "citizen"
    ) -> None:
        """Erase a contact's personal data (every column of :data:`storage.personal.PERSONAL`);
        answers to closed questions stay as anonymous rows, free text goes. ``actor`` is who
        asked: the citizen (FORGET) or ``"staff"`` (``voxpop contacts erase``). Call
        :meth:`scrub` after the commit."""
        repo.lock_contact(s, contact.id)  # first, as every writer for this contact does
        free_text: dict[int, set[str]] = {}
        for row in repo.sessions_for_contact(s, contact.id):
            survey = self._catalog.version(s, row.survey_id)
            free = {q.id for q in survey.questions if q.free_text}
            state = SessionState.from_json(row.state)
            answers = {q: None if q in free else v for q, v in state.answers.items()}
            row.state = replace(state, answers=answers).to_json()
            # A fresh random respondent id: rows of one person stay together, linked to no one.
            row.respondent = "anon-" + secrets.token_hex(8)
            free_text[row.id] = free
        pseudonym = self.pseudonym(s, contact.id)
        repo.forget_contact(s, contact.id, now, free_text=free_text, pseudonym=pseudonym)
        repo.audit(s, actor, "contact erased", repo.tombstone(contact.id), {}, now)

    def scrub(self, wait_ms: int = SCRUB_WAIT_MS) -> bool:
        """After an erasure commits: drop SQLite's old copies of the erased rows from the
        write-ahead log (:func:`storage.db.scrub_wal`); whether that is done. When a reader
        holds them, the dispatcher tries again within a minute."""
        bind = self._sessions.kw.get("bind")
        done = bind is None or scrub_wal(bind, wait_ms)
        if not done:
            log.info("write-ahead log in use: erased rows are scrubbed at the next try")
        return done

    def pseudonym(self, s: Session, contact_id: int) -> str:
        """A stable pseudonym for exports: a keyed hash, never the address."""
        if not self._pseudonym_key:
            # Generated once per database, so pseudonyms stay stable across restarts.
            key = repo.init_setting(s, PSEUDONYM_SETTING, secrets.token_hex(32))
            self._pseudonym_key = key.encode()
        mac = hmac.new(self._pseudonym_key, f"contact:{contact_id}".encode(), hashlib.sha256)
        return "r-" + mac.hexdigest()[:16]

    # --- surveys ----------------------------------------------------------------------------

    def load_surveys(
        self, sources: Iterable[tuple[str, str]], actor: str = "staff"
    ) -> list[LoadedSurvey]:
        """Store parsed ``(source_name, toml_text)`` pairs; a changed text is a new version.

        The caller validates first; this raises :class:`surveys.loader.SurveyError` otherwise.
        """
        with transaction(self._sessions) as s:
            return self._catalog.store(s, sources, self._clock(), actor)

    def loaded_keywords(self, replaced: Collection[str]) -> dict[str, str]:
        """Keywords of the stored consultations but ``replaced`` (see
        :func:`bot.consultations.catalog.loaded_keywords`)."""
        with transaction(self._sessions, read_only=True) as s:
            return loaded_keywords(s, replaced)

    def survey_rows(self) -> list[tuple[SurveyRow, Survey, int, int]]:
        """Current version of each survey, its responses, and the simulator's test runs."""
        with transaction(self._sessions, read_only=True) as s:
            return [
                (row, self._catalog.version(s, row.id), *repo.count_by_origin(s, row.slug))
                for row in repo.latest_surveys(s)
            ]

    def transcript(
        self, address: Address, *, simulated: bool = False, limit: int = 500
    ) -> list[Message]:
        """The last ``limit`` messages to and from ``address`` (in the simulators' space when
        ``simulated``), oldest first."""
        if simulated:
            address = simulator_address(address)
        with transaction(self._sessions, read_only=True) as s:
            rows = s.scalars(
                select(Message)
                .where(Message.channel == address.channel, Message.address == address.value)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return list(reversed(rows.all()))

    def reset_simulated(self, address: Address) -> bool:
        """Start the simulated conversation of ``address`` over: its simulated contact is
        erased as FORGET would (its test runs stay, anonymous), so the next message begins
        a new one. Whether there was one."""
        address = simulator_address(address)

        def reset(s: Session) -> bool:
            found = repo.find_contact(s, address.channel, address.value)
            if found is None:
                return False
            self.forget(s, found[0], self._clock(), actor="simulator")
            return True

        if not self._write_retrying(reset):
            return False
        log.info("simulator: a %s conversation started over", address.channel)
        return True


def lost_a_race(exc: BaseException) -> bool:
    """Whether a write failed only because another write for the same citizen came first:
    an optimistic lock lost (:class:`StaleDataError`), a unique index hit by the same insert
    (:class:`IntegrityError`), or PostgreSQL's deadlock or serialization failure. Trying
    again sees what the other did."""
    if isinstance(exc, StaleDataError | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
    return False


def simulator_address(address: Address) -> Address:
    """Where a simulator keeps the conversation it has as ``address``: the same channel, in
    the simulators' own address space (:data:`storage.repo.SIMULATOR_SPACE`), apart from any
    citizen's, whoever uses it and whatever number is typed in."""
    return Address(address.channel, repo.simulator_value(address.value))


def outgoing_of(row: Message) -> Outgoing:
    """A stored outbound row as the simulator shows it (its options and language)."""
    payload = row.payload if isinstance(row.payload, Mapping) else {}
    message = stored_outbound(Address(row.channel, row.address or ""), row.text, row.kind, payload)
    language = payload.get("language")
    return Outgoing(row.id, message, language if isinstance(language, str) else None)


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
    s: Session, service: Service, contact: Contact, language: str, ctx: conv.Context
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


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def read_survey_sources(paths: Iterable[str], *, read: bool = True) -> list[tuple[str, str]]:
    """``(name, text)`` for each file, folders expanded to their ``*.toml`` files
    (``read=False`` leaves the text empty, to list the files only)."""
    found: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            found.append((str(file), file.read_text(encoding="utf-8") if read else ""))
    return found
