"""What citizens send: a message, a tapped button, something unreadable, a delivery report.

``receive`` handles one inbound message in ONE transaction: store the inbound row (a
redelivery is a no-op), find or create the contact, route the text (commands, keywords,
the active survey), store answers and state, and write the outbound rows (the outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversation import router as conv
from bot.conversation.engine import Record
from bot.conversation.i18n import N_, t
from bot.service.core import Received, simulator_address
from bot.service.writing import EffectWriter
from channels.base import ButtonPress, Ignored, StatusUpdate
from channels.registry import renderer
from messages import Address, InboundMessage
from storage import repo
from storage.db import transaction
from storage.models import Address as AddressRow
from storage.models import Contact, Message, SessionRow

log = logging.getLogger(__name__)

#: Outbox kinds besides "reply"/"push" that the dispatcher carries out for Telegram buttons:
#: answerCallbackQuery (payload ``{"callback_id"}``) and the removal of an answered keyboard
#: (payload ``{"chat", "message_id"}``). Their ``text`` is empty; nothing is shown.
CALLBACK_ANSWER = "callback_answer"
KEYBOARD_REMOVE = "keyboard_remove"


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


class InboundHandling(EffectWriter):
    """The inbound use cases: a message, a button, something unreadable, a status."""

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
