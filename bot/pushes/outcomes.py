"""Closing the loop: what the city decided, published to everyone who took part, and what
``RESULTS`` answers at any time.

Publishing stores the outcome (``outcomes``) and makes a push of kind ``outcome`` to every
contact who answered at least one question of the consultation and has not opted out: taking
part is their consent for hearing back. It goes out like an invitation (quiet hours, the
rate, the providers' limits), one message per person in their language, worded for their
district when the file says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.pushes.audience import Audience
from bot.pushes.service import Pushes, PushSpec
from bot.service import Service
from storage import repo
from storage.db import transaction
from storage.models import OutcomeRow
from surveys.outcomes import Outcome


@dataclass(frozen=True)
class Published:
    outcome_id: int
    push_id: int


def outcome_push(outcome: Outcome, base: PushSpec, actor: str = "staff") -> PushSpec:
    """The push that sends ``outcome``: ``base`` gives the time, channels, quiet hours and
    rate; the audience is everyone who took part."""
    return PushSpec(
        survey=outcome.survey,
        at=base.at,
        audience=Audience(took_part=(outcome.survey,)),
        channels=base.channels,
        timezone=base.timezone,
        quiet_hours=base.quiet_hours,
        rate_per_second=base.rate_per_second,
        kind="outcome",
        message=outcome.to_json(),
        created_by=actor,
    )


def publish(
    pushes: Pushes,
    service: Service,
    outcome: Outcome,
    source: str,
    spec: PushSpec,
    *,
    recipients: int | None = None,
) -> Published:
    """Store ``outcome`` and make its push (``spec``, from :func:`outcome_push`); who it
    reaches is :meth:`Pushes.preview`'s to tell, before (``recipients``, for the audit log).
    Audited once, as ``outcome published`` by ``spec.created_by``: the push is part of it."""
    # One transaction: a push with no outcome row to say what it was would be sent anyway.
    with transaction(service.sessions) as s:
        now = service.now()
        push_id = pushes.add(s, spec, audited=False)
        row = OutcomeRow(
            survey_slug=outcome.survey,
            published_at=now,
            message=outcome.to_json(),
            source=source,
            push_id=push_id,
        )
        s.add(row)
        s.flush()
        details: dict[str, int] = {"outcome": row.id, "push": push_id}
        if recipients is not None:
            details["recipients"] = recipients
        repo.audit(s, spec.created_by, "outcome published", outcome.survey, details, now)
        return Published(row.id, push_id)
