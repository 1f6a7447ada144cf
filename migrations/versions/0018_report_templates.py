"""report templates: reports a finance lead defines without code, versioned

- `report_templates`: a template as it stands now (name, dataset, current version, archived or not).
- `report_template_versions`: every saved definition (validated JSON) and the admin's PDF layout, one row per
  version. A version never changes once saved: a trigger refuses UPDATE and DELETE, whoever writes, so a report that
  pinned a version can always be explained by it.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "report_templates",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("dataset", sa.String(20), nullable=False),
        sa.Column("current_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "dataset IN ('entries', 'approvals', 'budgets', 'invoices', 'payments')", name="dataset_known"
        ),
        sa.CheckConstraint("current_version >= 1", name="version_positive"),
        sa.UniqueConstraint("name"),
    )
    op.execute(
        "CREATE TRIGGER report_templates_touched BEFORE UPDATE ON report_templates "
        "FOR EACH ROW EXECUTE FUNCTION touch_row()"
    )
    op.create_table(
        "report_template_versions",
        sa.Column("template_id", sa.BigInteger(), sa.ForeignKey("report_templates.id"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("definition", postgresql.JSONB(), nullable=False),
        sa.Column("layout", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.execute(
        """
        CREATE FUNCTION report_template_version_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'report template % version % is immutable', OLD.template_id, OLD.version
                USING ERRCODE = 'P0001', HINT = 'save a new version instead';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER report_template_versions_frozen BEFORE UPDATE OR DELETE ON report_template_versions "
        "FOR EACH ROW EXECUTE FUNCTION report_template_version_frozen()"
    )


def downgrade() -> None:
    op.drop_table("report_template_versions")
    op.execute("DROP FUNCTION report_template_version_frozen()")
    op.drop_table("report_templates")
