"""Backup workflows: take a backup (dump, checksum, upload, manifest row, retention) and prove one restores.

Deterministic orchestration only: every side effect is an activity (activities/backups.py, and "send_email"),
named by the constants in workflows/contracts.py, so this module imports nothing but its contracts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.alerts import ALERT_RETRY, ALERT_TIMEOUT, alert_operators, failure_reason

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        BackupActivity,
        BackupArtifact,
        BackupFailure,
        BackupInput,
        BackupJob,
        BackupResult,
        DrillInput,
        DrillJob,
        DrillOutcome,
        DrillResult,
        DrillTarget,
        OperatorAlert,
        PruneJob,
        PruneResult,
    )

LONG_TIMEOUT = timedelta(hours=6)
LONG_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=5,
    non_retryable_error_types=["PgToolsNotFound"],
)
SHORT_TIMEOUT = ALERT_TIMEOUT  # the bookkeeping activities: a transaction or two
SHORT_RETRY = ALERT_RETRY


@workflow.defn(name="BackupWorkflow")
class BackupWorkflow:
    """Id `backup-<UTC timestamp>`: pg_dump -Fc, SHA-256, upload, manifest row, then retention."""

    @workflow.run
    async def run(self, request: BackupInput) -> BackupResult:
        workflow_id = workflow.info().workflow_id
        workflow.set_current_details("Dumping the database (pg_dump -Fc), checksumming and uploading")
        try:
            artifact = await workflow.execute_activity(
                BackupActivity.CREATE,
                BackupJob(workflow_id=workflow_id, part_size_bytes=request.part_size_bytes),
                result_type=BackupArtifact,
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_seconds),
                retry_policy=LONG_RETRY,
                summary="pg_dump, SHA-256 and upload",
            )
        except ActivityError as error:
            reason = failure_reason(error)
            workflow.set_current_details(f"Failed: {reason}")
            failed_id = await workflow.execute_activity(
                BackupActivity.FAIL,
                BackupFailure(workflow_id=workflow_id, error=reason),
                result_type=int,
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=SHORT_RETRY,
                summary="record the backup as failed",
            )
            await alert_operators(
                BackupActivity.ALERT_SUPERADMINS,
                OperatorAlert(
                    dedup_key=f"{workflow_id}-failed",
                    event_type="backup_failed",
                    title=f"Backup {workflow_id} failed",
                    body=f"The backup {workflow_id} failed: {reason}",
                    link=f"/admin/backups/{failed_id}",
                    data={"backup_id": failed_id, "workflow_id": workflow_id},
                ),
                "backup_failed",
                {"workflow_id": workflow_id, "error": reason},
            )
            raise ApplicationError(f"backup failed: {reason}", type="BackupFailed", non_retryable=True) from error
        backup_id = await workflow.execute_activity(
            BackupActivity.RECORD,
            artifact,
            result_type=int,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
            summary=f"record the manifest row ({artifact.size_bytes} bytes)",
        )
        workflow.set_current_details(f"Backup #{backup_id} stored ({artifact.size_bytes} bytes); applying retention")
        pruned = await workflow.execute_activity(
            BackupActivity.PRUNE,
            PruneJob(workflow_id=workflow_id),
            result_type=PruneResult,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=SHORT_RETRY,
            summary="apply retention (prune old backups)",
        )
        workflow.set_current_details(
            f"Completed: backup #{backup_id}, {artifact.size_bytes} bytes; pruned {len(pruned.pruned_ids)}"
        )
        return BackupResult(
            backup_id=backup_id,
            workflow_id=workflow_id,
            storage_key=artifact.storage_key,
            sha256=artifact.sha256,
            size_bytes=artifact.size_bytes,
            resumed_from_part=artifact.resumed_from_part,
            pruned_ids=pruned.pruned_ids,
        )


@workflow.defn(name="RestoreDrillWorkflow")
class RestoreDrillWorkflow:
    """Id `restore-drill-<UTC timestamp>`: restore a backup into a scratch database and prove it is whole.

    The workflow completes with the drill's verdict; a failed drill alerts the superadmins."""

    @workflow.run
    async def run(self, request: DrillInput) -> DrillResult:
        workflow_id = workflow.info().workflow_id
        workflow.set_current_details("Choosing the backup to restore")
        target = await workflow.execute_activity(
            BackupActivity.PREPARE_DRILL,
            DrillJob(workflow_id=workflow_id, backup_id=request.backup_id),
            result_type=DrillTarget,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
            summary="choose the backup and a scratch database",
        )
        workflow.set_current_details(f"Restoring backup #{target.backup_id} into a scratch database and verifying it")
        try:
            outcome = await workflow.execute_activity(
                BackupActivity.RESTORE_AND_VERIFY,
                target,
                result_type=DrillOutcome,
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_seconds),
                retry_policy=LONG_RETRY,
                summary=f"restore backup #{target.backup_id}, compare with its manifest, verify the audit chain",
            )
        except ActivityError as error:
            outcome = DrillOutcome(
                drill_id=target.drill_id, backup_id=target.backup_id, passed=False, reason=failure_reason(error)
            )
        result = await workflow.execute_activity(
            BackupActivity.RECORD_DRILL,
            outcome,
            result_type=DrillResult,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
            summary=f"record the drill as {'passed' if outcome.passed else 'failed'}",
        )
        verdict = "Passed" if result.status == "passed" else f"Failed: {result.reason}"
        workflow.set_current_details(f"{verdict} (backup #{result.backup_id}, drill #{result.drill_id})")
        if result.status != "passed":
            await alert_operators(
                BackupActivity.ALERT_SUPERADMINS,
                OperatorAlert(
                    dedup_key=f"{workflow_id}-failed",
                    event_type="restore_drill_failed",
                    title=f"Restore drill of backup {result.backup_id} failed",
                    body=f"The restore drill {workflow_id} failed: {result.reason}",
                    link=f"/admin/backups/{result.backup_id}" if result.backup_id else "/admin/backups",
                    data={"backup_id": result.backup_id, "drill_id": result.drill_id, "workflow_id": workflow_id},
                ),
                "restore_drill_failed",
                {"backup_id": result.backup_id, "error": result.reason},
            )
        return result
