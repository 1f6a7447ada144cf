"""Presigned uploads that were never completed: a row left `pending` (holding a place in ATTACHMENT_MAX_PER_ENTRY)
and perhaps an object in the store that nothing points at. The upkeep (workflows/attachments.py) removes both once
the upload is older than its grace, which outlives the upload link (core.settings.AttachmentSettings), so a link
that still works is never swept.

Each removal is one short transaction on one row, locked (SKIP LOCKED: a row a completion or another run holds is
theirs), checked again (still pending, still old), its object deleted, then the row, with an audit row. The object
goes first, under the row's lock: when its deletion fails, the row stays and the next run tries again, so no object
is ever forgotten; a pending row without its object is what an upload not yet sent looks like anyway.
"""

from __future__ import annotations

import asyncio

from core.db import Tx
from core.settings import PENDING_GRACE_FLOOR_MARGIN_SECONDS, AttachmentSettings
from core.storage import ObjectStorage
from domain.attachments import repository as attachments
from domain.attachments import trail
from domain.attachments.repository import AttachmentRow
from domain.audit.service import AuditContext
from domain.errors import ValidationFailed

ABANDONED = "attachment.abandoned"


def checked_grace(settings: AttachmentSettings, grace_seconds: int) -> int:
    """The grace a run was given, unless it is shorter than the upload link's lifetime (and its margin): a run
    started by hand (the Temporal CLI) must not sweep uploads whose link still works either."""
    if grace_seconds < settings.shortest_pending_grace:
        raise ValidationFailed(
            f"a grace of {grace_seconds} s would remove uploads whose link still works: at least "
            f"{settings.shortest_pending_grace} s (ATTACHMENT_UPLOAD_LINK_SECONDS + "
            f"{PENDING_GRACE_FLOOR_MARGIN_SECONDS})",
            field="grace_seconds",
        )
    return grace_seconds


async def abandoned_page(tx: Tx, grace_seconds: int, after_id: int, limit: int) -> list[int]:
    """Ids of uploads still pending `grace_seconds` after their start, after `after_id` (the caller pages on)."""
    return await attachments.abandoned_ids(tx.sql, grace_seconds, after_id, limit)


async def remove_abandoned(
    tx: Tx, storage: ObjectStorage, attachment_id: int, grace_seconds: int, context: AuditContext
) -> AttachmentRow | None:
    """Remove one abandoned upload, its object and its row, audited on its entry (`attachment.abandoned`); None when
    it is no longer one (completed, deleted) or someone holds it now. The caller commits."""
    row = await attachments.claim_abandoned(tx.sql, attachment_id, grace_seconds)
    if row is None:
        return None
    await asyncio.to_thread(storage.delete, row.storage_key)  # none there (never sent) is no error
    await attachments.delete(tx.sql, row.id)
    await trail.audit(
        tx.sql,
        context,
        ABANDONED,
        row,
        entry_id=row.entry_id,
        uploaded_by_id=row.uploaded_by_id,
        started_at=row.created_at.isoformat(),
        reason=f"the upload was not completed within {grace_seconds} s of its start",
    )
    return row
