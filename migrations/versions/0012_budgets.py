"""budgets: limits per period for a team subtree or a category, and the ledger of what is charged to them

- `budgets` (as each stands now) and `budget_versions` (every version saved, readable after a revision).
- `budget_periods`: each period's amount and its running `committed` and `actual` sums, locked by a submit that
  charges it, so two submissions never both take the last room of a `block` budget.
- `budget_ledger`: one row per charge (committed, released, actual), unique by workflow, round, kind and budget, so a
  retried transition writes nothing twice.
- `budget_thresholds` and `budget_alerts`: each alert threshold's state per period, and the alerts to email.

Revision ID: 0012_budgets
Revises: 0011_currency_totals_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_budgets"
down_revision: str | Sequence[str] | None = "0011_currency_totals_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(19, 4)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("team_manager_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("period_kind", sa.String(10), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("policy", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("thresholds", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("policy IN ('ignore', 'warn', 'extra_approval', 'block')", name="policy_known"),
        sa.CheckConstraint("period_kind IN ('month', 'quarter', 'year')", name="period_kind_known"),
        sa.CheckConstraint("team_manager_id IS NOT NULL OR category IS NOT NULL", name="scoped"),
        sa.CheckConstraint("EXTRACT(DAY FROM starts_on) = 1", name="starts_on_first_of_month"),
    )
    op.create_index("ix_budgets_category", "budgets", ["category"])
    op.create_index("ix_budgets_team_manager_id", "budgets", ["team_manager_id"])
    op.execute("CREATE TRIGGER budgets_touched BEFORE UPDATE ON budgets FOR EACH ROW EXECUTE FUNCTION touch_row()")
    op.create_table(
        "budget_versions",
        sa.Column("budget_id", sa.BigInteger(), sa.ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("snapshot", postgresql.JSONB(), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "budget_periods",
        sa.Column("budget_id", sa.BigInteger(), sa.ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("starts_on", sa.Date(), primary_key=True),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("committed", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("actual", MONEY, server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("committed >= 0", name="committed_not_negative"),
        sa.CheckConstraint("actual >= 0", name="actual_not_negative"),
        sa.CheckConstraint("ends_on > starts_on", name="ends_after_start"),
    )
    op.create_table(
        "budget_ledger",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("period_starts_on", sa.Date(), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger(), sa.ForeignKey("approval_requests.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("entry_id", sa.BigInteger(), sa.ForeignKey("entries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workflow_id", sa.String(120), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("policy", sa.String(20), nullable=True),
        sa.Column("available_before", MONEY, nullable=True),
        sa.Column("over", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("kind IN ('committed', 'released', 'actual')", name="kind_known"),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.UniqueConstraint("workflow_id", "round", "kind", "budget_id"),
        sa.ForeignKeyConstraint(
            ["budget_id", "period_starts_on"],
            ["budget_periods.budget_id", "budget_periods.starts_on"],
            name="fk_budget_ledger_period_budget_periods",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_budget_ledger_request_id_round", "budget_ledger", ["request_id", "round"])
    op.create_index("ix_budget_ledger_budget_id_period_starts_on", "budget_ledger", ["budget_id", "period_starts_on"])
    op.create_table(
        "budget_thresholds",
        sa.Column("budget_id", sa.BigInteger(), primary_key=True),
        sa.Column("period_starts_on", sa.Date(), primary_key=True),
        sa.Column("threshold", sa.Integer(), primary_key=True),
        sa.Column("above", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("crossings", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id", "period_starts_on"],
            ["budget_periods.budget_id", "budget_periods.starts_on"],
            name="fk_budget_thresholds_period_budget_periods",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("budget_id", sa.BigInteger(), sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("period_starts_on", sa.Date(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("crossing", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("email", postgresql.JSONB(), nullable=False),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index(
        "ix_budget_alerts_unsent", "budget_alerts", ["id"], postgresql_where=sa.text("emailed_at IS NULL")
    )


def downgrade() -> None:
    for table in ("budget_alerts", "budget_thresholds", "budget_ledger", "budget_periods", "budget_versions"):
        op.drop_table(table)
    op.drop_table("budgets")
