"""Recurring invoices on a Temporal Schedule (domain/invoices/recurring_lifecycle.py).

RecurringInvoiceSetupWorkflow (`recurring-invoice-setup-<id>`), started through the approval outbox once the
template is approved, creates the schedule `recurring-invoice-<id>`. Each of the schedule's runs is a
RecurringInvoiceRunWorkflow, which issues the invoice of its scheduled day (activities/recurring_invoices.py).
"""

from __future__ import annotations

from datetime import UTC, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        RECURRING_INVOICE_RUN_WORKFLOW,
        RECURRING_INVOICE_SETUP_WORKFLOW,
        SCHEDULED_START_TIME,
        RecurringActivity,
        RecurringInvoiceInput,
        RecurringRunJob,
        RecurringRunResult,
    )

# The engine away: keep trying (the recurring invoice is active, its schedule must come to exist).
_SETUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["ScheduleRefused"],
)
# A missing exchange rate is retried for about two days (the daily import, or a manual rate, supplies it); anything
# else the activity raises retryable (the database away) heals sooner. Permanent refusals are non-retryable.
_RUN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    maximum_attempts=55,
)


@workflow.defn(name=RECURRING_INVOICE_SETUP_WORKFLOW)
class RecurringInvoiceSetupWorkflow:
    @workflow.run
    async def run(self, request: RecurringInvoiceInput) -> bool:
        """True when this run created the schedule (False: it was there already, or the recurring invoice was
        cancelled before it was made)."""
        created: bool = await workflow.execute_activity(
            RecurringActivity.PUT_SCHEDULE,
            request,
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_SETUP_RETRY,
            summary=f"create the schedule of recurring invoice {request.recurring_id}",
        )
        return created


@workflow.defn(name=RECURRING_INVOICE_RUN_WORKFLOW)
class RecurringInvoiceRunWorkflow:
    @workflow.run
    async def run(self, request: RecurringInvoiceInput) -> RecurringRunResult:
        # The day this run stands for: its scheduled time (the server sets it on every run a schedule starts, a
        # backfilled one's being the time it makes up), else the start of this run. Both are in the history, so a
        # replay and every retry of the activity see the same day.
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
        run_on = (scheduled or workflow.now()).astimezone(UTC).date()
        job = RecurringRunJob(recurring_id=request.recurring_id, run_on=run_on, workflow_id=workflow.info().workflow_id)
        result: RecurringRunResult = await workflow.execute_activity(
            RecurringActivity.RUN,
            job,
            result_type=RecurringRunResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_RUN_RETRY,
            summary=f"issue the invoice of {run_on.isoformat()}",
        )
        return result
