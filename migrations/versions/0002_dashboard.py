"""dashboard: per-owner entry totals maintained with each status change, and the indexes the dashboard reads

Revision ID: 0002_dashboard
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_dashboard"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statuses in which an entry can no longer be edited (see domain.models.dashboard): the totals count these only.
BACKFILL = """
INSERT INTO dashboard_entry_totals (owner_id, kind, month, category, status, entry_count, amount_total)
SELECT owner_id, kind, date_trunc('month', entry_date)::date, category, status, count(*), sum(amount)
FROM entries
WHERE status IN ('pending', 'approved', 'rejected', 'withdrawn', 'expired')
GROUP BY 1, 2, 3, 4, 5
"""


def upgrade() -> None:
    op.create_table(
        "dashboard_entry_totals",
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_total", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.PrimaryKeyConstraint(
            "owner_id", "kind", "month", "category", "status", name=op.f("pk_dashboard_entry_totals")
        ),
    )
    op.create_index(
        "ix_dashboard_entry_totals_status_month",
        "dashboard_entry_totals",
        ["status", "month"],
        unique=False,
        postgresql_include=["kind", "category", "owner_id", "entry_count", "amount_total"],
    )
    op.create_index(
        "ix_dashboard_entry_totals_owner_status_month",
        "dashboard_entry_totals",
        ["owner_id", "status", "month"],
        unique=False,
        postgresql_include=["kind", "category", "entry_count", "amount_total"],
    )
    op.execute(BACKFILL)

    op.create_index("ix_entries_created_id", "entries", ["created_at", "id"], unique=False)
    op.create_index("ix_entries_owner_created_id", "entries", ["owner_id", "created_at", "id"], unique=False)
    decided = sa.text("status IN ('approved', 'rejected')")
    op.create_index(
        "ix_approval_requests_decided",
        "approval_requests",
        ["decided_at"],
        unique=False,
        postgresql_include=["submitted_at", "status", "requester_id"],
        postgresql_where=decided,
    )
    op.create_index(
        "ix_approval_requests_requester_decided",
        "approval_requests",
        ["requester_id", "decided_at"],
        unique=False,
        postgresql_include=["submitted_at", "status"],
        postgresql_where=decided,
    )
    op.create_index(
        "ix_approval_requests_id_requester_status",
        "approval_requests",
        ["id"],
        unique=False,
        postgresql_include=["requester_id", "status"],
    )
    op.create_index(
        "ix_approval_requests_pending_requester",
        "approval_requests",
        ["requester_id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_approval_steps_pending_delegate",
        "approval_steps",
        ["delegate_id"],
        unique=False,
        postgresql_include=["remind_at", "request_id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_approval_steps_escalated_decided",
        "approval_steps",
        ["decided_at"],
        unique=False,
        postgresql_include=["request_id"],
        postgresql_where=sa.text("status = 'escalated'"),
    )


def downgrade() -> None:
    op.drop_index("ix_approval_steps_escalated_decided", table_name="approval_steps")
    op.drop_index("ix_approval_steps_pending_delegate", table_name="approval_steps")
    op.drop_index("ix_approval_requests_pending_requester", table_name="approval_requests")
    op.drop_index("ix_approval_requests_id_requester_status", table_name="approval_requests")
    op.drop_index("ix_approval_requests_requester_decided", table_name="approval_requests")
    op.drop_index("ix_approval_requests_decided", table_name="approval_requests")
    op.drop_index("ix_entries_owner_created_id", table_name="entries")
    op.drop_index("ix_entries_created_id", table_name="entries")
    op.drop_index("ix_dashboard_entry_totals_owner_status_month", table_name="dashboard_entry_totals")
    op.drop_index("ix_dashboard_entry_totals_status_month", table_name="dashboard_entry_totals")
    op.drop_table("dashboard_entry_totals")
