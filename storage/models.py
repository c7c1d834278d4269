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
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from storage.db import JsonText, UtcDateTime

__all__ = [
    "SESSION_STATUSES",
    "Address",
    "AnswerRow",
    "AuditEntry",
    "Base",
    "Contact",
    "Message",
    "SendBudget",
    "SessionRow",
    "Setting",
    "StatusReport",
    "SurveyRow",
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


class Message(Base):
    """An inbound message, or an outbound one (this table is the outbox)."""

    __tablename__ = "messages"
    __table_args__ = (
        # A provider redelivering the same inbound message hits this and becomes a no-op.
        UniqueConstraint("direction", "channel", "provider_id"),
        Index("ix_messages_due", "status", "next_attempt_at"),
        Index(None, "contact_id"),
        Index(None, "session_id"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(32))
    #: The raw address value; NULL after FORGET.
    address: Mapped[str | None] = mapped_column(String(255))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    #: ``"reply"`` or ``"push"`` for outbound; NULL for inbound.
    kind: Mapped[str | None] = mapped_column(String(16))
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


class Setting(Base):
    """A key/value pair the deployment generates once, e.g. the pseudonym key."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
