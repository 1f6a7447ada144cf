"""The daily backup and weekly drill schedules: created from settings at worker start, reconciled after."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy, ScheduleRange
from temporalio.service import RPCError

from activities.deps import ActivityDeps
from core.settings import AttachmentSettings, BackupSettings, BudgetSettings, FxSettings, ReportSettings
from domain.reports.schedules import RETENTION_SCHEDULE_ID
from worker import reconcile_schedules
from workflows.contracts import BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID


def _with(deps: ActivityDeps, backups: BackupSettings) -> ActivityDeps:
    # No default report schedules, no rate import, no budget or attachments upkeep: this test is about the backups'
    # (the report retention comes along anyway).
    settings = deps.settings.model_copy(
        update={
            "backups": backups,
            "reports": ReportSettings(default_schedules=False),
            "fx": FxSettings(schedule_enabled=False),
            "budgets": BudgetSettings(upkeep_enabled=False),
            "attachments": AttachmentSettings(upkeep_enabled=False),
        }
    )
    return dataclasses.replace(deps, settings=settings)


async def test_schedules_follow_the_settings_and_can_be_turned_off(
    temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    first = _with(
        activity_deps, BackupSettings(daily_cron="15 1 * * *", drill_cron="0 5 * * 6", timezone="Europe/Berlin")
    )
    try:
        assert await reconcile_schedules(temporal_client, first) == [
            RETENTION_SCHEDULE_ID,
            BACKUP_SCHEDULE_ID,
            RESTORE_DRILL_SCHEDULE_ID,
        ]
        changed = _with(activity_deps, BackupSettings(daily_cron="45 3 * * *", timezone="UTC"))
        await reconcile_schedules(temporal_client, changed)  # already there: updated, not an error

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
        assert action.task_queue == f"{activity_deps.settings.temporal.task_queue_prefix}-backups"
        assert isinstance(drill.schedule.action, ScheduleActionStartWorkflow)
        assert drill.schedule.action.workflow == "RestoreDrillWorkflow"
        weekly = drill.schedule.spec.calendars[0]
        assert (weekly.day_of_week, weekly.hour) == ((ScheduleRange(0),), (ScheduleRange(4),))  # Sunday 04:00

        off = _with(activity_deps, BackupSettings(schedules_enabled=False))
        assert await reconcile_schedules(temporal_client, off) == [RETENTION_SCHEDULE_ID]
    finally:
        for schedule_id in (BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID, RETENTION_SCHEDULE_ID):
            try:
                await temporal_client.get_schedule_handle(schedule_id).delete()
            except RPCError:
                pass
