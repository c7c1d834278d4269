"""The service's foundation: its database, clock and caches, what its use cases return, the
retry of a write that lost a race with the same citizen's other write, and privacy (FORGET,
pseudonyms) that every other part relies on."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.consultations.catalog import SurveyCatalog
from bot.conversation.engine import SessionState
from channels.base import Rendered
from channels.registry import renderer
from messages import Address, OutboundMessage, stored_outbound
from storage import repo
from storage.db import SCRUB_WAIT_MS, scrub_wal, transaction
from storage.models import Contact, Message, SessionRow
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


class ServiceCore:
    """What every part of the service shares: the database, the clock, the parsed surveys."""

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

    def survey(self, s: Session, slug: str) -> Survey:
        """The current version of a loaded survey; :class:`LookupError` if none."""
        self._catalog.keywords(s, fresh=True)  # another process may have loaded or closed it
        return self._catalog.current(s, slug)

    def survey_of(self, s: Session, session: SessionRow) -> Survey:
        """The survey version a session answers."""
        return self._catalog.version(s, session.survey_id)

    def survey_version(self, s: Session, row_id: int) -> Survey:
        """The survey version stored as ``row_id`` (parsed once for the process)."""
        return self._catalog.version(s, row_id)

    def survey_slug_of(self, s: Session, session: SessionRow) -> str:
        """The survey id a session answers (whatever its version)."""
        return self._catalog.version(s, session.survey_id).id

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
