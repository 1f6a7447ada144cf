"""Report schedules: the records (the engine's schedule `schedule_key` runs each one), what each schedule starts and
with what input, the standing ones from settings, and the periods the runs cover."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from core.db import Tx
from core.engine import ScheduledStart, UserMetadata
from core.settings import ReportSettings
from domain.audit.service import AuditContext, diff, record
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.models import ReportSchedule
from domain.pagination import Keyset, Pager
from domain.report_templates import service as templates
from domain.report_templates.dataset import TEMPLATE_KEY
from domain.reports.datasets import ReportScope
from domain.reports.schemas import (
    RelativePeriod,
    ReportFilters,
    ReportFormat,
    ReportType,
    ScheduleIn,
    SchedulePatch,
    TemplateChoice,
)
from domain.reports.service import check_filters, check_recipients
from workflows.contracts import ReportRetentionInput, ScheduledReportInput

SCHEDULE_KEY_PREFIX = "report-schedule-"
RETENTION_SCHEDULE_ID = "report-retention"
RETENTION_CRON = "30 3 * * *"  # daily at 03:30
PERIOD_KEY = "period"  # kept beside the filters in the row's `filters` JSON


def period_for(period: RelativePeriod | str, reference: datetime, timezone: str) -> tuple[date, date]:
    """The dates a scheduled run covers, relative to its run time in the schedule's time zone."""
    today = reference.astimezone(ZoneInfo(timezone)).date()
    match RelativePeriod(period):
        case RelativePeriod.PREVIOUS_MONTH:
            last = today.replace(day=1) - timedelta(days=1)
            return last.replace(day=1), last
        case RelativePeriod.PREVIOUS_WEEK:
            monday = today - timedelta(days=today.weekday())
            return monday - timedelta(days=7), monday - timedelta(days=1)
        case RelativePeriod.PREVIOUS_DAY:
            yesterday = today - timedelta(days=1)
            return yesterday, yesterday
        case RelativePeriod.MONTH_TO_DATE:
            return today.replace(day=1), today
        case RelativePeriod.YEAR_TO_DATE:
            return today.replace(month=1, day=1), today
        case RelativePeriod.PREVIOUS_YEAR:
            return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    raise ValueError(period)  # pragma: no cover - the enum is exhaustive


@dataclass(frozen=True)
class ScheduleFields:
    name: str
    type: str
    format: str
    cron: str
    timezone: str
    period: str
    recipients: list[str]
    filters: dict[str, Any]


def fields_of(schedule: ReportSchedule) -> ScheduleFields:
    stored = dict(schedule.filters or {})
    period = str(stored.pop(PERIOD_KEY, RelativePeriod.PREVIOUS_MONTH.value))
    return ScheduleFields(
        name=schedule.name,
        type=schedule.type,
        format=schedule.format,
        cron=schedule.cron,
        timezone=schedule.timezone,
        period=period,
        recipients=list(schedule.recipients or []),
        filters=stored,
    )


def snapshot(schedule: ReportSchedule) -> dict[str, Any]:
    fields = fields_of(schedule)
    return {**fields.__dict__, "paused": schedule.paused}


ALL = ReportScope(everyone=True)


# The mutations below flush without auditing; the caller applies the change to the Temporal Schedule and then
# calls `audit_change`, so the audit chain's lock is never held across a call to Temporal.


async def create_schedule(tx: Tx, settings: ReportSettings, data: ScheduleIn, actor_id: int | None) -> ReportSchedule:
    await check_recipients(tx, settings, [str(r) for r in data.recipients])
    check_filters(ALL, data.type, data.filters)
    template = await _template_choice(tx, data.type, data, None)
    if await tx.session.scalar(select(func.count()).where(ReportSchedule.name == data.name)):
        raise Conflict("a schedule with this name exists", name=data.name)
    schedule = ReportSchedule(
        name=data.name,
        type=data.type.value,
        format=data.format.value,
        cron=data.cron,
        timezone=data.timezone,
        recipients=[str(r) for r in data.recipients],
        filters=_stored_filters(data.filters, data.period.value, template),
        created_by_id=actor_id,
        paused=False,
        schedule_key=f"{SCHEDULE_KEY_PREFIX}{uuid.uuid4().hex[:16]}",
    )
    tx.session.add(schedule)
    try:
        await tx.session.flush()
    except IntegrityError as exc:
        raise Conflict("a schedule with this name exists", name=data.name) from exc
    return schedule


async def update_schedule(
    tx: Tx, settings: ReportSettings, schedule_id: int, patch: SchedulePatch
) -> tuple[ReportSchedule, dict[str, Any]]:
    """Apply a partial change; returns the schedule and the changed fields as {field: [old, new]}."""
    schedule = await get_schedule(tx, schedule_id, for_update=True)
    before = snapshot(schedule)
    current = fields_of(schedule)
    changes = patch.model_dump(exclude_unset=True)
    if patch.recipients is not None:
        await check_recipients(tx, settings, [str(r) for r in patch.recipients])
    report_type = ReportType(changes.get("type", current.type))
    stored_template = current.filters.get(TEMPLATE_KEY)
    plain = {key: value for key, value in current.filters.items() if key != TEMPLATE_KEY}
    filters = patch.filters if patch.filters is not None else ReportFilters.model_validate(plain)
    check_filters(ALL, report_type, filters)
    template = await _template_choice(tx, report_type, patch, stored_template)
    if patch.name is not None and patch.name != schedule.name:
        taken = await tx.session.scalar(select(func.count()).where(ReportSchedule.name == patch.name))
        if taken:
            raise Conflict("a schedule with this name exists", name=patch.name)
        schedule.name = patch.name
    schedule.type = report_type.value
    schedule.format = ReportFormat(changes.get("format", current.format)).value
    schedule.cron = patch.cron or schedule.cron
    schedule.timezone = patch.timezone or schedule.timezone
    if patch.recipients is not None:
        schedule.recipients = [str(r) for r in patch.recipients]
    period = patch.period.value if patch.period is not None else current.period
    schedule.filters = _stored_filters(filters, period, template)
    await tx.session.flush()
    return schedule, diff(before, snapshot(schedule))


def _stored_filters(filters: ReportFilters, period: str, template: dict[str, Any] | None) -> dict[str, Any]:
    """A schedule's `filters` JSON: the report's filters, the relative period and (type template) the template."""
    stored = {**filters.model_dump(exclude_defaults=True), PERIOD_KEY: period}
    if template is not None:
        stored[TEMPLATE_KEY] = template
    return stored


async def _template_choice(
    tx: Tx, report_type: ReportType, choice: TemplateChoice, stored: Any
) -> dict[str, Any] | None:
    """The template a schedule of type template runs: the one sent (checked), else the one it had."""
    if report_type != ReportType.TEMPLATE:
        if choice.template_id is not None or choice.template_version is not None or choice.parameters:
            raise ValidationFailed(
                "template_id, template_version and parameters are for type template only", field="template_id"
            )
        return None
    sent = choice.model_fields_set & {"template_id", "template_version", "parameters"}
    if not sent and isinstance(stored, dict):
        return stored
    template_id = choice.template_id or (stored.get("id") if isinstance(stored, dict) else None)
    return await templates.schedule_choice(tx, template_id, choice.template_version, dict(choice.parameters))


async def set_paused(tx: Tx, schedule_id: int, paused: bool) -> ReportSchedule:
    schedule = await get_schedule(tx, schedule_id, for_update=True)
    schedule.paused = paused
    await tx.session.flush()
    return schedule


async def delete_schedule(tx: Tx, schedule_id: int) -> tuple[ReportSchedule, dict[str, Any]]:
    schedule = await get_schedule(tx, schedule_id, for_update=True)
    before = snapshot(schedule)
    await tx.session.delete(schedule)
    await tx.session.flush()
    return schedule, before


async def audit_change(tx: Tx, audit: AuditContext, action: str, schedule_id: int, changes: dict[str, Any]) -> None:
    """One audit row per schedule change: report_schedule.created|updated|deleted|paused|resumed|triggered."""
    await record(tx.sql, audit, f"report_schedule.{action}", "report_schedule", schedule_id, changes)


async def get_schedule(tx: Tx, schedule_id: int, for_update: bool = False) -> ReportSchedule:
    statement = select(ReportSchedule).where(ReportSchedule.id == schedule_id)
    if for_update:
        statement = statement.with_for_update()
    schedule = await tx.session.scalar(statement)
    if schedule is None:
        raise NotFound("report schedule not found", id=schedule_id)
    return schedule


# By id, as they were made: a cursor's `id > %s` is a range on the primary key.
KEYSET = Keyset("report-schedules", ("id",), (int,), descending=False)


async def list_schedules(tx: Tx, pager: Pager) -> tuple[list[ReportSchedule], int, str | None]:
    """A page of schedules, how many there are, and the cursor to the next page."""
    total = await tx.session.scalar(select(func.count()).select_from(ReportSchedule))
    query = select(ReportSchedule)
    after = pager.key(KEYSET)
    if after is not None:
        query = query.where(KEYSET.after_clause([ReportSchedule.id], after))
    rows = await tx.session.scalars(query.order_by(ReportSchedule.id).limit(pager.fetch).offset(pager.offset))
    page, next_cursor = pager.cut(KEYSET, list(rows), lambda row: (row.id,))
    return page, int(total or 0), next_cursor


# --- default schedules from settings ----------------------------------------------------------------


@dataclass(frozen=True)
class DefaultSchedule:
    key: str
    name: str
    type: str
    format: str
    cron: str
    period: str


def default_schedules(settings: ReportSettings) -> list[DefaultSchedule]:
    """The standing schedules the worker creates when REPORT_DEFAULT_SCHEDULES is on: a monthly P&L."""
    if not settings.default_schedules:
        return []
    return [
        DefaultSchedule(
            key=f"{SCHEDULE_KEY_PREFIX}monthly-pnl",
            name="Monthly profit and loss",
            type=ReportType.PNL.value,
            format=ReportFormat.PDF.value,
            cron="0 6 1 * *",  # the 1st of each month at 06:00 in REPORT_TIMEZONE
            period=RelativePeriod.PREVIOUS_MONTH.value,
        )
    ]


async def ensure_default_schedule(tx: Tx, settings: ReportSettings, default: DefaultSchedule) -> ReportSchedule:
    """Create the record of a default schedule once; an operator's later edits through the API are kept."""
    await tx.session.execute(
        insert(ReportSchedule)
        .values(
            name=default.name,
            type=default.type,
            format=default.format,
            cron=default.cron,
            timezone=settings.timezone,
            recipients=[],
            filters={PERIOD_KEY: default.period},
            paused=False,
            schedule_key=default.key,
            note="default schedule from settings (REPORT_DEFAULT_SCHEDULES)",
        )
        .on_conflict_do_nothing()
    )
    schedule = await tx.session.scalar(select(ReportSchedule).where(ReportSchedule.schedule_key == default.key))
    assert schedule is not None
    return schedule


# --- what the engine runs -----------------------------------------------------------------------------


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


def engine_schedule(schedule: ReportSchedule, task_queue: str) -> ScheduledStart:
    """What the engine's schedule `schedule.schedule_key` starts: the record's report, on its cron in its time zone,
    paused as the record is."""
    return ScheduledStart(
        workflow="ScheduledReportWorkflow",
        argument=scheduled_input_for(schedule),
        workflow_id=f"scheduled-{schedule.schedule_key}",
        task_queue=task_queue,
        cron=schedule.cron,
        timezone=schedule.timezone,
        execution_timeout=timedelta(hours=6),
        catchup_window=timedelta(hours=12),
        paused=schedule.paused,
        note=f"report schedule {schedule.name!r}",
        metadata=UserMetadata(
            summary=f"Scheduled report {schedule.name!r}: {schedule.type}, {schedule.format}",
            details=f"Schedule {schedule.schedule_key}, {schedule.cron} ({schedule.timezone}): renders the report "
            "for the period before the run and mails it to the schedule's recipients.",
        ),
    )


def retention_schedule(task_queue: str, timezone: str) -> ScheduledStart:
    return ScheduledStart(
        workflow="ReportRetentionWorkflow",
        argument=ReportRetentionInput(),
        workflow_id=f"{RETENTION_SCHEDULE_ID}-run",
        task_queue=task_queue,
        cron=RETENTION_CRON,
        timezone=timezone,
        execution_timeout=timedelta(hours=1),
        note="prunes report files older than REPORT_RETENTION_DAYS",
        metadata=UserMetadata(summary="Report retention: delete report files older than REPORT_RETENTION_DAYS"),
    )


async def standing_schedules(tx: Tx, settings: ReportSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Every report schedule the engine should run, by id: the default schedules' records are created first (once;
    an operator's later edits are kept), then every record, defaults and operators' alike, and the daily
    retention. The caller commits the defaults before it hands these to the engine."""
    for default in default_schedules(settings):
        await ensure_default_schedule(tx, settings, default)
    records = await tx.session.scalars(select(ReportSchedule).order_by(ReportSchedule.id))
    wanted = {record.schedule_key: engine_schedule(record, task_queue) for record in records}
    wanted[RETENTION_SCHEDULE_ID] = retention_schedule(task_queue, settings.timezone)
    return wanted
