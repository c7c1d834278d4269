"""The outbox's statements for the dispatcher (:mod:`bot.delivery.dispatcher`): claiming due
messages in order, leasing them, pacing their senders and chats, and recording what was sent.

Built once at import; SQLAlchemy caches their compiled form, and the per-message UPDATEs are
:class:`~storage.prepared.Prepared` (their rows go straight to the driver). Each ``SELECT``
comes in two forms: with ``FOR UPDATE [SKIP LOCKED]`` for PostgreSQL, where several
dispatchers claim at once, and without for SQLite, where claims take turns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, case, func, select, update

from storage.models import Address, Message, SendBudget
from storage.prepared import Prepared

__all__ = [
    "BUDGET",
    "CLAIM",
    "ERASE_OWED",
    "LEASE",
    "OWNED",
    "PACING_ADDRESSES",
    "SENT",
    "SET_BUDGET",
    "SET_NEXT_SEND",
    "SET_STATUS",
]

_messages: Table = Message.__table__  # type: ignore[assignment]
_addresses: Table = Address.__table__  # type: ignore[assignment]
_budgets: Table = SendBudget.__table__  # type: ignore[assignment]
_m, _a, _b = _messages.c, _addresses.c, _budgets.c


def _claim_query(status: str, skip_locked: bool) -> Any:
    """Due rows in ``status``, in claiming order.

    Queued rows are due at ``next_attempt_at``; a ``sending`` row is due again when its
    lease ran out (its dispatcher died mid-send). Both are asked through the
    (status, channel, priority, next_attempt_at, id) index, read in its order up to the
    limit: a ``sending`` row's ``next_attempt_at`` is the time it was due before its claim,
    never NULL nor later than now (only a claim sets ``sending``, and FORGET fails unsent
    rows). One query with both as an OR went through the (direction, channel, provider_id)
    index on SQLite instead: every message the channel ever sent, on every claim.
    """
    now = bindparam("now", type_=_m.next_attempt_at.type)
    due = [_m.status == status, _m.next_attempt_at <= now]
    if status == "sending":
        due.append(_m.lease_until < now)
    stmt = (
        select(
            _m.id,
            _m.channel,
            _m.address,
            _m.kind,
            _m.text,
            _m.payload,
            _m.attempts,
            _m.next_attempt_at,
            _m.priority,
            _m.contact_id,
            _m.created_at,
        )
        .where(_m.direction == "out", _m.channel == bindparam("channel"), *due)
        # The order of the (status, channel, priority, next_attempt_at, id) index: the claim
        # reads the rows it takes, and stops at the limit.
        .order_by(_m.priority, _m.next_attempt_at, _m.id)
        .limit(bindparam("limit"))
    )
    return stmt.with_for_update(skip_locked=True) if skip_locked else stmt


CLAIM = {
    (status, locked): _claim_query(status, locked)
    for status in ("queued", "sending")
    for locked in (False, True)
}
LEASE = Prepared(
    update(_messages)
    .where(_m.id == bindparam("row_id"))
    .values(
        status="sending",
        lease_until=bindparam("lease_until", type_=_m.lease_until.type),
        attempts=bindparam("claimed_attempts"),
    )
)
SET_STATUS = Prepared(
    update(_messages)
    .where(_m.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        error=func.coalesce(bindparam("new_error", type_=_m.error.type), _m.error),
        lease_until=None,
    )
)
_budget = select(_b.next_free_at).where(_b.key == bindparam("key"))
#: The sender's budget; locked until the claim commits on PostgreSQL (``True``).
BUDGET = {False: _budget, True: _budget.with_for_update()}
SET_BUDGET = (
    update(_budgets)
    .where(_b.key == bindparam("budget_key"))
    .values(next_free_at=bindparam("next_free", type_=_b.next_free_at.type))
)


def _pacing_addresses_query(skip_locked: bool) -> Any:
    stmt = (
        select(_a.id, _a.value, _a.next_send_at, _a.last_inbound_at)
        .where(
            _a.channel == bindparam("channel"), _a.value.in_(bindparam("values", expanding=True))
        )
        .order_by(_a.id)  # every claimer locks in the same order: no deadlock
    )
    return stmt.with_for_update() if skip_locked else stmt


PACING_ADDRESSES = {False: _pacing_addresses_query(False), True: _pacing_addresses_query(True)}
SET_NEXT_SEND = Prepared(
    update(_addresses)
    .where(_a.id == bindparam("address_id"))
    .values(next_send_at=bindparam("next_send", type_=_a.next_send_at.type))
)


def _owned_query(lock: bool) -> Any:
    stmt = (
        select(_m.id, _m.status, _m.attempts, _m.contact_id)
        .where(_m.id.in_(bindparam("ids", expanding=True)))
        .order_by(_m.id)  # one locking order for every dispatcher
    )
    return stmt.with_for_update() if lock else stmt


OWNED = {False: _owned_query(False), True: _owned_query(True)}
#: A send the provider accepted. The guard repeats what :data:`OWNED` found: a record that
#: comes late never touches a row another dispatcher took over.
SENT = Prepared(
    update(_messages)
    .where(
        _m.id == bindparam("row_id"),
        _m.status == "sending",
        _m.attempts == bindparam("claimed_attempts"),
    )
    .values(
        status="sent",
        sent_at=bindparam("sent_at", type_=_m.sent_at.type),
        provider_id=bindparam("provider", type_=_m.provider_id.type),
        segments=func.coalesce(bindparam("billed", type_=_m.segments.type), _m.segments),
        error=None,
        lease_until=None,
    )
)
#: An outbound row without a contact is owed to someone forgotten (FORGET's goodbye): once
#: its outcome is recorded, its address goes, and a provider id that names the address (a
#: Telegram ``chat:message`` id). An opaque id (a Twilio SID) stays, so a late delivery
#: report updates this row instead of being kept as unknown. Every SET reads the old row.
ERASE_OWED = (
    update(_messages)
    .where(
        _m.id.in_(bindparam("ids", expanding=True)),
        _m.contact_id.is_(None),
        _m.status.not_in(("queued", "sending")),
    )
    .values(
        address=None,
        payload=None,
        provider_id=case((_m.provider_id.contains(_m.address), None), else_=_m.provider_id),
    )
)
