"""Temporal Schedules for reports: how a report schedule record becomes a Schedule, and create-or-update.

Used by the API (CRUD over schedules) and the worker (reconciliation at start). Not a workflow module.
"""

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

from domain.models import ReportSchedule
from domain.reports.schedules import fields_of
from workflows.contracts import ReportRetentionInput, ScheduledReportInput

RETENTION_SCHEDULE_ID = "report-retention"
RETENTION_CRON = "30 3 * * *"  # daily at 03:30


def scheduled_input_for(schedule: ReportSchedule) -> ScheduledReportInput:
    fields = fields_of(schedule)
    return ScheduledReportInput(
        schedule_id=schedule.id,
        schedule_key=schedule.schedule_key,
        name=fields.name,
        type=fields.type,
        format=fields.format,
        period=fields.period,
        timezone=fields.timezone,
        recipients=fields.recipients,
        filters=fields.filters,
        scope={"kind": "all"},  # schedules are managed by admins and report on the whole organisation
    )


def report_schedule(schedule: ReportSchedule, task_queue: str) -> Schedule:
    """The Temporal Schedule running one report schedule: cron in its time zone, overlapping runs skipped."""
    action_input = scheduled_input_for(schedule)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ScheduledReportWorkflow",
            action_input,
            id=f"scheduled-{schedule.schedule_key}",
            task_queue=task_queue,
            execution_timeout=timedelta(hours=6),
        ),
        spec=ScheduleSpec(cron_expressions=[schedule.cron], time_zone_name=schedule.timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=12)),
        state=ScheduleState(paused=schedule.paused, note=f"report schedule {schedule.name!r}"),
    )


def retention_schedule(task_queue: str, timezone: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ReportRetentionWorkflow",
            ReportRetentionInput(),
            id=f"{RETENTION_SCHEDULE_ID}-run",
            task_queue=task_queue,
            execution_timeout=timedelta(hours=1),
        ),
        spec=ScheduleSpec(cron_expressions=[RETENTION_CRON], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="prunes report files older than REPORT_RETENTION_DAYS"),
    )


async def upsert_schedule(client: Client, schedule_id: str, schedule: Schedule) -> bool:
    """Create the Schedule, or bring an existing one to `schedule` (spec, action and paused state).
    Returns True when it was created."""
    try:
        await client.create_schedule(schedule_id, schedule)
        return True
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)
        return False
