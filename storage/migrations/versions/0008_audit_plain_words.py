"""The audit log names every action in plain words.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The services wrote codes (``push_create``, ``survey_load``, ``forget``...) while the console
wrote its own entry in words for the same action ("push created"). Each action is now written
once, by the service, in words; the entries already stored get the same words, so the Audit log
page shows and filters old and new entries alike. Only the ``action`` column changes: who,
when and the details stay as they were written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Old code -> words. A copy, not an import: a migration must not change with the code.
RENAMED: dict[str, str] = {
    "push_create": "push created",
    "push_cancel": "push cancelled",
    "push_send_now": "push sent now",
    "push_fire": "push fired",
    "push_missed": "push missed",
    "survey_load": "consultation loaded",
    "survey_close": "consultation closed",
    "contacts_import": "contacts imported",
    "forget": "contact erased",
    # The console's own entry for an erasure, next to the service's ``forget``.
    "contacts erased": "contact erased",
    "opt_out": "opted out",
    "opt_in": "opted in",
    "consent_given": "consent given",
    "consent_withdrawn": "consent withdrawn",
}

#: What older code reads back by its code (a contact's consent history); the other words
#: read as well as the codes did on the Audit log page, so they stay.
READ_BACK: tuple[str, ...] = ("opt_out", "opt_in", "consent_given", "consent_withdrawn")

_audit = sa.table("audit_log", sa.column("action", sa.String(64)))


def _rename(old: str, new: str) -> None:
    op.execute(_audit.update().where(_audit.c.action == old).values(action=new))


def upgrade() -> None:
    for old, new in RENAMED.items():
        _rename(old, new)


def downgrade() -> None:
    for old in READ_BACK:
        _rename(RENAMED[old], old)
