"""Pushes: contacts' tags, pushes and their recipients, outcomes, and APScheduler's job store.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # TEXT on SQLite: a JSON-declared column has NUMERIC affinity and turns 7.0 into 7.
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("tags", _json(), nullable=False, server_default="[]"))

    op.create_table(
        "pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_slug", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", _ts(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("audience", _json(), nullable=False),
        sa.Column("channels", _json(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_hours", _json(), nullable=True),
        sa.Column("rate_per_second", sa.Float(), nullable=False),
        sa.Column("variants", _json(), nullable=True),
        sa.Column("reminders", _json(), nullable=True),
        sa.Column("message", _json(), nullable=True),
        sa.Column("fired_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('scheduled', 'sending', 'done', 'cancelled', 'missed')",
            name=op.f("ck_pushes_status"),
        ),
        sa.CheckConstraint("kind IN ('invitation', 'outcome')", name=op.f("ck_pushes_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pushes")),
    )
    op.create_index(op.f("ix_pushes_status_scheduled_at"), "pushes", ["status", "scheduled_at"])
    op.create_index(op.f("ix_pushes_survey_slug"), "pushes", ["survey_slug"])

    op.create_table(
        "push_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("push_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", _ts(), nullable=False),
        sa.Column("invited_at", _ts(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("next_reminder_at", _ts(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('planned', 'invited', 'skipped', 'cancelled')",
            name=op.f("ck_push_recipients_status"),
        ),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["pushes.id"],
            name=op.f("fk_push_recipients_push_id_pushes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_push_recipients_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_push_recipients_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_recipients")),
        # Planning twice (a double fire, a restart mid-fire) plans nobody twice.
        sa.UniqueConstraint(
            "push_id", "contact_id", name=op.f("uq_push_recipients_push_id_contact_id")
        ),
    )
    op.create_index(
        op.f("ix_push_recipients_status_due_at"), "push_recipients", ["status", "due_at"]
    )
    op.create_index(
        op.f("ix_push_recipients_next_reminder_at"), "push_recipients", ["next_reminder_at"]
    )
    op.create_index(op.f("ix_push_recipients_session_id"), "push_recipients", ["session_id"])

    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("recipient_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_messages_recipient_id_push_recipients"),
            "push_recipients",
            ["recipient_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_messages_recipient_id"), ["recipient_id"])

    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_slug", sa.String(length=64), nullable=False),
        sa.Column("published_at", _ts(), nullable=False),
        sa.Column("message", _json(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("push_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["pushes.id"],
            name=op.f("fk_outcomes_push_id_pushes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
    )
    op.create_index(
        op.f("ix_outcomes_survey_slug_published_at"), "outcomes", ["survey_slug", "published_at"]
    )

    # APScheduler's SQLAlchemyJobStore table, with its own column types.
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    op.create_index(
        op.f("ix_apscheduler_jobs_next_run_time"), "apscheduler_jobs", ["next_run_time"]
    )


def downgrade() -> None:
    op.drop_table("apscheduler_jobs")
    op.drop_table("outcomes")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index(op.f("ix_messages_recipient_id"))
        batch.drop_constraint(op.f("fk_messages_recipient_id_push_recipients"), type_="foreignkey")
        batch.drop_column("recipient_id")
    op.drop_table("push_recipients")
    op.drop_table("pushes")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("tags")
