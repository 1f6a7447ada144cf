"""The standing backup schedules: the daily backup and the weekly restore drill, from settings (cron and time zone).

The worker makes the engine's schedules match these at every start (worker.reconcile_schedules).
"""

from __future__ import annotations

from datetime import timedelta

from core.engine import ScheduledStart
from core.settings import BackupSettings
from workflows.contracts import BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID, BackupInput, DrillInput

# The engine appends "-<UTC timestamp>" to the workflow id of each run: `backup-2026-05-01T02:00:00Z`.
_RUN_TIMEOUT = timedelta(hours=12)
_CATCH_UP = timedelta(hours=6)


def backup_schedules(settings: BackupSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Schedule id -> schedule; none when BACKUP_SCHEDULES_ENABLED=false."""
    if not settings.schedules_enabled:
        return {}

    def standing(schedule_id: str, workflow: str, argument: object, cron: str, note: str) -> ScheduledStart:
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
        )

    return {
        BACKUP_SCHEDULE_ID: standing(
            BACKUP_SCHEDULE_ID,
            "BackupWorkflow",
            BackupInput(),
            settings.daily_cron,
            "daily database backup (BACKUP_CRON, BACKUP_TIMEZONE)",
        ),
        RESTORE_DRILL_SCHEDULE_ID: standing(
            RESTORE_DRILL_SCHEDULE_ID,
            "RestoreDrillWorkflow",
            DrillInput(),
            settings.drill_cron,
            "weekly restore drill of the latest backup (RESTORE_DRILL_CRON)",
        ),
    }
