"""Backups and restore drills in the database: the manifest rows, their lifecycle, and the queries the API uses.

Services flush, never commit: the caller (a request or an activity) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from core.db import Tx
from domain.audit.service import AuditContext, record
from domain.backups.retention import Candidate, select_to_prune
from domain.errors import Conflict, InvalidState, NotFound
from domain.models import Backup, RestoreDrill
from domain.pagination import Keyset, Pager


class BackupStatus:
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PRUNED = "pruned"


class DrillStatus:
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


def storage_key_for(prefix: str, workflow_id: str) -> str:
    """`backups/backup-2026-05-01T020000Z.dump` (no colons: they trouble some file systems and tools)."""
    return f"{prefix}{workflow_id.replace(':', '')}.dump"


async def request_backup(tx: Tx, context: AuditContext, workflow_id: str) -> Backup:
    """Record an on-demand backup as queued (committed before its workflow starts).

    Conflict (naming the backup) when a backup with this workflow id exists: another request, or the daily
    schedule's run, in the same second. The insert waits for a concurrent one to commit rather than failing."""
    backup_id = await tx.session.scalar(
        insert(Backup)
        .values(workflow_id=workflow_id, status=BackupStatus.QUEUED, started_at=datetime.now(UTC), manifest={})
        .on_conflict_do_nothing(index_elements=["workflow_id"])
        .returning(Backup.id)
    )
    if backup_id is None:
        existing = await backup_by_workflow(tx, workflow_id)
        raise Conflict(
            f"backup {existing.id} ({workflow_id}) was started this very second and is {existing.status}; "
            f"follow it with GET /api/v1/admin/backups/{existing.id}",
            backup_id=existing.id,
            workflow_id=workflow_id,
            status=existing.status,
        )
    await record(tx.sql, context, "backup.requested", "backup", backup_id, {"workflow_id": workflow_id})
    return await get_backup(tx, backup_id)


async def start_backup(tx: Tx, workflow_id: str) -> Backup:
    """The row of this run (created when the schedule, not the API, started it), marked running."""
    await tx.session.execute(
        insert(Backup)
        .values(workflow_id=workflow_id, status=BackupStatus.RUNNING, started_at=datetime.now(UTC), manifest={})
        .on_conflict_do_nothing(index_elements=["workflow_id"])
    )
    backup = await backup_by_workflow(tx, workflow_id)
    if backup.status == BackupStatus.QUEUED:
        backup.status = BackupStatus.RUNNING
    backup.error = None
    await tx.session.flush()
    return backup


async def backup_by_workflow(tx: Tx, workflow_id: str) -> Backup:
    backup = await tx.session.scalar(select(Backup).where(Backup.workflow_id == workflow_id))
    if backup is None:
        raise NotFound(f"no backup for workflow {workflow_id}")
    return backup


async def complete_backup(
    tx: Tx,
    context: AuditContext,
    *,
    workflow_id: str,
    storage_key: str,
    size_bytes: int,
    sha256: str,
    duration_seconds: float,
    manifest: dict[str, Any],
) -> Backup:
    await start_backup(tx, workflow_id)
    backup = await backup_by_workflow(tx, workflow_id)
    if backup.status == BackupStatus.COMPLETED:
        return backup  # a retried activity: already recorded
    backup.status = BackupStatus.COMPLETED
    backup.storage_key = storage_key
    backup.size_bytes = size_bytes
    backup.sha256 = sha256
    backup.duration_seconds = duration_seconds
    backup.manifest = manifest
    backup.finished_at = datetime.now(UTC)
    backup.error = None
    await tx.session.flush()
    await record(
        tx.sql,
        context,
        "backup.completed",
        "backup",
        backup.id,
        {"storage_key": storage_key, "size_bytes": size_bytes, "sha256": sha256},
    )
    return backup


async def fail_backup(tx: Tx, context: AuditContext, workflow_id: str, error: str) -> Backup:
    await start_backup(tx, workflow_id)
    backup = await backup_by_workflow(tx, workflow_id)
    if backup.status != BackupStatus.FAILED:
        backup.status = BackupStatus.FAILED
        backup.error = error[:4000]
        backup.finished_at = datetime.now(UTC)
        await tx.session.flush()
        await record(tx.sql, context, "backup.failed", "backup", backup.id, {"error": error[:500]})
    return backup


def taken_at(backup: Backup) -> datetime:
    return backup.started_at or backup.created_at


async def backups_to_prune(tx: Tx, keep_daily: int, keep_monthly: int, timezone: str) -> list[Backup]:
    """Completed backups that retention no longer keeps (oldest first)."""
    completed = (
        await tx.session.scalars(select(Backup).where(Backup.status == BackupStatus.COMPLETED).order_by(Backup.id))
    ).all()
    doomed = set(select_to_prune((Candidate(b.id, taken_at(b)) for b in completed), keep_daily, keep_monthly, timezone))
    return [b for b in completed if b.id in doomed]


async def mark_pruned(tx: Tx, context: AuditContext, backup: Backup) -> None:
    backup.status = BackupStatus.PRUNED
    backup.pruned_at = datetime.now(UTC)
    await tx.session.flush()
    await record(tx.sql, context, "backup.pruned", "backup", backup.id, {"storage_key": backup.storage_key})


# Newest first, by id: a cursor's `id < %s` is a range on the primary key.
BACKUPS_KEYSET = Keyset("backups", ("id",), (int,))


async def list_backups(tx: Tx, *, status: str | None, pager: Pager) -> tuple[list[Backup], int, str | None]:
    """A page of backups, how many match, and the cursor to the next page."""
    query = select(Backup)
    if status:
        query = query.where(Backup.status == status)
    total = int(await tx.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    after = pager.key(BACKUPS_KEYSET)
    if after is not None:
        query = query.where(BACKUPS_KEYSET.after_clause([Backup.id], after))
    rows = (await tx.session.scalars(query.order_by(Backup.id.desc()).limit(pager.fetch).offset(pager.offset))).all()
    page, next_cursor = pager.cut(BACKUPS_KEYSET, list(rows), lambda row: (row.id,))
    return page, total, next_cursor


async def get_backup(tx: Tx, backup_id: int) -> Backup:
    backup = await tx.session.get(Backup, backup_id)
    if backup is None:
        raise NotFound(f"backup {backup_id} does not exist")
    return backup


async def drills_of(tx: Tx, backup_id: int) -> Sequence[RestoreDrill]:
    return (
        await tx.session.scalars(
            select(RestoreDrill).where(RestoreDrill.backup_id == backup_id).order_by(RestoreDrill.id.desc())
        )
    ).all()


async def latest_completed(tx: Tx) -> Backup | None:
    return await tx.session.scalar(
        select(Backup).where(Backup.status == BackupStatus.COMPLETED).order_by(Backup.id.desc()).limit(1)
    )


def check_drillable(backup: Backup) -> None:
    if backup.status != BackupStatus.COMPLETED or not backup.storage_key:
        raise InvalidState(f"backup {backup.id} is {backup.status}; only a completed backup can be drilled")


async def request_drill(tx: Tx, context: AuditContext, workflow_id: str, backup_id: int) -> RestoreDrill:
    """Record an on-demand drill (committed before its workflow starts); Conflict when this id is taken."""
    drill_id = await tx.session.scalar(
        insert(RestoreDrill)
        .values(workflow_id=workflow_id, backup_id=backup_id, status=DrillStatus.RUNNING, details={})
        .on_conflict_do_nothing(index_elements=["workflow_id"])
        .returning(RestoreDrill.id)
    )
    if drill_id is None:
        existing = await tx.session.scalar(select(RestoreDrill).where(RestoreDrill.workflow_id == workflow_id))
        raise Conflict(
            f"a restore drill of backup {backup_id} was started this very second ({workflow_id})",
            drill_id=existing.id if existing else None,
            backup_id=backup_id,
            workflow_id=workflow_id,
        )
    await record(tx.sql, context, "backup.drill_requested", "backup", backup_id, {"workflow_id": workflow_id})
    drill = await tx.session.get(RestoreDrill, drill_id)
    assert drill is not None
    return drill


async def start_drill(tx: Tx, workflow_id: str, backup_id: int | None) -> RestoreDrill:
    """The drill's row (once per workflow id), status running."""
    await tx.session.execute(
        insert(RestoreDrill)
        .values(workflow_id=workflow_id, backup_id=backup_id, status=DrillStatus.RUNNING, details={})
        .on_conflict_do_nothing(index_elements=["workflow_id"])
    )
    drill = await tx.session.scalar(select(RestoreDrill).where(RestoreDrill.workflow_id == workflow_id))
    assert drill is not None
    return drill


async def finish_drill(
    tx: Tx,
    context: AuditContext,
    drill_id: int,
    *,
    passed: bool,
    reason: str | None,
    details: dict[str, Any],
) -> RestoreDrill:
    drill = await tx.session.get(RestoreDrill, drill_id)
    if drill is None:
        raise NotFound(f"restore drill {drill_id} does not exist")
    if drill.status != DrillStatus.RUNNING:
        return drill  # a retried activity: already recorded
    drill.status = DrillStatus.PASSED if passed else DrillStatus.FAILED
    drill.error = reason
    drill.details = details
    drill.finished_at = datetime.now(UTC)
    await tx.session.flush()
    await record(
        tx.sql,
        context.model_copy(update={"workflow_id": context.workflow_id or drill.workflow_id}),
        "backup.drill_passed" if passed else "backup.drill_failed",
        "restore_drill",
        drill.id,
        {"backup_id": drill.backup_id, "reason": reason},
    )
    return drill


@dataclass(frozen=True)
class BackupHealth:
    """What the operators' metrics read: when the last backup completed, when the last restore drill passed, and
    whether the most recent finished drill failed (None: none finished yet)."""

    last_backup_at: datetime | None
    last_drill_passed_at: datetime | None
    last_drill_failed: bool | None


async def health(tx: Tx) -> BackupHealth:
    """Three small reads: a backup a day and a drill a week keep both tables to a few hundred rows a year (the
    backups' through ix_backups_status)."""
    last_backup = await tx.session.scalar(
        select(func.max(Backup.finished_at)).where(Backup.status == BackupStatus.COMPLETED)
    )
    last_passed = await tx.session.scalar(
        select(func.max(RestoreDrill.finished_at)).where(RestoreDrill.status == DrillStatus.PASSED)
    )
    latest = await tx.session.scalar(
        select(RestoreDrill.status)
        .where(RestoreDrill.finished_at.is_not(None))
        .order_by(RestoreDrill.finished_at.desc())
        .limit(1)
    )
    return BackupHealth(last_backup, last_passed, None if latest is None else latest == DrillStatus.FAILED)
