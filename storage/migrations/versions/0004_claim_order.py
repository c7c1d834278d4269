"""Claiming order: messages carry their claim priority, and an index serves claims in order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

A claim takes due rows by priority (a button's answer, replies, pushes), then due time. It
sorted every due row of its channel by an expression of ``kind`` to take its first hundred:
about 5 ms a claim with 10,000 due. With the priority stored and an index in claiming order
replacing the (status, next_attempt_at) one, a claim reads the rows it takes and stops.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default=sa.text("1"))
        )
    # storage.models.claim_priority, for the rows already there.
    op.execute("UPDATE messages SET priority = 0 WHERE kind = 'callback_answer'")
    op.execute("UPDATE messages SET priority = 2 WHERE kind = 'push'")
    # The only index on status: SQLite's planner, without statistics, took the range on
    # (status, next_attempt_at) and sorted every due row.
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index(
        "ix_messages_claim",
        "messages",
        ["status", "channel", "priority", "next_attempt_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index("ix_messages_due", "messages", ["status", "next_attempt_at"])
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("priority")
