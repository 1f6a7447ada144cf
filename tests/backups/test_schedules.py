"""The daily backup and weekly drill schedules: created from settings at worker start, reconciled after."""

from __future__ import annotations

from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy, ScheduleRange

from core.settings import BackupSettings, Settings
from workflows.backup_schedules import reconcile_backup_schedules
from workflows.contracts import BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID


async def test_schedules_follow_the_settings_and_can_be_turned_off(temporal_client: Client, settings: Settings) -> None:
    first = settings.model_copy(
        update={"backups": BackupSettings(daily_cron="15 1 * * *", drill_cron="0 5 * * 6", timezone="Europe/Berlin")}
    )
    try:
        assert await reconcile_backup_schedules(temporal_client, first) == [
            BACKUP_SCHEDULE_ID,
            RESTORE_DRILL_SCHEDULE_ID,
        ]
        changed = first.model_copy(update={"backups": BackupSettings(daily_cron="45 3 * * *", timezone="UTC")})
        await reconcile_backup_schedules(temporal_client, changed)  # already there: updated, not an error

        backup = await temporal_client.get_schedule_handle(BACKUP_SCHEDULE_ID).describe()
        drill = await temporal_client.get_schedule_handle(RESTORE_DRILL_SCHEDULE_ID).describe()
        # The server stores a cron expression as a calendar.
        daily = backup.schedule.spec.calendars[0]
        assert (daily.hour, daily.minute) == ((ScheduleRange(3),), (ScheduleRange(45),))
        assert backup.schedule.spec.time_zone_name == "UTC"
        assert backup.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = backup.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.id) == ("BackupWorkflow", "backup")
        assert action.task_queue == f"{settings.temporal.task_queue_prefix}-backups"
        assert isinstance(drill.schedule.action, ScheduleActionStartWorkflow)
        assert drill.schedule.action.workflow == "RestoreDrillWorkflow"
        weekly = drill.schedule.spec.calendars[0]
        assert (weekly.day_of_week, weekly.hour) == ((ScheduleRange(0),), (ScheduleRange(4),))  # Sunday 04:00

        off = settings.model_copy(update={"backups": BackupSettings(schedules_enabled=False)})
        assert await reconcile_backup_schedules(temporal_client, off) == []
    finally:
        for schedule_id in (BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID):
            await temporal_client.get_schedule_handle(schedule_id).delete()
