"""ExportWorkflow (`export-<number>`, on the reports queue): make one export batch's file, or record why it could
not be made.

Deterministic orchestration only: the side effects are the activities of activities/exports.py, named in
workflows/contracts.py. The render is retried for what a retry can heal (the database or the storage away); a month
whose journals the format cannot hold (EXPORT_REFUSED) fails at once. When the render gives up, the batch is marked
failed with the reason, so it never stays pending.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.alerts import failure_reason

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        BULK_PRIORITY,
        EXPORT_REFUSED,
        ExportActivity,
        ExportFailure,
        ExportJob,
        ExportResult,
    )

RENDER_TIMEOUT = timedelta(minutes=30)
RENDER_HEARTBEAT = timedelta(minutes=2)  # a crashed worker's render is retried elsewhere this soon
RENDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=[EXPORT_REFUSED, "NotFound"],
)
FAIL_TIMEOUT = timedelta(seconds=30)
FAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name="ExportWorkflow")
class ExportWorkflow:
    @workflow.run
    async def run(self, job: ExportJob) -> ExportResult:
        try:
            return await workflow.execute_activity(
                ExportActivity.RENDER,
                job,
                result_type=ExportResult,
                start_to_close_timeout=RENDER_TIMEOUT,
                heartbeat_timeout=RENDER_HEARTBEAT,
                retry_policy=RENDER_RETRY,
                priority=BULK_PRIORITY,
                summary=f"render export batch {job.batch_id}",
            )
        except ActivityError as error:
            return await workflow.execute_activity(
                ExportActivity.FAIL,
                ExportFailure(batch_id=job.batch_id, error=failure_reason(error)),
                result_type=ExportResult,
                start_to_close_timeout=FAIL_TIMEOUT,
                retry_policy=FAIL_RETRY,
                summary=f"record export batch {job.batch_id} as failed",
            )
