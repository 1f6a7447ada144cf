"""backups: each manifest names the audit log's head row by id as well as by hash

A restore drill checks that the restored audit chain ends exactly at the head recorded at dump time (a chain cut
short still verifies link by link). Manifests used to record only the head's hash; hashes are unique and the log
is append-only, so the row with that hash gives the id. Data only: the manifest is JSONB, its shape is the code's.

Revision ID: 0005_backup_audit_head_id
Revises: 0004_entry_list_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_backup_audit_head_id"
down_revision: str | Sequence[str] | None = "0004_entry_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE backups AS b
        SET manifest = b.manifest || jsonb_build_object('audit_head_id', a.id)
        FROM audit_log AS a
        WHERE a.hash = b.manifest ->> 'audit_head_hash'
          AND NOT jsonb_exists(b.manifest, 'audit_head_id')
        """
    )


def downgrade() -> None:
    # Nothing to undo: earlier code ignores the key, and removing it would also strip the anchor from backups
    # taken since the upgrade.
    pass
