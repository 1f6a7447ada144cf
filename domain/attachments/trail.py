"""What a change to a receipt writes on its entry's audit trail: one row on the entry (its trail shows the receipts
added, refused, removed and abandoned, among its edits and decisions), naming the file and where it was kept."""

from __future__ import annotations

from typing import Any

from core.sql import Sql
from domain.attachments.repository import AttachmentRow
from domain.audit.service import AuditContext, record


def _changes(row: AttachmentRow) -> dict[str, Any]:
    return {
        "attachment_id": row.id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "storage_key": row.storage_key,
    }


async def audit(sql: Sql, context: AuditContext, action: str, row: AttachmentRow, **extra: Any) -> None:
    """Append `action` on the row's entry, with the row's file and `extra`, in the caller's transaction."""
    await record(sql, context, action, "entry", row.entry_id, _changes(row) | extra)
