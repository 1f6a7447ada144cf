"""Reports (`/reports`) and their schedules (`/reports/schedules`, Temporal Schedules).

`schedules_router` must be mounted before `router`, so `/reports/schedules` is not taken for a report id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.cursors import PageCursor
from api.deps import AppServices, Authorize, Grant, ServicesDep, SmallRowId, TxDep
from api.file_responses import file_responses
from api.listing import listing_of
from core.db import Tx
from core.engine import EngineUnavailable, ScheduleMissing
from domain.errors import InvalidState, NotFound, ServiceUnavailable
from domain.fx.rates import terms_from
from domain.models import Report, ReportSchedule
from domain.pagination import Cursor, Pager
from domain.reports import schedules as schedule_service
from domain.reports import service
from domain.reports.schemas import (
    CONTENT_TYPES,
    PRESENTATION_KEY,
    ReportAccepted,
    ReportOut,
    ReportPage,
    ReportRequest,
    ReportStatus,
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
)
from domain.users.visibility import visibility_for
from workflows.contracts import ReportJob, ReportProgress, report_workflow_id

log = logging.getLogger(__name__)

router = APIRouter(prefix="/reports", tags=["reports"])
schedules_router = APIRouter(prefix="/reports/schedules", tags=["report schedules"])

CreateReport = Annotated[Grant, Depends(Authorize("report", "create"))]
ReadReport = Annotated[Grant, Depends(Authorize("report", "read"))]
ManageSchedules = Annotated[Grant, Depends(Authorize("report_schedule", "manage"))]
DOWNLOAD_LINK_SECONDS = 300


def _out(report: Report, progress_rows: int | None = None, base_currency: str | None = None) -> ReportOut:
    download = f"/api/v1/reports/{report.id}/download" if report.status == ReportStatus.COMPLETED.value else None
    return ReportOut(
        id=report.id,
        type=report.type,
        format=report.format,
        period={"from": report.period_from, "to": report.period_to},
        filters={k: v for k, v in (report.filters or {}).items() if k != PRESENTATION_KEY},
        scope=report.scope or {},
        base_currency=base_currency,
        presentation_currency=service.presentation_of(report),
        status=report.status,
        rows=report.rows,
        progress_rows=progress_rows,
        filename=report.filename,
        content_type=report.content_type,
        size_bytes=report.size_bytes,
        error=report.error,
        requested_by_id=report.requested_by_id,
        schedule_id=report.schedule_id,
        workflow_id=report.workflow_id,
        created_at=report.created_at,
        completed_at=report.completed_at,
        download_url=download,
    )


@router.post(
    "/",  # the product README's form (the other answers too: api/trailing_slash.py)
    status_code=202,
    response_model=ReportAccepted,
    summary="Request a report; a workflow generates it",
    responses={403: {"description": "a report on people outside your visibility"}},
)
async def request_report(body: ReportRequest, grant: CreateReport, tx: TxDep, services: ServicesDep) -> ReportAccepted:
    return await accept_report(body, grant, tx, services)


async def accept_report(body: ReportRequest, grant: Grant, tx: Tx, services: AppServices) -> ReportAccepted:
    """Record the request, commit, start its workflow (a report template's run comes here too)."""
    settings = services.settings
    visibility = await visibility_for(tx.sql, services.authorizer, grant.user)
    report = await service.request_report(
        tx, settings.reports, grant.user, visibility, body, grant.audit, fx=terms_from(settings),
        authorizer=services.authorizer,
    )  # fmt: skip
    await tx.commit()  # the intent is durable before the workflow starts
    workflow_id = report_workflow_id(str(report.id))
    try:
        await services.engine.start(
            "ReportWorkflow",
            ReportJob(report_id=str(report.id), requested_by_id=grant.user.id),
            workflow_id=workflow_id,
            task_queue=services.engine.queues.reports,
            metadata=service.workflow_metadata(report, grant.user),
        )
    except EngineUnavailable as error:
        # The request is on record: it is marked failed (not left queued) and the caller is told to ask again.
        await service.mark_failed(tx, report.id, "the workflow engine was unreachable; request the report again")
        await tx.commit()
        raise ServiceUnavailable("the workflow engine is unreachable; try again shortly") from error
    return ReportAccepted(
        id=report.id, status=report.status, workflow_id=workflow_id, status_url=f"/api/v1/reports/{report.id}"
    )


@router.get("/", response_model=ReportPage, summary="Your reports (all reports for roles with report read_all)")
async def list_reports(
    grant: ReadReport,
    tx: TxDep,
    services: ServicesDep,
    cursor: Annotated[Cursor, Depends(listing_of(ReportOut))],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[ReportStatus | None, Query()] = None,
) -> ReportPage:
    see_all = services.authorizer.allows(grant.user.role, "report", "read_all")
    page = await service.list_reports(
        tx,
        grant.user,
        see_all=see_all,
        limit=limit,
        offset=offset,
        status=status.value if status else None,
        cursor=cursor,
    )
    base = services.settings.approvals.base_currency
    items = [_out(r, None, base) for r in page.items]
    return ReportPage(items=items, total=page.total, limit=limit, offset=page.offset, next_cursor=page.next_cursor)


# A status read must answer promptly: when the worker is slow to answer the query (or Temporal is down) the
# stored status is shown without live progress.
PROGRESS_QUERY_SECONDS = 3.0


async def _live_progress(services: AppServices, workflow_id: str) -> int | None:
    """Rows processed so far, from the workflow's `progress` query (the generate activity signals it), or None
    when the workflow does not answer in time."""
    timeout = min(PROGRESS_QUERY_SECONDS, services.settings.temporal.rpc_timeout_seconds)
    progress = await services.engine.query(workflow_id, "progress", ReportProgress, seconds=timeout)
    return progress.rows if progress is not None else None


@router.get("/{report_id}", response_model=ReportOut, summary="A report's status and progress")
async def get_report(report_id: uuid.UUID, grant: ReadReport, tx: TxDep, services: ServicesDep) -> ReportOut:
    see_all = services.authorizer.allows(grant.user.role, "report", "read_all")
    report = await service.get_report(tx, grant.user, report_id, see_all=see_all)
    progress_rows = None
    if report.status in (ReportStatus.QUEUED.value, ReportStatus.RUNNING.value) and report.workflow_id:
        progress_rows = await _live_progress(services, report.workflow_id)
    return _out(report, progress_rows, services.settings.approvals.base_currency)


def _chunks(handle: Any, size: int = 1 << 16) -> Iterator[bytes]:
    try:
        while chunk := handle.read(size):
            yield chunk
    finally:
        handle.close()


async def _download(
    report_id: uuid.UUID, grant: Grant, tx: Tx, services: AppServices, redirect_status: int
) -> Response:
    see_all = services.authorizer.allows(grant.user.role, "report", "read_all")
    report = await service.get_report(tx, grant.user, report_id, see_all=see_all)
    if report.status == ReportStatus.EXPIRED.value:
        raise InvalidState(
            "the report expired: its file was deleted after the retention period; request the report again",
            status=report.status,
        )
    if report.status != ReportStatus.COMPLETED.value or not report.storage_key:
        raise InvalidState(f"the report is {report.status}, not ready to download", status=report.status)
    filename = report.filename or f"report-{report.id}"
    url = services.storage.presigned_url(report.storage_key, filename, DOWNLOAD_LINK_SECONDS)
    if url is not None:
        return RedirectResponse(url, status_code=redirect_status)
    try:
        handle = services.storage.open(report.storage_key)
    except FileNotFoundError as error:  # pruned while this request ran, or lost from the storage folder
        raise NotFound("the report's file is no longer stored; request the report again", id=str(report.id)) from error
    return StreamingResponse(
        _chunks(handle),
        media_type=report.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            **({"Content-Length": str(report.size_bytes)} if report.size_bytes is not None else {}),
        },
    )


_DOWNLOAD_RESPONSES = file_responses(CONTENT_TYPES.values(), {
    303: "S3 storage: a short-lived presigned URL",
    404: "no such report, or its file is no longer stored",
    409: "the report is not completed, or it expired (its file was pruned)",
})  # fmt: skip


@router.post(
    "/{report_id}/download", summary="Download a report's file", responses=_DOWNLOAD_RESPONSES, response_class=Response
)
async def download_report_post(report_id: uuid.UUID, grant: ReadReport, tx: TxDep, services: ServicesDep) -> Response:
    return await _download(report_id, grant, tx, services, redirect_status=303)


@router.get(
    "/{report_id}/download", summary="Download a report's file", responses=_DOWNLOAD_RESPONSES, response_class=Response
)
async def download_report(report_id: uuid.UUID, grant: ReadReport, tx: TxDep, services: ServicesDep) -> Response:
    return await _download(report_id, grant, tx, services, redirect_status=307)


# --- schedules ------------------------------------------------------------------------------------------


def _schedule_out(
    schedule: ReportSchedule, next_runs: list[datetime] | None = None, recent: list[datetime] | None = None
) -> ScheduleOut:
    fields = schedule_service.fields_of(schedule)
    return ScheduleOut(
        id=schedule.id,
        name=fields.name,
        type=fields.type,
        format=fields.format,
        cron=fields.cron,
        timezone=fields.timezone,
        period=fields.period,
        recipients=fields.recipients,
        filters=fields.filters,
        paused=schedule.paused,
        schedule_id=schedule.schedule_key,
        next_runs=next_runs or [],
        recent_runs=recent or [],
        created_at=schedule.created_at,
    )


# The engine's refusals are answered in api/errors.py: unreachable 503, a schedule it finds invalid 422.


async def _apply(services: AppServices, schedule: ReportSchedule) -> None:
    """Make the engine's schedule match the record (created when missing)."""
    engine = services.engine
    await engine.put_schedule(schedule.schedule_key, schedule_service.engine_schedule(schedule, engine.queues.reports))


async def _with_runs(services: AppServices, schedule: ReportSchedule) -> ScheduleOut:
    # Next and recent runs are extras: left out when the engine is slow or away.
    runs = await services.engine.schedule_runs(schedule.schedule_key)
    return _schedule_out(schedule, runs.next, runs.recent) if runs else _schedule_out(schedule)


@schedules_router.post("", status_code=201, response_model=ScheduleOut, summary="Create a report schedule")
async def create_schedule(body: ScheduleIn, grant: ManageSchedules, tx: TxDep, services: ServicesDep) -> ScheduleOut:
    schedule = await schedule_service.create_schedule(tx, services.settings.reports, body, grant.user.id)
    await _apply(services, schedule)
    await schedule_service.audit_change(tx, grant.audit, "created", schedule.id, schedule_service.snapshot(schedule))
    return await _with_runs(services, schedule)


@schedules_router.get(
    "",
    response_model=list[ScheduleOut],
    summary="Report schedules with their next runs",
    responses={
        200: {
            "headers": {
                "X-Total-Count": {"description": "how many schedules there are", "schema": {"type": "integer"}},
                "X-Next-Cursor": {
                    "description": "send it as `cursor` for the next page; absent on the last page",
                    "schema": {"type": "string"},
                },
            }
        }
    },
)
async def list_schedules(
    grant: ManageSchedules,
    tx: TxDep,
    services: ServicesDep,
    response: Response,
    cursor: PageCursor,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ScheduleOut]:
    """A plain list (as it always was): the count is in `X-Total-Count`, and the cursor to the next page in
    `X-Next-Cursor` (absent on the last page)."""
    rows, total, next_cursor = await schedule_service.list_schedules(tx, Pager(limit, offset, cursor))
    response.headers["X-Total-Count"] = str(total)
    if next_cursor is not None:
        response.headers["X-Next-Cursor"] = next_cursor
    return [await _with_runs(services, row) for row in rows]


@schedules_router.get("/{schedule_id}", response_model=ScheduleOut, summary="One report schedule")
async def get_schedule(
    schedule_id: SmallRowId, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> ScheduleOut:
    return await _with_runs(services, await schedule_service.get_schedule(tx, schedule_id))


@schedules_router.patch("/{schedule_id}", response_model=ScheduleOut, summary="Change a report schedule")
async def update_schedule(
    schedule_id: SmallRowId, body: SchedulePatch, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> ScheduleOut:
    schedule, changes = await schedule_service.update_schedule(tx, services.settings.reports, schedule_id, body)
    await _apply(services, schedule)
    await schedule_service.audit_change(tx, grant.audit, "updated", schedule.id, changes)
    return await _with_runs(services, schedule)


@schedules_router.delete("/{schedule_id}", status_code=204, summary="Delete a report schedule")
async def delete_schedule(
    schedule_id: SmallRowId, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> Response:
    schedule, before = await schedule_service.delete_schedule(tx, schedule_id)
    await services.engine.delete_schedule(schedule.schedule_key)  # already gone is as good
    await schedule_service.audit_change(tx, grant.audit, "deleted", schedule_id, before)
    return Response(status_code=204)


async def _set_paused(schedule_id: int, paused: bool, grant: Grant, tx: Tx, services: AppServices) -> ScheduleOut:
    schedule = await schedule_service.set_paused(tx, schedule_id, paused)
    engine = services.engine
    note = f"{'paused' if paused else 'resumed'} by user {grant.user.id}"
    try:
        await (engine.pause_schedule if paused else engine.resume_schedule)(schedule.schedule_key, note)
    except ScheduleMissing:
        await _apply(services, schedule)  # lost by Temporal (a dev server restart): recreate in the right state
    await schedule_service.audit_change(
        tx, grant.audit, "paused" if paused else "resumed", schedule.id, {"paused": paused}
    )
    return await _with_runs(services, schedule)


@schedules_router.post("/{schedule_id}/pause", response_model=ScheduleOut, summary="Pause a report schedule")
async def pause_schedule(
    schedule_id: SmallRowId, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> ScheduleOut:
    return await _set_paused(schedule_id, True, grant, tx, services)


@schedules_router.post("/{schedule_id}/resume", response_model=ScheduleOut, summary="Resume a paused report schedule")
async def resume_schedule(
    schedule_id: SmallRowId, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> ScheduleOut:
    return await _set_paused(schedule_id, False, grant, tx, services)


@schedules_router.post(
    "/{schedule_id}/trigger", status_code=202, response_model=ScheduleOut, summary="Run a schedule now"
)
async def trigger_schedule(
    schedule_id: SmallRowId, grant: ManageSchedules, tx: TxDep, services: ServicesDep
) -> ScheduleOut:
    schedule = await schedule_service.get_schedule(tx, schedule_id)
    try:
        await services.engine.trigger_schedule(schedule.schedule_key)
    except ScheduleMissing:
        await _apply(services, schedule)  # lost by Temporal: recreate it from its record, then run it
        await services.engine.trigger_schedule(schedule.schedule_key)
    await schedule_service.audit_change(tx, grant.audit, "triggered", schedule.id, {"name": schedule.name})
    return await _with_runs(services, schedule)


routers = [schedules_router, router]
