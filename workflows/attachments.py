"""AttachmentUpkeepWorkflow, run by the `attachments-upkeep` Schedule (ATTACHMENT_UPKEEP_CRON): remove the presigned
uploads never completed, rows and objects, each audited (activities/attachments.py says how)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ATTACHMENT_UPKEEP_WORKFLOW,
        AttachmentActivity,
        AttachmentUpkeepInput,
        AttachmentUpkeepSummary,
    )

# A few attempts within the run (a store or database away for a minute); what is still left waits for the next run,
# an hour later by default, rather than this one holding the schedule (overlap SKIP) while it retries.
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["ValidationFailed"],
)


@workflow.defn(name=ATTACHMENT_UPKEEP_WORKFLOW)
class AttachmentUpkeepWorkflow:
    @workflow.run
    async def run(self, request: AttachmentUpkeepInput) -> AttachmentUpkeepSummary:
        return await workflow.execute_activity(
            AttachmentActivity.REMOVE_ABANDONED,
            request,
            result_type=AttachmentUpkeepSummary,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
            summary="remove presigned uploads never completed",
        )
