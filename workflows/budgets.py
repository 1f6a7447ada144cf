"""BudgetUpkeepWorkflow, run by the `budget-upkeep` Schedule (BUDGET_UPKEEP_CRON): release the commitments that
approval workflows closed without approval left held (activities/budgets.py says how it decides), then email the
budget threshold alerts waiting in their outbox, each once (the email's key is the alert's)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        EMAIL_TIMEOUT,
        SEND_EMAIL,
        BudgetActivity,
        BudgetAlertEmail,
        BudgetReconcileSummary,
        BudgetUpkeepInput,
        BudgetUpkeepSummary,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=10)
# A few attempts within the run: an alert whose email fails stays unsent and the next run tries again (the email's key
# keeps it to one message), so a mail outage never holds the upkeep (and the schedule skips no reconciling).
_EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=["EmailTemplateError", "EmailRejected", "EmailAttachmentMissing"],
)


@workflow.defn(name="BudgetUpkeepWorkflow")
class BudgetUpkeepWorkflow:
    @workflow.run
    async def run(self, request: BudgetUpkeepInput) -> BudgetUpkeepSummary:
        reconcile = await workflow.execute_activity(
            BudgetActivity.RECONCILE,
            request,
            result_type=BudgetReconcileSummary,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=_RETRY,
            summary="release commitments closed approvals left held",
        )
        alerts = await workflow.execute_activity(
            BudgetActivity.ALERTS,
            request,
            result_type=list[BudgetAlertEmail],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
            summary="read the threshold alerts waiting to be emailed",
        )
        workflow.set_current_details(
            f"Checked {reconcile.checked}, released {len(reconcile.released)}; {len(alerts)} alert email(s) to send"
        )
        sent = await asyncio.gather(*(self._send(alert) for alert in alerts), return_exceptions=True)
        return BudgetUpkeepSummary(reconcile=reconcile, alerts_sent=sum(1 for result in sent if result is True))

    async def _send(self, alert: BudgetAlertEmail) -> bool:
        await workflow.execute_activity(
            SEND_EMAIL,
            alert.email,
            start_to_close_timeout=EMAIL_TIMEOUT,
            retry_policy=_EMAIL_RETRY,
            summary=f"email budget alert {alert.alert_id}",
        )
        await workflow.execute_activity(
            BudgetActivity.ALERT_SENT,
            alert.alert_id,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
            summary=f"mark budget alert {alert.alert_id} sent",
        )
        return True
