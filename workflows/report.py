"""Report workflows: generate one report on request, run a schedule's report and mail it, prune old files.

Deterministic orchestration only: every side effect is an activity (activities/reports.py, and "send_email"),
named by the constants in workflows/contracts.py, so this module imports nothing but its contracts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        BULK_PRIORITY,
        EMAIL_RETRY,
        EMAIL_TIMEOUT,
        REPORT_PROGRESS_SIGNAL,
        SEND_EMAIL,
        EmailJob,
        GeneratedReport,
        ReportActivity,
        ReportJob,
        ReportNotice,
        ReportProgress,
        ReportRetentionInput,
        ReportRetentionResult,
        ReportRowsProcessed,
        ScheduledReportInput,
        ScheduledReportResult,
        ScheduledRun,
        ScheduledRunRequest,
    )

GENERATE_TIMEOUT = timedelta(hours=1)
GENERATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["ReportNotFound"],
)
SHORT_TIMEOUT = timedelta(seconds=30)
SHORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


async def _generate(report_id: str, heartbeat_seconds: int) -> GeneratedReport:
    """Run the generate activity; when every attempt failed, record the failure and return it."""
    try:
        return await workflow.execute_activity(
            ReportActivity.GENERATE,
            report_id,
            result_type=GeneratedReport,
            start_to_close_timeout=GENERATE_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=heartbeat_seconds),
            retry_policy=GENERATE_RETRY,
            priority=BULK_PRIORITY,
            summary=f"gather, render and store report {report_id}",
        )
    except ActivityError as error:
        cause = error.cause
        message = str(getattr(cause, "message", None) or cause or error)
        return await workflow.execute_activity(
            ReportActivity.FAIL,
            args=[report_id, message],
            result_type=GeneratedReport,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
            summary=f"record report {report_id} as failed",
        )


def _show(progress: ReportProgress) -> None:
    """The Temporal UI's current details: the phase, the rows so far, the error."""
    lines = [f"{progress.status.capitalize()}" + (f": {progress.rows} rows" if progress.rows else "")]
    if progress.error:
        lines.append(f"Error: {progress.error}")
    workflow.set_current_details("\n\n".join(lines))


class _TracksProgress:
    """The `progress` query of the report workflows: their phase, and while rendering the rows processed, which
    the generate activity signals as it goes (heartbeat details are visible to describe() only)."""

    def __init__(self) -> None:
        self._progress = ReportProgress(status="queued")
        self._attempt = 0

    @workflow.signal(name=REPORT_PROGRESS_SIGNAL)
    def rows_processed(self, update: ReportRowsProcessed) -> None:
        # Only while rendering (a late signal must not undo the final status), and never from an attempt older
        # than the latest heard from: a retry after a crash counts again from zero.
        if self._progress.status == "rendering" and update.attempt >= self._attempt:
            self._attempt = update.attempt
            self._phase(ReportProgress(status="rendering", rows=update.rows))

    @workflow.query
    def progress(self) -> ReportProgress:
        return self._progress

    def _phase(self, progress: ReportProgress) -> None:
        self._progress = progress
        _show(progress)


@workflow.defn(name="ReportWorkflow")
class ReportWorkflow(_TracksProgress):
    """Id `report-<uuid>`: gather, render and store one report, then tell the requester (in-app and email)."""

    @workflow.run
    async def run(self, job: ReportJob) -> GeneratedReport:
        self._phase(ReportProgress(status="rendering"))
        report = await _generate(job.report_id, job.heartbeat_seconds)
        self._phase(ReportProgress(status="notifying", rows=report.rows, error=report.error))
        if job.requested_by_id is not None:
            await workflow.execute_activity(
                ReportActivity.NOTIFY_REQUESTER,
                ReportNotice(report=report, user_id=job.requested_by_id),
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=SHORT_RETRY,
                summary=f"notify user {job.requested_by_id} in the app",
            )
            await workflow.execute_activity(
                SEND_EMAIL,
                EmailJob(
                    message_key=f"report-ready-{job.report_id}",
                    template="report_ready",
                    to_user_ids=[job.requested_by_id],
                    event_type="report_ready",
                    context=_mail_context(report),
                ),
                start_to_close_timeout=EMAIL_TIMEOUT,
                retry_policy=EMAIL_RETRY,
                summary=f"email report_ready to user {job.requested_by_id}",
            )
        self._phase(ReportProgress(status=report.status, rows=report.rows, error=report.error))
        return report


def _mail_context(
    report: GeneratedReport, schedule_name: str | None = None, attached: bool = False
) -> dict[str, object]:
    """Context for templates/emails/report_ready and scheduled_report (their subjects prefix `title`)."""
    if report.status == "completed":
        body = f"{report.title}, {report.period}: {report.rows} rows."
    else:
        body = f"{report.title}, {report.period}, could not be generated: {report.error}"
    return {
        "title": f"{schedule_name} ({report.period})" if schedule_name else f"{report.title} ({report.period})",
        "body": body,
        "link": report.link if report.status == "completed" else None,
        "report_name": report.filename or report.title,
        "format": report.format.upper(),
        "period": report.period,
        "attached": attached,
        "report_id": report.report_id,
        "status": report.status,
    }


@workflow.defn(name="ScheduledReportWorkflow")
class ScheduledReportWorkflow(_TracksProgress):
    """Started by a report Temporal Schedule: generate the report for the period before the run, mail it."""

    @workflow.run
    async def run(self, schedule: ScheduledReportInput) -> ScheduledReportResult:
        report_id = str(workflow.uuid4())  # deterministic: a replay or a retried activity uses the same id
        run = await workflow.execute_activity(
            ReportActivity.START_SCHEDULED,
            ScheduledRunRequest(schedule=schedule, report_id=report_id, reference_time=workflow.now()),
            result_type=ScheduledRun,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
            summary=f"record report {report_id} of schedule {schedule.name}",
        )
        self._phase(ReportProgress(status="rendering"))
        report = await _generate(run.report_id, schedule.heartbeat_seconds)
        self._phase(ReportProgress(status="notifying", rows=report.rows, error=report.error))
        attach = report.status == "completed" and report.attachable
        recipients = run.to_addresses + [f"user:{user_id}" for user_id in run.to_user_ids]
        if run.to_addresses or run.to_user_ids:
            await workflow.execute_activity(
                SEND_EMAIL,
                EmailJob(
                    message_key=f"scheduled-report-{run.report_id}",
                    template="scheduled_report",
                    to_user_ids=run.to_user_ids,
                    to_addresses=run.to_addresses,
                    event_type="scheduled_report",
                    context=_mail_context(report, schedule.name, attach),
                    attachment_storage_key=report.storage_key if attach else None,
                    attachment_filename=report.filename if attach else None,
                ),
                start_to_close_timeout=EMAIL_TIMEOUT,
                retry_policy=EMAIL_RETRY,
                summary=f"email scheduled_report to {len(recipients)} recipient(s)",
            )
        self._phase(ReportProgress(status=report.status, rows=report.rows, error=report.error))
        return ScheduledReportResult(report=report, delivered_to=recipients, attached=attach)


@workflow.defn(name="ReportRetentionWorkflow")
class ReportRetentionWorkflow:
    """Daily: delete report files older than REPORT_RETENTION_DAYS (the rows stay, marked expired)."""

    @workflow.run
    async def run(self, request: ReportRetentionInput) -> ReportRetentionResult:
        return await workflow.execute_activity(
            ReportActivity.PRUNE,
            request,
            result_type=ReportRetentionResult,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="delete expired report files",
        )
