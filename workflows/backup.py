"""Backup workflows: take a backup (dump, checksum, upload, manifest row, retention) and prove one restores.

Deterministic orchestration only: every side effect is an activity (activities/backups.py, and "send_email").
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.backups import BackupActivities
    from workflows.contracts import (
        EMAIL_RETRY,
        EMAIL_TIMEOUT,
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
        EmailJob,
        PruneJob,
        PruneResult,
        SuperadminAlert,
    )

LONG_TIMEOUT = timedelta(hours=6)
LONG_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=5,
    non_retryable_error_types=["PgToolsNotFound"],
)
SHORT_TIMEOUT = timedelta(seconds=60)
SHORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def _reason(error: ActivityError) -> str:
    cause = error.cause
    return str(getattr(cause, "message", None) or cause or error)


async def _alert(alert: SuperadminAlert, template: str, context: dict[str, object]) -> None:
    """In-app notification and email to every active superadmin."""
    user_ids: list[int] = await workflow.execute_activity_method(
        BackupActivities.alert_superadmins, alert, start_to_close_timeout=SHORT_TIMEOUT, retry_policy=SHORT_RETRY
    )
    if not user_ids:
        return
    await workflow.execute_activity(
        "send_email",
        EmailJob(
            message_key=alert.dedup_key,
            template=template,
            to_user_ids=user_ids,
            event_type=alert.event_type,
            context={"title": alert.title, "body": alert.body, "link": alert.link, **context},
        ),
        start_to_close_timeout=EMAIL_TIMEOUT,
        retry_policy=EMAIL_RETRY,
    )


@workflow.defn(name="BackupWorkflow")
class BackupWorkflow:
    """Id `backup-<UTC timestamp>`: pg_dump -Fc, SHA-256, upload, manifest row, then retention."""

    @workflow.run
    async def run(self, request: BackupInput) -> BackupResult:
        workflow_id = workflow.info().workflow_id
        try:
            artifact: BackupArtifact = await workflow.execute_activity_method(
                BackupActivities.create_backup,
                BackupJob(workflow_id=workflow_id, part_size_bytes=request.part_size_bytes),
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_seconds),
                retry_policy=LONG_RETRY,
            )
        except ActivityError as error:
            reason = _reason(error)
            failed_id = await workflow.execute_activity_method(
                BackupActivities.fail_backup,
                BackupFailure(workflow_id=workflow_id, error=reason),
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=SHORT_RETRY,
            )
            await _alert(
                SuperadminAlert(
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
        backup_id: int = await workflow.execute_activity_method(
            BackupActivities.record_backup, artifact, start_to_close_timeout=SHORT_TIMEOUT, retry_policy=SHORT_RETRY
        )
        pruned: PruneResult = await workflow.execute_activity_method(
            BackupActivities.prune_backups,
            PruneJob(workflow_id=workflow_id),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=SHORT_RETRY,
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
        target: DrillTarget = await workflow.execute_activity_method(
            BackupActivities.prepare_restore_drill,
            DrillJob(workflow_id=workflow_id, backup_id=request.backup_id),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        try:
            outcome: DrillOutcome = await workflow.execute_activity_method(
                BackupActivities.restore_and_verify,
                target,
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_seconds),
                retry_policy=LONG_RETRY,
            )
        except ActivityError as error:
            outcome = DrillOutcome(
                drill_id=target.drill_id, backup_id=target.backup_id, passed=False, reason=_reason(error)
            )
        result: DrillResult = await workflow.execute_activity_method(
            BackupActivities.record_restore_drill,
            outcome,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        if result.status != "passed":
            await _alert(
                SuperadminAlert(
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
