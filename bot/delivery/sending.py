"""What the dispatcher works with: a claimed message (:class:`Job`), what became of its send
(:class:`Outcome`), a channel's pacing, and the dispatcher's settings. Plain values, shared by
:mod:`bot.delivery.dispatcher`, its pipeline and the transports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from channels import errors
from channels.base import SendReceipt

__all__ = [
    "HELD",
    "MESSAGE_KINDS",
    "Deliver",
    "DispatchSettings",
    "Job",
    "Outcome",
    "Pacing",
]

#: Kinds that are messages a citizen sees, paced per address; others are chores (button
#: answers, keyboard removals) that no chat limit applies to.
MESSAGE_KINDS: Final = frozenset({"reply", "push"})
#: Held rows wait for the citizen's next message (WhatsApp's window).
HELD: Final = "held"


@dataclass(frozen=True)
class Job:
    """One claimed outbox row, detached from the database session."""

    id: int
    channel: str
    address: str
    kind: str
    text: str
    payload: Any
    attempts: int
    #: Seconds after the claim before it may be sent (the sender's and the address's pacing).
    delay: float = 0.0
    #: Outside the session window: send the approved template instead of the text.
    template: bool = False

    @property
    def opens_invitation(self) -> bool:
        """The first message of an invitation, which may go as a template."""
        return (
            self.kind == "push"
            and isinstance(self.payload, Mapping)
            and isinstance(self.payload.get("invitation"), Mapping)
        )


def _one(job: Job) -> int:
    return 1


@dataclass(frozen=True)
class Pacing:
    """How one channel may send, for all dispatchers together."""

    #: The shared budget (``send_budgets.key``): the sender, e.g. ``sms:+3247...``.
    key: str
    per_second: float
    #: The least time between two messages to one address (Telegram: a second per chat).
    per_address: timedelta | None = None
    #: What a job uses of the budget: an SMS's segments; 0 for a chore that is not limited.
    cost: Callable[[Job], int] = _one
    #: Free-form messages only this long after the citizen's last message (WhatsApp).
    session_window: timedelta | None = None
    #: A 429 holds back the whole sender for its ``retry_after`` (else the address only).
    throttle_holds_sender: bool = True

    @property
    def per_address_rows(self) -> bool:
        """Whether a claim needs the addresses' rows (their gap or their window)."""
        return self.per_address is not None or self.session_window is not None


#: Sends one job on its channel; raises a :class:`channels.errors.SendError`.
Deliver = Callable[[Job], Awaitable[SendReceipt]]


@dataclass(frozen=True)
class DispatchSettings:
    #: A send must finish well within this, or another dispatcher may send the row again.
    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 6
    base_backoff: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(minutes=15)
    #: Our own credentials refused: retry later without using up the message's attempts.
    config_error_wait: timedelta = timedelta(minutes=5)
    #: Rows one claim takes per channel, at most.
    batch: int = 100
    concurrency: int = 32
    #: A claim takes what its pacing lets leave within this; the rest waits for a later claim.
    horizon: timedelta = timedelta(seconds=1)
    #: A dispatcher prunes delivery reports that never matched a message after this.
    report_ttl: timedelta = timedelta(hours=1)
    #: A message owed to someone forgotten (FORGET's goodbye) that could not leave within
    #: this is dropped, address and all: nobody is left to wait for it.
    owed_ttl: timedelta = timedelta(days=1)
    #: How often an idle dispatcher tries to empty SQLite's write-ahead log, in case a
    #: reader kept an erasure's old copies there (:func:`storage.db.scrub_wal`).
    scrub_interval: timedelta = timedelta(minutes=1)
    #: Outcomes wait at most this long for their group's transaction ...
    record_interval: timedelta = timedelta(milliseconds=10)
    #: ... or until this many have finished; no send starts while twice this many wait or
    #: are being recorded (docs/delivery.md: the duplicate window).
    record_group: int = 50
    #: Claim again once fewer claimed messages than this are left to send (0: the larger of
    #: ``concurrency`` and half a ``batch``).
    refill_below: int = 0


@dataclass(frozen=True)
class Outcome:
    job: Job
    receipt: SendReceipt | None = None
    error: errors.SendError | None = None
    #: Not tried: an earlier message to the same address failed, and order matters.
    deferred: bool = False
