"""approval controls: requests keep their pinned limits, and an outbox carries what the workflows must hear

- `approval_requests.limits`: every role's approval limit under the policy version in force at submit. It was only
  in the workflow's input; kept with the request too, so that whatever reads the request (the API's early authority
  check, the outbox relay) judges by the same limits as the workflow. Requests opened before keep NULL.
- `approval_outbox`: what the workflow engine must be told about a change, written in the same transaction as the
  change (a workflow to start, a step re-routed). The API delivers it right after its commit; a relay in the worker
  delivers whatever is still undelivered a few seconds later (an API killed between commit and start, an engine
  that was away), so no committed change is lost between the database and the engine.
- an index to find the steps waiting on a delegate who can no longer decide.

Revision ID: 0008_approval_controls
Revises: 0007_row_maintenance
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_approval_controls"
down_revision: str | Sequence[str] | None = "0007_row_maintenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("limits", postgresql.JSONB(), nullable=True))
    op.create_index(
        "ix_approval_steps_delegate_status", "approval_steps", ["delegate_id", "status"],
        postgresql_where=sa.text("delegate_id IS NOT NULL"),
    )  # fmt: skip
    op.create_table(
        "approval_outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("request_id", sa.BigInteger(), sa.ForeignKey("approval_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("workflow_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.CheckConstraint("kind IN ('start', 'signal')", name="ck_approval_outbox_kind_known"),
    )  # fmt: skip
    op.create_index(
        "ix_approval_outbox_undelivered", "approval_outbox", ["created_at"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("approval_outbox")
    op.drop_index("ix_approval_steps_delegate_status", table_name="approval_steps")
    op.drop_column("approval_requests", "limits")
