"""What is running now, for the console's home page: open consultations and who answered
today, the next pushes, the outbox per channel, and the opt-outs of the week. A handful of
grouped queries: the counting happens in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.consultations.manage import ConsultationSummary, consultations, day_start
from bot.service import Service
from storage.db import transaction
from storage.models import Address, Message, PushRow
from storage.pushes import QUEUED_STATUSES
from storage.repo import SIMULATOR_SPACE

__all__ = ["ChannelQueue", "Home", "UpcomingPush", "home"]

#: How many pushes the home page lists.
NEXT_PUSHES = 5


@dataclass(frozen=True)
class UpcomingPush:
    id: int
    survey: str
    kind: str
    status: str
    scheduled_at: datetime


@dataclass(frozen=True)
class ChannelQueue:
    channel: str
    #: Waiting to be sent now.
    queued: int
    #: Written today (the city's day) and given up on.
    failed_today: int


@dataclass(frozen=True)
class Home:
    #: Open consultations (closing ones too), by id.
    open: tuple[ConsultationSummary, ...]
    #: Pushes scheduled or sending, soonest first.
    next_pushes: tuple[UpcomingPush, ...]
    #: Every channel with something queued or failed today.
    queues: tuple[ChannelQueue, ...]
    #: Addresses that opted out in the last 7 days (the simulator's left out).
    opt_outs_this_week: int

    @property
    def answered_today(self) -> int:
        return sum(c.answered_today for c in self.open)


def home(service: Service, zone: str) -> Home:
    """The home page's numbers; ``zone`` is the city's time zone, where today begins."""
    now = service.now()
    running = tuple(c for c in consultations(service, zone) if c.status != "closed")
    with transaction(service.sessions, read_only=True) as s:
        pushes = s.execute(
            select(
                PushRow.id, PushRow.survey_slug, PushRow.kind, PushRow.status, PushRow.scheduled_at
            )
            .where(PushRow.status.in_(("scheduled", "sending")))
            .order_by(PushRow.scheduled_at, PushRow.id)
            .limit(NEXT_PUSHES)
        )
        upcoming = tuple(UpcomingPush(*row) for row in pushes)
        queued = {
            k: int(n)
            for k, n in s.execute(
                select(Message.channel, func.count(Message.id))
                .where(Message.direction == "out", Message.status.in_(QUEUED_STATUSES))
                .group_by(Message.channel)
            )
        }
        failed = {
            k: int(n)
            for k, n in s.execute(
                select(Message.channel, func.count(Message.id))
                .where(
                    Message.direction == "out",
                    Message.status == "failed",
                    Message.created_at >= day_start(now, zone),
                )
                .group_by(Message.channel)
            )
        }
        opt_outs = s.scalar(
            select(func.count(Address.id)).where(
                Address.opted_out_at >= now - timedelta(days=7),
                Address.value.not_like(f"{SIMULATOR_SPACE}%"),
            )
        )
    queues = tuple(
        ChannelQueue(channel, int(queued.get(channel, 0)), int(failed.get(channel, 0)))
        for channel in sorted({*queued, *failed})
    )
    return Home(running, upcoming, queues, int(opt_outs or 0))
