"""The standing attachments upkeep: AttachmentUpkeepWorkflow at ATTACHMENT_UPKEEP_CRON (UTC); the worker makes the
engine's schedule match this at every start (worker.reconcile_schedules)."""

from __future__ import annotations

from datetime import timedelta

from core.engine import ScheduledStart, UserMetadata
from core.settings import AttachmentSettings
from workflows.contracts import ATTACHMENT_UPKEEP_SCHEDULE_ID, ATTACHMENT_UPKEEP_WORKFLOW, AttachmentUpkeepInput


def attachment_schedules(settings: AttachmentSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Schedule id -> schedule; none when ATTACHMENT_UPKEEP_ENABLED=false."""
    if not settings.upkeep_enabled:
        return {}
    return {
        ATTACHMENT_UPKEEP_SCHEDULE_ID: ScheduledStart(
            workflow=ATTACHMENT_UPKEEP_WORKFLOW,
            argument=AttachmentUpkeepInput(grace_seconds=settings.grace_seconds),
            workflow_id=ATTACHMENT_UPKEEP_SCHEDULE_ID,
            task_queue=task_queue,
            cron=settings.upkeep_cron,
            timezone="UTC",
            execution_timeout=timedelta(hours=1),
            catchup_window=timedelta(minutes=30),
            note="attachments upkeep: remove presigned uploads never completed (ATTACHMENT_PENDING_GRACE_SECONDS)",
            metadata=UserMetadata(summary="Attachments upkeep: remove presigned uploads never completed"),
        )
    }
