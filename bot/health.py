"""Health: which parts of Voxpop work, for ``GET /readyz`` (docs/delivery.md, "Readiness").

The parts are the database, the dispatcher, the scheduler and each configured channel
(``telegram``, ``sms``, ``whatsapp``). A web process (``voxpop serve``, or a gunicorn worker)
runs none of the others itself, or only some, so every process that runs a dispatcher or a
scheduler writes a *heartbeat*: a ``settings`` row ``heartbeat:<role>:<instance>`` holding
its parts (``"ok"`` or a short reason) and the time, written every few seconds and at once
when a part changes. Readiness reads those rows; one older than its ``stale_after`` counts
as gone. A process that stops cleanly removes its row.

The reasons are plain sentences written here, never an exception's text: a readiness answer
is public and must carry no secret, no address and nothing a citizen wrote.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import utc_now
from channels import errors
from storage import repo
from storage.db import transaction

__all__ = [
    "BEAT_SECONDS",
    "OK",
    "Board",
    "Heartbeat",
    "configured_channels",
    "readiness",
    "send_problem",
    "start_problem",
]

log = logging.getLogger(__name__)

OK: Final = "ok"
#: How often a dispatcher writes its heartbeat (and at once when a part changes).
BEAT_SECONDS: Final = 10.0
#: A heartbeat older than this many of its writer's intervals counts as gone ...
_STALE_BEATS: Final = 3
#: ... and never sooner than this.
_MIN_STALE: Final = timedelta(seconds=30)
#: Rows of processes that died without removing them are deleted after this.
_FORGET_AFTER: Final = timedelta(hours=1)
HEARTBEAT_PREFIX: Final = "heartbeat:"
_PROVIDERS: Final = {"telegram": "Telegram", "sms": "Twilio", "whatsapp": "Twilio"}
#: Which channels one sender carries (Twilio's carries SMS and WhatsApp).
SENDER_CHANNELS: Final = {"telegram": ("telegram",), "twilio": ("sms", "whatsapp")}


def configured_channels(config: Config) -> tuple[str, ...]:
    """The channels this deployment sends on, in a fixed order.

    >>> from bot.config import TwilioConfig
    >>> configured_channels(Config(twilio=TwilioConfig("AC1", "t", sms_from="+15555550199")))
    ('sms',)
    """
    tg, twilio = config.telegram, config.twilio
    found: list[str] = []
    if tg.enabled:
        found.append("telegram")
    if twilio.enabled and (twilio.messaging_service_sid or twilio.sms_from):
        found.append("sms")
    if twilio.enabled and twilio.whatsapp_from:
        found.append("whatsapp")
    return tuple(found)


# --- what a failure says about its channel ----------------------------------------------------


def start_problem(channel: str, error: BaseException) -> str:
    """Why a channel's sender could not start, in plain words.

    >>> start_problem("telegram", errors.ConfigError("x", code="401"))
    'the token was rejected by Telegram'
    >>> start_problem("sms", errors.Unreachable("x"))
    'Twilio cannot be reached'
    """
    problem = send_problem(channel, error) if isinstance(error, errors.SendError) else None
    if problem is None or problem == OK:
        provider = _PROVIDERS.get(channel, channel)
        return f"the connection to {provider} could not be opened (see the log)"
    return problem


def send_problem(channel: str, error: errors.SendError | None) -> str | None:
    """What one send's outcome says about its channel: ``"ok"`` after a success, a reason
    after a failure that is ours or the provider's, ``None`` when it only concerns that
    message or citizen (blocked, invalid number, throttled, ...).

    >>> send_problem("telegram", None)
    'ok'
    >>> send_problem("whatsapp", errors.ConfigError("twilio: HTTP 401, error 20003", code="20003"))
    'Twilio rejected the account SID or auth token'
    >>> send_problem("sms", errors.ContactOptedOut("x")) is None
    True
    """
    if error is None:
        return OK
    provider = _PROVIDERS.get(channel, channel)
    if isinstance(error, errors.ConfigError):
        if channel == "telegram":
            if error.code == "409":
                return "Telegram reports a conflict: another program uses this bot's token"
            return "the token was rejected by Telegram"
        if error.code in ("20003", "401"):
            return "Twilio rejected the account SID or auth token"
        return f"Twilio refused the sender: check [twilio] for {channel}"
    if isinstance(error, errors.Unreachable):
        return f"{provider} cannot be reached"
    return None


# --- this process's parts ---------------------------------------------------------------------


class Board:
    """The parts this process runs, each ``"ok"`` or a reason; ``on_change`` is called (from
    the thread that made it) whenever one changes. Safe to use from any thread."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._parts: dict[str, str] = {}
        self._lock = threading.Lock()
        self.on_change = on_change

    def set(self, part: str, state: str) -> None:
        with self._lock:
            if self._parts.get(part) == state:
                return
            self._parts[part] = state
        if state != OK:
            log.error("%s: %s", part, state)
        else:
            log.info("%s: ok", part)
        if self.on_change is not None:
            self.on_change()

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._parts)


# --- heartbeats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    role: str
    parts: Mapping[str, str]
    at: datetime
    stale_after: timedelta

    def fresh(self, now: datetime) -> bool:
        return now - self.at <= self.stale_after


class Heartbeat:
    """This process's heartbeat row for ``role`` (``dispatcher`` or ``scheduler``), written
    every ``interval`` seconds by its caller. A failed write is logged once per outage and
    never raised: the database being away shows in readiness anyway."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        role: str,
        interval: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self.role = role
        self.key = f"{HEARTBEAT_PREFIX}{role}:{uuid.uuid4().hex[:16]}"
        self._stale_after = max(_MIN_STALE, timedelta(seconds=interval * _STALE_BEATS))
        self._clock = clock
        self._failing = False

    def beat(self, parts: Mapping[str, str]) -> None:
        now = self._clock()
        value = json.dumps(
            {
                "role": self.role,
                "parts": dict(parts),
                "at": now.isoformat(),
                "stale_after": self._stale_after.total_seconds(),
            }
        )
        try:
            with transaction(self._sessions) as s:
                repo.set_setting(s, self.key, value)
                old = [b for b in _beats(s) if now - b[1].at > _FORGET_AFTER]
                repo.delete_settings(s, [key for key, _ in old])
        except SQLAlchemyError as exc:
            if not self._failing:
                log.warning("%s heartbeat not written: %s", self.role, type(exc).__name__)
            self._failing = True
            return
        self._failing = False

    def remove(self) -> None:
        try:
            with transaction(self._sessions) as s:
                repo.delete_settings(s, [self.key])
        except SQLAlchemyError as exc:
            log.warning("%s heartbeat not removed: %s", self.role, type(exc).__name__)


def _beats(s: Session) -> list[tuple[str, Beat]]:
    found: list[tuple[str, Beat]] = []
    for key, value in repo.settings_with_prefix(s, HEARTBEAT_PREFIX):
        try:
            data = json.loads(value)
            parts = {str(k): str(v) for k, v in dict(data["parts"]).items()}
            beat = Beat(
                str(data["role"]),
                parts,
                datetime.fromisoformat(str(data["at"])),
                timedelta(seconds=float(data["stale_after"])),
            )
        except (ValueError, KeyError, TypeError):
            beat = Beat("unreadable", {}, datetime.min.replace(tzinfo=UTC), timedelta(0))
        found.append((key, beat))
    return found


# --- readiness --------------------------------------------------------------------------------


def readiness(
    sessions: sessionmaker[Session], config: Config, now: datetime | None = None
) -> tuple[bool, dict[str, str]]:
    """Whether every part works, and each part's state (``"ok"`` or a reason)."""
    now = now or utc_now()
    channels = configured_channels(config)
    try:
        with transaction(sessions, read_only=True) as s:
            beats = [beat for _, beat in _beats(s) if beat.fresh(now)]
    except SQLAlchemyError:
        unknown = "unknown: the database cannot be reached"
        parts = {"database": "the database cannot be reached", "scheduler": unknown}
        if channels:
            parts |= {"dispatcher": unknown} | dict.fromkeys(channels, unknown)
        return False, parts
    parts = {"database": OK, "scheduler": _scheduler(beats)}
    if channels:
        dispatchers = [b for b in beats if b.role == "dispatcher"]
        parts["dispatcher"] = _dispatcher(dispatchers)
        for channel in channels:
            parts[channel] = _channel(channel, dispatchers)
    return all(state == OK for state in parts.values()), parts


def _scheduler(beats: list[Beat]) -> str:
    states = [b.parts.get("scheduler") for b in beats if b.role == "scheduler"]
    if OK in states:
        return OK
    if states:
        return "no scheduler is active (one is standing by)"
    return "no scheduler has reported lately: is `voxpop scheduler` (or serve) running?"


def _dispatcher(dispatchers: list[Beat]) -> str:
    states = [b.parts.get("dispatcher") for b in dispatchers]
    if OK in states:
        return OK
    if states:
        return next((s for s in states if s), None) or "the dispatcher is not working"
    return "no dispatcher has reported lately: is `voxpop dispatch` (or serve) running?"


def _channel(channel: str, dispatchers: list[Beat]) -> str:
    """``"ok"`` when a dispatcher sends on it; else the newest dispatcher's reason."""
    states = [b.parts.get(channel) for b in sorted(dispatchers, key=lambda b: b.at, reverse=True)]
    if OK in states:
        return OK
    reason = next((s for s in states if s), None)
    if reason is not None:
        return reason
    if dispatchers:
        return "no dispatcher sends on this channel"
    return "nothing is sent: no dispatcher is running"
