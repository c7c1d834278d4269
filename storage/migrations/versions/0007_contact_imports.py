"""Contacts files uploaded in the console: checked, then imported by a worker in chunks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

One row per upload holds the file until its import ends, what the check found (problems by
line, counts) and how far the worker has gone, so the page polls the database and a worker
that stops is resumed by another (docs/contacts.md, "Importing in the console").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # TEXT on SQLite, as in 0003: a JSON-declared column has NUMERIC affinity.
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contact_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("checked", _json(), nullable=True),
        sa.Column("imported", _json(), nullable=True),
        sa.Column("problems", _json(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.CheckConstraint(
            "status IN ('checking', 'checked', 'refused', 'importing', 'done', 'failed', "
            "'discarded')",
            name=op.f("ck_contact_imports_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_imports")),
    )
    op.create_index(op.f("ix_contact_imports_status"), "contact_imports", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_contact_imports_status"), table_name="contact_imports")
    op.drop_table("contact_imports")
