"""Temporal Schedules for backups: the daily backup and the weekly restore drill, created or reconciled at worker
start from settings (cron and time zone). Not a workflow module."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from core.settings import Settings
from core.temporal import task_queues
from workflows.contracts import BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID, BackupInput, DrillInput


def backup_schedules(settings: Settings) -> dict[str, Schedule]:
    """Schedule id -> Schedule. Runs get ids `backup-<UTC timestamp>` and `restore-drill-<UTC timestamp>`."""
    queue = task_queues(settings.temporal).backups
    backups = settings.backups
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=6))
    return {
        BACKUP_SCHEDULE_ID: Schedule(
            action=ScheduleActionStartWorkflow(
                "BackupWorkflow",
                BackupInput(),
                id=BACKUP_SCHEDULE_ID,
                task_queue=queue,
                execution_timeout=timedelta(hours=12),
            ),
            spec=ScheduleSpec(cron_expressions=[backups.daily_cron], time_zone_name=backups.timezone),
            policy=policy,
            state=ScheduleState(note="daily database backup (BACKUP_CRON, BACKUP_TIMEZONE)"),
        ),
        RESTORE_DRILL_SCHEDULE_ID: Schedule(
            action=ScheduleActionStartWorkflow(
                "RestoreDrillWorkflow",
                DrillInput(),
                id=RESTORE_DRILL_SCHEDULE_ID,
                task_queue=queue,
                execution_timeout=timedelta(hours=12),
            ),
            spec=ScheduleSpec(cron_expressions=[backups.drill_cron], time_zone_name=backups.timezone),
            policy=policy,
            state=ScheduleState(note="weekly restore drill of the latest backup (RESTORE_DRILL_CRON)"),
        ),
    }


async def reconcile_backup_schedules(client: Client, settings: Settings) -> list[str]:
    """Create the schedules, or bring existing ones to the settings. Nothing when BACKUP_SCHEDULES_ENABLED=false."""
    if not settings.backups.schedules_enabled:
        return []
    for schedule_id, schedule in backup_schedules(settings).items():
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(replace)
    return list(backup_schedules(settings))
