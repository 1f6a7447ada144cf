"""policy versions: one audit row per applied Casbin policy change, whichever process applied it first

- `policy_versions`: the versions applied, in order. Each process (every API process, the worker) reloads a changed
  file by itself; the next position is the unique key of the change, so the first process to insert it records the
  change and writes its audit row, and the others' inserts do nothing (domain/policies/versions.py).
- `policy_refusals`: the file versions refused on reload, each audited once the same way.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("previous_version", sa.String(length=16), nullable=True),
        sa.Column("applied_by", sa.String(length=40), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("previous_version IS DISTINCT FROM version", name=op.f("ck_policy_versions_a_change")),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_policy_versions")),
    )
    op.create_table(
        "policy_refusals",
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("refused_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_refusals")),
    )


def downgrade() -> None:
    op.drop_table("policy_refusals")
    op.drop_table("policy_versions")
