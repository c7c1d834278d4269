"""Sending: shared rate limits, per-address pacing, and early delivery reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

``send_budgets`` holds each sender's rate limit for every dispatcher at once;
``addresses.next_send_at`` paces messages to one chat; ``status_reports`` keeps a delivery
report that arrived before its message's provider id was recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("addresses") as batch:
        batch.add_column(sa.Column("next_send_at", _ts(), nullable=True))

    op.create_table(
        "send_budgets",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("next_free_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_send_budgets")),
    )

    op.create_table(
        "status_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_reports")),
        sa.UniqueConstraint(
            "channel",
            "provider_id",
            "status",
            name=op.f("uq_status_reports_channel_provider_id_status"),
        ),
    )
    op.create_index(op.f("ix_status_reports_received_at"), "status_reports", ["received_at"])


def downgrade() -> None:
    op.drop_table("status_reports")
    op.drop_table("send_budgets")
    with op.batch_alter_table("addresses") as batch:
        batch.drop_column("next_send_at")
