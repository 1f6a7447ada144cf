"""Backups for superadmins: run one now, list them, show one with its restore drills, run a drill now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Authorize, Grant, ServicesDep, SmallRowId, TxDep
from api.listing import listing_of
from core.engine import EngineUnavailable
from domain.backups import service
from domain.backups.schedules import backup_metadata, drill_metadata
from domain.backups.schemas import BackupDetailOut, BackupOut, BackupPageOut, RestoreDrillOut, WorkflowStartedOut
from domain.errors import Conflict, ServiceUnavailable
from domain.pagination import Cursor, Pager
from workflows.contracts import BackupInput, DrillInput, backup_workflow_id, restore_drill_workflow_id

router = APIRouter(prefix="/admin/backups", tags=["backups"])
ManageBackups = Annotated[Grant, Depends(Authorize("backup", "manage"))]
BackupId = SmallRowId
_UNREACHABLE = "the workflow engine was unreachable; try again shortly"


def _not_started(error: Exception) -> str:
    return _UNREACHABLE if isinstance(error, EngineUnavailable) else f"the workflow could not be started: {error}"


@router.post(
    "",
    status_code=202,
    response_model=WorkflowStartedOut,
    summary="Take a backup now",
    description="Starts a BackupWorkflow (`backup-<UTC timestamp>`); follow it with GET /admin/backups/{id}.",
    responses={409: {"description": "a backup of this very second exists (`details.backup_id` names it)"}},
)
async def start_backup(grant: ManageBackups, tx: TxDep, services: ServicesDep) -> WorkflowStartedOut:
    await services.engine.client()  # connects, or 503 before anything is recorded when Temporal is down
    workflow_id = backup_workflow_id(datetime.now(UTC))
    backup = await service.request_backup(tx, grant.audit, workflow_id)  # 409 when the id is taken
    await tx.commit()  # the intent is durable before the workflow starts
    try:
        started = await services.engine.start(
            "BackupWorkflow",
            BackupInput(requested_by_id=grant.user.id),
            workflow_id=workflow_id,
            task_queue=services.engine.queues.backups,
            metadata=backup_metadata(grant.user.full_name),
        )
    except Exception as error:
        # Not started (or not known to be): never leave the row queued. Should the start have gone through
        # after all, the run takes the row over and completes it.
        await service.fail_backup(tx, grant.audit, workflow_id, _not_started(error))
        await tx.commit()
        if isinstance(error, EngineUnavailable):
            raise ServiceUnavailable(_UNREACHABLE) from error
        raise
    if not started:
        # The daily schedule started its run of this very second before its first activity made the row. That
        # run adopts the row just committed (rows are found by workflow id), so nothing is left queued.
        raise Conflict(
            f"backup {backup.id} ({workflow_id}) was started by the schedule this very second and is running; "
            f"follow it with GET /api/v1/admin/backups/{backup.id}",
            backup_id=backup.id,
            workflow_id=workflow_id,
        )
    return WorkflowStartedOut(workflow_id=workflow_id, backup_id=backup.id)


@router.get("", response_model=BackupPageOut, summary="Backups, newest first")
async def list_backups(
    grant: ManageBackups,
    tx: TxDep,
    cursor: Annotated[Cursor, Depends(listing_of(BackupOut))],
    status: Annotated[str | None, Query(pattern="^(queued|running|completed|failed|pruned)$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> BackupPageOut:
    pager = Pager(limit, offset, cursor)
    rows, total, next_cursor = await service.list_backups(tx, status=status, pager=pager)
    return BackupPageOut(
        items=[BackupOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


@router.get("/{backup_id}", response_model=BackupDetailOut, summary="One backup with its restore drills")
async def get_backup(grant: ManageBackups, tx: TxDep, backup_id: BackupId) -> BackupDetailOut:
    backup = await service.get_backup(tx, backup_id)
    drills = await service.drills_of(tx, backup_id)
    detail = BackupDetailOut.model_validate(backup)
    detail.drills = [RestoreDrillOut.model_validate(drill) for drill in drills]
    return detail


@router.post(
    "/{backup_id}/drill",
    status_code=202,
    response_model=WorkflowStartedOut,
    summary="Run a restore drill of this backup now",
    description="Restores the backup into a scratch database, compares it with the manifest, verifies the audit "
    "chain and drops the copy. The result appears under the backup's `drills`.",
    responses={
        409: {
            "description": "the backup is not completed (queued, running, failed or pruned), or a drill of it "
            "started this very second"
        }
    },
)
async def start_drill(
    grant: ManageBackups, tx: TxDep, services: ServicesDep, backup_id: BackupId
) -> WorkflowStartedOut:
    backup = await service.get_backup(tx, backup_id)
    service.check_drillable(backup)
    await services.engine.client()  # connects, or 503 before anything is recorded when Temporal is down
    # The backup's id in the workflow id keeps on-demand drills apart from the weekly schedule's runs
    # (`restore-drill-<timestamp>`); the same backup twice in one second is 409.
    workflow_id = f"{restore_drill_workflow_id(datetime.now(UTC))}-backup-{backup.id}"
    drill = await service.request_drill(tx, grant.audit, workflow_id, backup.id)
    await tx.commit()
    try:
        await services.engine.start(
            "RestoreDrillWorkflow",
            DrillInput(backup_id=backup.id, requested_by_id=grant.user.id),
            workflow_id=workflow_id,
            task_queue=services.engine.queues.backups,
            metadata=drill_metadata(backup.id, grant.user.full_name),
        )
    except Exception as error:
        reason = _not_started(error)
        await service.finish_drill(tx, grant.audit, drill.id, passed=False, reason=reason, details={})
        await tx.commit()
        if isinstance(error, EngineUnavailable):
            raise ServiceUnavailable(_UNREACHABLE) from error
        raise
    return WorkflowStartedOut(workflow_id=workflow_id, backup_id=backup.id)
