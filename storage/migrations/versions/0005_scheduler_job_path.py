"""The scheduler's jobs name their function by its new module path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

APScheduler stores each push's date job with a textual reference to the function it calls,
``bot.scheduler:fire_push`` before ``bot/`` was grouped by domain, ``bot.pushes.scheduler:...``
after. The push rows are the truth and the scheduler re-creates every job from them when it
starts (``Scheduler.reconcile``), so the stored jobs are dropped instead of rewritten inside
their pickled state.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM apscheduler_jobs")


def downgrade() -> None:
    # The jobs written by the newer code name functions the older code does not have.
    op.execute("DELETE FROM apscheduler_jobs")
