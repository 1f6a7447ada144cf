"""The standing backup schedules: the daily backup and the weekly restore drill, from settings (cron and time zone).

The worker makes the engine's schedules match these at every start (worker.reconcile_schedules).
"""

from __future__ import annotations

from datetime import timedelta

from core.engine import ScheduledStart, UserMetadata
from core.settings import BackupSettings
from workflows.contracts import BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID, BackupInput, DrillInput

# The engine appends "-<UTC timestamp>" to the workflow id of each run: `backup-2026-05-01T02:00:00Z`.
_RUN_TIMEOUT = timedelta(hours=12)
_CATCH_UP = timedelta(hours=6)


def backup_metadata(requested_by: str | None, cron: str | None = None) -> UserMetadata:
    """What the Temporal UI shows of a backup run: who asked for it, or the schedule that started it."""
    origin = f"requested by {requested_by}" if requested_by else f"daily schedule, {cron}"
    return UserMetadata(
        summary=f"Database backup, {origin}",
        details="pg_dump -Fc of the database, SHA-256, upload to object storage, a manifest row, then retention. "
        "Follow it in the app: GET /api/v1/admin/backups",
    )


def drill_metadata(backup_id: int | None, requested_by: str | None, cron: str | None = None) -> UserMetadata:
    """What the Temporal UI shows of a restore drill."""
    which = f"backup #{backup_id}" if backup_id is not None else "the latest completed backup"
    origin = f"requested by {requested_by}" if requested_by else f"weekly schedule, {cron}"
    return UserMetadata(
        summary=f"Restore drill of {which}, {origin}",
        details="Restores the backup into a scratch database, compares it with its manifest, verifies the audit "
        "chain, drops the copy. A failed drill alerts the superadmins.",
    )


def backup_schedules(settings: BackupSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Schedule id -> schedule; none when BACKUP_SCHEDULES_ENABLED=false."""
    if not settings.schedules_enabled:
        return {}

    def standing(
        schedule_id: str, workflow: str, argument: object, cron: str, note: str, metadata: UserMetadata
    ) -> ScheduledStart:
        return ScheduledStart(
            workflow=workflow,
            argument=argument,
            workflow_id=schedule_id,
            task_queue=task_queue,
            cron=cron,
            timezone=settings.timezone,
            execution_timeout=_RUN_TIMEOUT,
            catchup_window=_CATCH_UP,
            note=note,
            metadata=metadata,
        )

    return {
        BACKUP_SCHEDULE_ID: standing(
            BACKUP_SCHEDULE_ID,
            "BackupWorkflow",
            BackupInput(),
            settings.daily_cron,
            "daily database backup (BACKUP_CRON, BACKUP_TIMEZONE)",
            backup_metadata(None, f"{settings.daily_cron} ({settings.timezone})"),
        ),
        RESTORE_DRILL_SCHEDULE_ID: standing(
            RESTORE_DRILL_SCHEDULE_ID,
            "RestoreDrillWorkflow",
            DrillInput(),
            settings.drill_cron,
            "weekly restore drill of the latest backup (RESTORE_DRILL_CRON)",
            drill_metadata(None, None, f"{settings.drill_cron} ({settings.timezone})"),
        ),
    }
