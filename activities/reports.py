"""Report activities: generate (gather, render, store) idempotently by report id, notify, schedule runs, prune.

A retry or a second worker after a crash renders to the same storage key and the status update is guarded
(queued/running -> completed once), so one report row and one stored file result whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext, record
from domain.errors import DomainError
from domain.metrics import events
from domain.models import Report, User
from domain.notifications.service import notify
from domain.report_templates import service as templates
from domain.report_templates.dataset import TemplateDataset
from domain.report_templates.layout import renderer_for
from domain.reports import schedules as schedule_service
from domain.reports import service
from domain.reports.datasets import ReportQuery, dataset_for, describe_scope
from domain.reports.renderers import ReportMeta, report_filename
from domain.reports.schemas import CONTENT_TYPES, TITLES, ReportFormat, ReportStatus, ReportType
from workflows.contracts import (
    REPORT_PROGRESS_SIGNAL,
    GeneratedReport,
    ReportActivity,
    ReportNotice,
    ReportRetentionInput,
    ReportRetentionResult,
    ReportRowsProcessed,
    ScheduledRun,
    ScheduledRunRequest,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 2000


def storage_key_for(report: Report, filename: str) -> str:
    """Deterministic per report: a retried attempt overwrites, never adds, a file."""
    return f"reports/{report.id}/{filename}"


@dataclass
class _Counter:
    rows: int = 0


@contextlib.asynccontextmanager
async def _heartbeating(counter: _Counter, every_seconds: float) -> AsyncIterator[None]:
    """Heartbeat the rows processed periodically, also while a long render (a PDF layout) runs in a thread."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_seconds)
            activity.heartbeat(counter.rows)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


PROGRESS_SIGNAL_SECONDS = 5.0  # at most one progress signal per this many seconds: each one adds to history


@contextlib.asynccontextmanager
async def _signalling_progress(counter: _Counter, every_seconds: float) -> AsyncIterator[Callable[[], None]]:
    """Tell the activity's workflow how many rows are rendered (its `progress` query answers the API with it).

    Yields a function the render loop calls after each batch. The first batch is signalled at once, later ones
    at most every `every_seconds`, always with the latest count, from a background task: the render never waits
    for Temporal, and a lost signal costs only a stale figure."""
    info = activity.info()
    client: Client | None
    try:
        client = activity.client()
    except RuntimeError:  # run outside a worker (ActivityEnvironment): no workflow to tell
        client = None
    if client is None or not info.workflow_id:
        yield lambda: None
        return
    handle = client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    changed = asyncio.Event()

    async def report() -> None:
        sent = 0
        while True:
            await changed.wait()
            changed.clear()
            if counter.rows != sent:
                sent = counter.rows
                try:
                    await handle.signal(
                        REPORT_PROGRESS_SIGNAL,
                        ReportRowsProcessed(rows=sent, attempt=info.attempt),
                        rpc_timeout=timedelta(seconds=5),
                    )
                except Exception as error:  # a progress figure must never fail the render
                    log.info("progress of %s not signalled: %s", info.workflow_id, error)
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(report())
    try:
        yield changed.set
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _title(report: Report) -> str:
    run = service.template_run_of(report)
    if run is not None and run.name:
        return run.name
    return TITLES[ReportType(report.type)] if report.type in set(ReportType) else report.type


class ReportActivities:
    def __init__(self, deps: ActivityDeps, progress_seconds: float = PROGRESS_SIGNAL_SECONDS) -> None:
        self.deps = deps
        self.progress_seconds = progress_seconds

    # --- generate ------------------------------------------------------------------------------------

    def _result(self, report: Report, **overrides: object) -> GeneratedReport:
        settings = self.deps.settings
        link = None
        if report.storage_key and report.filename:
            lifetime = int(settings.reports.mail_link_hours * 3600)
            link = self.deps.storage.presigned_url(report.storage_key, report.filename, lifetime)
            if link is None:
                link = f"{settings.public_base_url.rstrip('/')}/api/v1/reports/{report.id}/download"
        values: dict[str, object] = {
            "report_id": str(report.id),
            "status": report.status,
            "rows": report.rows or 0,
            "storage_key": report.storage_key,
            "filename": report.filename,
            "content_type": report.content_type,
            "size_bytes": report.size_bytes or 0,
            "error": report.error,
            "attachable": bool(
                report.size_bytes is not None and report.size_bytes <= settings.reports.attachment_limit_bytes
            ),
            "link": link,
            "title": _title(report),
            "period": f"{report.period_from.isoformat()} to {report.period_to.isoformat()}",
            "format": report.format,
        }
        values.update(overrides)
        return GeneratedReport.model_validate(values)

    async def _load(self, report_id: uuid.UUID) -> Report:
        async with self.deps.db.transaction() as tx:
            report = await service.mark_running(tx, report_id)
            if report is None:  # already final: a retry after success, or a duplicate run
                found = await tx.session.get(Report, report_id)
                assert found is not None
                return found
            return report

    @activity.defn(name=ReportActivity.GENERATE)
    async def generate_report(self, report_id: str) -> GeneratedReport:
        try:
            rid = uuid.UUID(report_id)
            report = await self._load(rid)
        except DomainError as error:
            raise ApplicationError(error.message, type="ReportNotFound", non_retryable=True) from error
        if report.status != ReportStatus.RUNNING.value:
            return self._result(report)
        try:
            return await self._render_and_store(report)
        except DomainError as error:  # permanent: bad stored request, too many rows for a PDF
            return await self.fail_report(report_id, error.message)

    async def _render_and_store(self, report: Report) -> GeneratedReport:
        settings = self.deps.settings
        report_type, report_format, filters, scope = service.report_query_parts(report)
        query = ReportQuery(
            report_type,
            report.period_from,
            report.period_to,
            scope,
            filters,
            settings.reports.timezone,
            base_currency=settings.approvals.base_currency,
            presentation_currency=service.presentation_of(report),
            max_stale_days=settings.fx.max_stale_days,
        )
        run = service.template_run_of(report)
        dataset = TemplateDataset(query, run, report.scope or {}) if run is not None else dataset_for(query)
        filename = report_filename(report.type, report_format, report.period_from, report.period_to)
        content_type = CONTENT_TYPES[report_format]
        key = storage_key_for(report, filename)
        counter = _Counter()
        info = activity.info()
        started = time.monotonic()
        every = max(1.0, (info.heartbeat_timeout.total_seconds() / 3) if info.heartbeat_timeout else 10.0)
        with tempfile.TemporaryDirectory(prefix="report-") as folder:
            path = Path(folder) / filename
            # The dataset is read on the read replica when there is one (DATABASE_READ_URL): a report's rows are
            # what was committed a moment ago, and its long scan then takes nothing from the primary.
            async with self.deps.reads.transaction() as tx:
                await dataset.prepare(tx)  # the conversion rates, or a refusal naming the missing ones
                meta = ReportMeta(
                    report_id=str(report.id),
                    title=dataset.title or TITLES[report_type],
                    report_type=report.type,
                    period_from=report.period_from,
                    period_to=report.period_to,
                    scope=await describe_scope(tx, scope, dataset.subject),
                    generated_at=datetime.now(UTC),
                    basis=dataset.basis,
                    currency=dataset.presentation.currency,
                    base_currency=dataset.presentation.base,
                    currency_note=dataset.presentation.note(),
                )
                layout = dataset.layout if isinstance(dataset, TemplateDataset) else None
                cpu = settings.reports.layout_cpu_seconds  # an admin's layout is stopped past it
                renderer = await asyncio.to_thread(
                    renderer_for, report_format, path, meta, dataset.columns, layout, cpu
                )
                async with _heartbeating(counter, every), _signalling_progress(counter, self.progress_seconds) as told:
                    async for batch in dataset.batches(tx, BATCH_SIZE):
                        await asyncio.to_thread(renderer.write, batch)
                        counter.rows += len(batch)
                        activity.heartbeat(counter.rows)
                        told()
                        await self.after_batch(counter.rows)
                    await asyncio.to_thread(renderer.finish, dataset.totals, dataset.chart, dataset.sections)
            stored = await asyncio.to_thread(self.deps.storage.put_file, key, path, content_type)
        async with self.deps.db.transaction() as tx:
            changed = await service.mark_completed(
                tx,
                report.id,
                rows=counter.rows,
                storage_key=key,
                size_bytes=stored.size,
                content_type=content_type,
                filename=filename,
            )
            if changed:
                await record(
                    tx.sql,
                    AuditContext(workflow_id=info.workflow_id),
                    "report.completed",
                    "report",
                    str(report.id),
                    {"rows": counter.rows, "size_bytes": stored.size, "storage_key": key, "attempt": info.attempt},
                )
            final = await tx.session.get(Report, report.id, populate_existing=True)
            assert final is not None
            result = self._result(final)
        if changed:  # committed: counted once, by the attempt that completed it
            events.report_ended("completed", report.format, time.monotonic() - started)
        return result

    async def after_batch(self, rows: int) -> None:
        """A seam for tests that need a slow render (a worker killed mid-report); does nothing here."""

    @activity.defn(name=ReportActivity.FAIL)
    async def fail_report(self, report_id: str, message: str) -> GeneratedReport:
        rid = uuid.UUID(report_id)
        async with self.deps.db.transaction() as tx:
            failed_now = await service.mark_failed(tx, rid, message)
            if failed_now:
                workflow_id = activity.info().workflow_id if activity.in_activity() else None
                await record(
                    tx.sql,
                    AuditContext(workflow_id=workflow_id),
                    "report.failed",
                    "report",
                    report_id,
                    {"error": message},
                )
            report = await tx.session.get(Report, rid, populate_existing=True)
            if report is None:
                raise ApplicationError("report not found", type="ReportNotFound", non_retryable=True)
            result = self._result(report)
        if failed_now:
            events.report_ended("failed")
        return result

    # --- notify ----------------------------------------------------------------------------------------

    @activity.defn(name=ReportActivity.NOTIFY_REQUESTER)
    async def notify_requester(self, notice: ReportNotice) -> None:
        report = notice.report
        done = report.status == ReportStatus.COMPLETED.value
        async with self.deps.db.transaction() as tx:
            await notify(
                tx.sql,
                user_id=notice.user_id,
                event_type="report_ready",
                title=f"{'Report ready' if done else 'Report failed'}: {report.title}",
                body=(f"{report.filename}: {report.rows} rows" if done else (report.error or "")),
                link=f"/api/v1/reports/{report.report_id}",
                data={"report_id": report.report_id, "status": report.status},
                dedup_key=f"report-ready-{report.report_id}",
            )

    # --- schedules ----------------------------------------------------------------------------------------

    @activity.defn(name=ReportActivity.START_SCHEDULED)
    async def start_scheduled_report(self, request: ScheduledRunRequest) -> ScheduledRun:
        schedule = request.schedule
        period_from, period_to = schedule_service.period_for(schedule.period, request.reference_time, schedule.timezone)
        workflow_id = activity.info().workflow_id or ""
        async with self.deps.db.transaction() as tx:
            schedule_id = schedule.schedule_id
            if schedule_id is not None and await tx.session.get(schedule_service.ReportSchedule, schedule_id) is None:
                schedule_id = None  # the record was deleted; the run still reports
            report = await service.create_scheduled_report(
                tx,
                report_id=uuid.UUID(request.report_id),
                schedule_id=schedule_id,
                report_type=ReportType(schedule.type).value,
                format=ReportFormat(schedule.format).value,
                period_from=period_from,
                period_to=period_to,
                # A template schedule without a version runs the template's version current at this run.
                filters=await templates.pin_version(tx, dict(schedule.filters)),
                scope=dict(schedule.scope),
                workflow_id=workflow_id,
            )
            user_ids: list[int] = []
            if not schedule.recipients:  # no recipients named: the organisation's admins
                user_ids = list(
                    await tx.session.scalars(
                        select(User.id).where(User.role.in_(["admin", "superadmin"]), User.is_active.is_(True))
                    )
                )
            await record(
                tx.sql,
                AuditContext(workflow_id=workflow_id),
                "report.scheduled_run",
                "report",
                str(report.id),
                {"schedule": schedule.schedule_key, "period": [str(period_from), str(period_to)]},
            )
        return ScheduledRun(report_id=request.report_id, to_user_ids=user_ids, to_addresses=list(schedule.recipients))

    # --- retention ------------------------------------------------------------------------------------

    @activity.defn(name=ReportActivity.PRUNE)
    async def prune_reports(self, request: ReportRetentionInput) -> ReportRetentionResult:
        days = (
            request.retention_days if request.retention_days is not None else self.deps.settings.reports.retention_days
        )
        pruned = 0
        while True:
            # Expire and commit first, then delete: a download from then on sees the report expired (409), never a
            # completed report without its file. A crash in between leaves expired rows whose files the next run
            # (or this activity's retry) deletes, since expired_reports also finds those.
            async with self.deps.db.transaction() as tx:
                due = await service.expired_reports(tx, days)
                if not due:
                    break
                newly = await service.mark_expired(tx, [report.id for report in due])
                if newly:
                    await record(
                        tx.sql,
                        AuditContext(workflow_id=activity.info().workflow_id),
                        "report.pruned",
                        "report",
                        None,
                        {"count": len(newly), "retention_days": days, "ids": [str(i) for i in newly[:50]]},
                    )
            for key in [report.storage_key for report in due if report.storage_key]:
                await asyncio.to_thread(self.deps.storage.delete, key)
            async with self.deps.db.transaction() as tx:
                await service.forget_files(tx, [report.id for report in due])
            pruned += len(due)
            activity.heartbeat(pruned)
        return ReportRetentionResult(pruned=pruned)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.generate_report,
            self.fail_report,
            self.notify_requester,
            self.start_scheduled_report,
            self.prune_reports,
        ]
