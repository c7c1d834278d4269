"""Pushes: a consultation (or its outcome) sent to an audience at a chosen time.

A push is a row (``pushes``), the truth staff see. The scheduler (:mod:`bot.scheduler`) only
wakes this module up: :meth:`Pushes.fire` when a push falls due, :meth:`Pushes.tick` every
few seconds for what is due in the meantime. Both take the time from the injected clock, so
tests drive them with a fixed one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.service import Service, utc_now
from storage.db import transaction
from storage.models import PushRow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class FireResult:
    """What firing a push did: ``planned`` recipients, or why nothing happened."""

    push_id: int
    #: ``"fired"``, ``"already fired"``, ``"missed"``, ``"cancelled"``, ``"unknown"``.
    outcome: str
    planned: int = 0


class Pushes:
    """Voxpop's push use cases over one database; build once per process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        service: Service,
        config: Config,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._config = config
        self._clock = clock

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
            if now - push.scheduled_at > grace:
                push.status = "missed"
                push.note = f"missed: no scheduler ran until {now:%Y-%m-%d %H:%M} UTC"
                log.warning("push %d missed: %s late", push_id, now - push.scheduled_at)
                return FireResult(push_id, "missed")
            push.status, push.fired_at = "sending", now
            # Planning the recipients comes next (issue 4, in progress).
            return FireResult(push_id, "fired", push.planned)

    def tick(self) -> None:
        """Carry out what fell due since the last tick (issue 4, in progress)."""
