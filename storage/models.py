"""The tables, as SQLAlchemy 2.0 typed models. Alembic (``storage/migrations``) owns the schema.

Rows are plain records: there are no ORM relationships, so nothing loads lazily behind a
caller's back (the repository in :mod:`storage.repo` issues every query explicitly).
Timestamps are :class:`~storage.db.UtcDateTime`; the service passes ``now`` in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    Unicode,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from storage.db import JsonText, UtcDateTime

__all__ = [
    "PUSH_KINDS",
    "PUSH_STATUSES",
    "RECIPIENT_STATUSES",
    "SESSION_STATUSES",
    "STAFF_ROLES",
    "Address",
    "AnswerRow",
    "AuditEntry",
    "Base",
    "Contact",
    "Message",
    "OutcomeRow",
    "PushRecipient",
    "PushRow",
    "SchedulerJob",
    "SendBudget",
    "SessionRow",
    "Setting",
    "SignInFailure",
    "StaffAccount",
    "StaffSession",
    "StatusReport",
    "SurveyRow",
    "claim_priority",
    "column_length",
]

#: JSON everywhere, stored as ``jsonb`` on PostgreSQL (indexable, compact, key order irrelevant).
#: ``None`` is stored as SQL NULL (not JSON ``null``), so ``IS NULL`` means "absent" everywhere.
#: On SQLite it is TEXT (see :class:`storage.db.JsonText`): a JSON column would mangle decimals.
Json: TypeEngine[Any] = (
    JSON(none_as_null=True)
    .with_variant(JSONB(none_as_null=True), "postgresql")
    .with_variant(JsonText(), "sqlite")
)

SESSION_STATUSES: Final = ("active", "completed", "abandoned")
#: A consultation's invitation, or the "you said, we did" message after it.
PUSH_KINDS: Final = ("invitation", "outcome")
#: scheduled -> sending (recipients planned) -> done; or cancelled; or missed (too late after
#: downtime: see docs/pushes.md).
PUSH_STATUSES: Final = ("scheduled", "sending", "done", "cancelled", "missed")
#: planned -> invited; or skipped (opted out since, took part already, closed...) or cancelled.
RECIPIENT_STATUSES: Final = ("planned", "invited", "skipped", "cancelled")
DIRECTIONS: Final = ("in", "out")
#: Outbound life cycle; inbound rows are always ``received``.
OUTBOUND_STATUSES: Final = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
    "unknown",
    # WhatsApp outside its 24-hour window: waits for the citizen's next message.
    "held",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    # Explicit constraint names: identical on both engines, so migrations can refer to them
    # (SQLite batch mode needs names to drop or alter a constraint).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy's declared class attribute)
        datetime: UtcDateTime(),
        dict[str, Any]: Json,
        list[str]: Json,
        str: String(255),
    }


class Contact(Base):
    """A citizen, reached through one or more :class:`Address` rows."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: When the automatic help was last sent (it goes out at most once a day).
    last_help_at: Mapped[datetime | None]
    #: A question awaiting yes/no: ``{"kind": "forget"}``, ``{"kind": "switch", "survey": slug}``.
    pending: Mapped[dict[str, Any] | None]
    #: Set by FORGET; the row then holds no personal data.
    forgotten_at: Mapped[datetime | None]
    #: Free labels for audiences ("volunteer", "panel-2026").
    tags: Mapped[list[str]] = mapped_column(default=list)


class Address(Base):
    """A phone number or chat id on one channel. Unique per channel."""

    __tablename__ = "addresses"
    __table_args__ = (
        UniqueConstraint("channel", "value"),
        Index(None, "contact_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    consent_at: Mapped[datetime | None]
    consent_source: Mapped[str | None] = mapped_column(String(64))
    #: Set by STOP (or the provider reporting an opt-out); nothing is pushed then.
    opted_out_at: Mapped[datetime | None]
    #: Set when the provider says the number or chat does not exist.
    invalid_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    #: The dispatcher's pacing: nothing more is sent here before this (Telegram: 1/s per chat).
    next_send_at: Mapped[datetime | None]


class SurveyRow(Base):
    """One loaded version of a consultation file; a changed file gets the next version."""

    __tablename__ = "surveys"
    __table_args__ = (
        UniqueConstraint("slug", "version"),
        UniqueConstraint("slug", "digest"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    #: sha256 (hex) of the TOML source.
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    #: ``{language: title}``
    title: Mapped[dict[str, Any]]
    keywords: Mapped[list[str]]
    closes_at: Mapped[datetime | None]
    loaded_at: Mapped[datetime]


class SessionRow(Base):
    """One citizen answering one survey version: the engine's state plus its outcome.

    ``state_version`` is an optimistic lock: a concurrent update of the same row makes the
    later flush raise :class:`sqlalchemy.orm.exc.StaleDataError` instead of losing a reply.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "contact_id", "status"),
        Index(None, "status"),
        Index(None, "survey_id"),
        # At most one active session per contact, enforced by the database on both engines.
        Index(
            "uq_sessions_one_active",
            "contact_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: NULL after FORGET: the answers stay, anonymous.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"))
    #: A stable pseudonym computed by the service at creation; survives erasure.
    respondent: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: The engine's serialized state.
    state: Mapped[dict[str, Any]]
    state_version: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    #: Staff trying a consultation in the simulator: kept apart from real results.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __mapper_args__ = {"version_id_col": state_version}  # noqa: RUF012


class AnswerRow(Base):
    """One answer; ``value`` is JSON (see ``surveys.model.AnswerValue``), ``raw`` what was typed."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("session_id", "question_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    question_id: Mapped[str] = mapped_column(String(64))
    #: NULL when the question was skipped.
    value: Mapped[Any] = mapped_column(Json, nullable=True)
    raw: Mapped[str | None] = mapped_column(Text)
    #: How the reply was understood: ``"label"``, ``"number"``, ``"button"``…
    how: Mapped[str] = mapped_column(String(32))
    answered_at: Mapped[datetime]


def claim_priority(kind: str | None) -> int:
    """The order in which the dispatcher claims due messages (lowest first): a tapped
    button's answer (the citizen's client spins until it comes), then replies and chores,
    then pushes, which wait for every reply.

    >>> [claim_priority(k) for k in ("callback_answer", "reply", "keyboard_remove", "push")]
    [0, 1, 1, 2]
    """
    return 0 if kind == "callback_answer" else 2 if kind == "push" else 1


def _claim_priority(context: Any) -> int:
    return claim_priority(context.get_current_parameters().get("kind"))


class Message(Base):
    """An inbound message, or an outbound one (this table is the outbox)."""

    __tablename__ = "messages"
    __table_args__ = (
        # A provider redelivering the same inbound message hits this and becomes a no-op.
        UniqueConstraint("direction", "channel", "provider_id"),
        # A claim reads due rows in this order and stops at its limit, instead of sorting
        # every due row (bot.delivery.dispatcher); it is the only index on status, so planners
        # take it.
        Index("ix_messages_claim", "status", "channel", "priority", "next_attempt_at", "id"),
        Index(None, "contact_id"),
        Index(None, "session_id"),
        Index(None, "recipient_id"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(32))
    #: The raw address value; NULL after FORGET.
    address: Mapped[str | None] = mapped_column(String(255))
    #: NULL after FORGET. An outbound row without a contact is owed to someone forgotten
    #: (the goodbye): it keeps its address only until the dispatcher records its outcome.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    #: ``"reply"`` or ``"push"`` for outbound; NULL for inbound.
    kind: Mapped[str | None] = mapped_column(String(16))
    #: :func:`claim_priority` of ``kind``, set on insert.
    priority: Mapped[int] = mapped_column(
        SmallInteger, default=_claim_priority, server_default=text("1")
    )
    text: Mapped[str] = mapped_column(Text)
    #: Outbound: options/buttons; inbound: button data.
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    #: ``"received"`` for inbound; see :data:`OUTBOUND_STATUSES` for outbound.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    #: While ``sending``: when the claim expires and another dispatcher may retry.
    lease_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: The push recipient this message invites or reminds (a push's delivery counts).
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_recipients.id", ondelete="SET NULL")
    )


class SendBudget(Base):
    """A sender's rate limit, shared by every dispatcher: the earliest time its next message
    may leave (the "theoretical arrival time" of a GCRA meter)."""

    __tablename__ = "send_budgets"

    #: ``telegram``, ``sms:<sender>``, ``whatsapp:<sender>``.
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_free_at: Mapped[datetime]


class StatusReport(Base):
    """A delivery report that arrived before the dispatcher recorded the message's provider id
    (Twilio can call back before its API answer reaches us); applied when the id is recorded."""

    __tablename__ = "status_reports"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id", "status"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime]


class PushRow(Base):
    """A push: a consultation (or its outcome) sent to an audience at a time. The row is the
    truth staff see; the scheduler's jobs only wake it up."""

    __tablename__ = "pushes"
    __table_args__ = (
        Index(None, "status", "scheduled_at"),
        Index(None, "survey_slug"),
        CheckConstraint(_in("status", PUSH_STATUSES), name="status"),
        CheckConstraint(_in("kind", PUSH_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_slug: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime]
    created_at: Mapped[datetime]
    #: ``"staff"``, ``"staff:<name>"``.
    created_by: Mapped[str] = mapped_column(String(128))
    #: The filter over contacts (see :mod:`bot.pushes.audience`).
    audience: Mapped[dict[str, Any]]
    #: Channels in order of preference: a contact is reached on the first one they have.
    channels: Mapped[list[str]]
    #: For contacts without a timezone of their own.
    timezone: Mapped[str] = mapped_column(String(64))
    #: ``{"start": "21:00", "end": "09:00"}`` in each contact's own time, or NULL.
    quiet_hours: Mapped[dict[str, Any] | None]
    #: Invitations planned this many a second, so a large audience is spread over time.
    rate_per_second: Mapped[float] = mapped_column(Float)
    #: Invitation wordings to compare: ``[{"name": "A", "texts": {"en": ...}}, ...]``.
    variants: Mapped[list[Any] | None] = mapped_column(Json, nullable=True)
    #: ``{"after_hours": 24, "max": 1}``, or NULL.
    reminders: Mapped[dict[str, Any] | None]
    #: An outcome push's texts: ``{"texts": {lang: text}, "by": attribute, "values": {...}}``.
    message: Mapped[dict[str, Any] | None]
    fired_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: Recipients planned when it fired.
    planned: Mapped[int] = mapped_column(Integer, default=0)
    #: Why it was missed or cancelled, for staff.
    note: Mapped[str | None] = mapped_column(Text)


class PushRecipient(Base):
    """One contact in a push: when their invitation is due, and what became of it. Unique per
    push and contact, so planning a push twice (a double fire, a restart) plans nobody twice."""

    __tablename__ = "push_recipients"
    __table_args__ = (
        UniqueConstraint("push_id", "contact_id"),
        Index(None, "status", "due_at"),
        Index(None, "next_reminder_at"),
        Index(None, "session_id"),
        CheckConstraint(_in("status", RECIPIENT_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(32))
    #: NULL after FORGET.
    address: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(16))
    #: The invitation wording this recipient gets (A/B), or NULL.
    variant: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    #: When the invitation may go: the push's time, spread at its rate, after quiet hours.
    due_at: Mapped[datetime]
    invited_at: Mapped[datetime | None]
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    next_reminder_at: Mapped[datetime | None]
    #: Why it was skipped or is waiting (``opted out``, ``in another consultation``...).
    reason: Mapped[str | None] = mapped_column(String(64))


class OutcomeRow(Base):
    """What the city decided after a consultation ("you said, we did"), as published."""

    __tablename__ = "outcomes"
    __table_args__ = (Index(None, "survey_slug", "published_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_slug: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime]
    #: ``{"texts": {lang: text}, "by": attribute or null, "values": {value: {lang: text}}}``.
    message: Mapped[dict[str, Any]]
    #: The TOML file as published.
    source: Mapped[str] = mapped_column(Text)
    push_id: Mapped[int | None] = mapped_column(ForeignKey("pushes.id", ondelete="SET NULL"))


class SchedulerJob(Base):
    """APScheduler's job store (``SQLAlchemyJobStore``), declared here so that Alembic owns it
    like every other table. The columns are APScheduler's own."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)


class AuditEntry(Base):
    """Who did what. ``subject`` is a pseudonym, never a phone number or chat id."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    #: ``"citizen"``, ``"staff:<name>"`` or ``"system"``.
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


#: Staff roles, each allowed what the one after it may do and more (docs/console.md).
STAFF_ROLES: Final = ("admin", "editor", "analyst")


class StaffAccount(Base):
    """A member of the city's staff who signs in to the console."""

    __tablename__ = "staff_accounts"
    __table_args__ = (CheckConstraint(_in("role", STAFF_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Lower case, as typed at sign-in.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: argon2id, with its parameters (``$argon2id$v=19$m=...``).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_sign_in_at: Mapped[datetime | None]
    #: The one-time code secret (base32); confirmed once a first code was right.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_confirmed_at: Mapped[datetime | None]
    #: SHA-256 of each unused recovery code (random, so a fast hash is enough).
    recovery_codes: Mapped[list[str]] = mapped_column(default=list)


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept, so
    a copy of the database signs nobody in."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    #: The absolute end, whatever the activity.
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    #: ``password`` while a one-time code is still asked for, then ``signed_in``.
    stage: Mapped[str] = mapped_column(String(16))
    #: The browser, as its User-Agent says, shortened: for the staff's list of sessions.
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class SignInFailure(Base):
    """A failed sign-in, counted to slow down password guessing across every worker.

    Keys are keyed hashes of the email and the client address, so the table lists no one.
    """

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    account_key: Mapped[str] = mapped_column(String(64), index=True)
    address_key: Mapped[str] = mapped_column(String(64), index=True)


class Setting(Base):
    """A key/value pair the deployment generates once, e.g. the pseudonym key."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def column_length(attribute: Any) -> int:
    """The length of a ``String(n)`` column, for code that must fit outside text into it:
    the model is the one place lengths are written.

    >>> column_length(Message.provider_id), column_length(StatusReport.error_code)
    (128, 32)
    """
    length = getattr(attribute.property.columns[0].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{attribute} is not a column of limited length")
    return length
