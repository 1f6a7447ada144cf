"""entry lists: a case-insensitive category index that serves the date sort; owner + amount for amount sorts

Revision ID: 0004_entry_list_indexes
Revises: 0003_dashboard_kpi
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_entry_list_indexes"
down_revision: str | Sequence[str] | None = "0003_dashboard_kpi"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_entries_kind_category", table_name="entries")
    op.execute("CREATE INDEX ix_entries_kind_lower_category_date ON entries (kind, lower(category), entry_date, id)")
    op.create_index("ix_entries_kind_owner_amount_id", "entries", ["kind", "owner_id", "amount", "id"])


def downgrade() -> None:
    op.drop_index("ix_entries_kind_owner_amount_id", table_name="entries")
    op.drop_index("ix_entries_kind_lower_category_date", table_name="entries")
    op.create_index("ix_entries_kind_category", "entries", ["kind", "category"])
