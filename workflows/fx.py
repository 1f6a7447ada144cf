"""The ECB exchange-rate import: fetch, parse and store one rates file, retrying a failed fetch; when the attempts
are used up, alert the admins (in-app and email) and fail with the reason, so the Temporal UI shows it.

Deterministic orchestration only: the side effects are activities (activities/fx.py, and "send_email"), named by
the constants in workflows/contracts.py.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.alerts import alert_operators, failure_reason

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ECB_FORMAT_ERROR,
        FX_IMPORT_FAILED,
        FxActivity,
        FxImportInput,
        FxImportJob,
        FxImportSummary,
        OperatorAlert,
    )

EVENT = "fx_import_failed"


@workflow.defn(name="FxRatesImportWorkflow")
class FxRatesImportWorkflow:
    """The daily schedule's runs (`fx-rates-import-<UTC timestamp>`) and the backfill (`fx-rates-backfill`)."""

    @workflow.run
    async def run(self, request: FxImportInput) -> FxImportSummary:
        workflow_id = workflow.info().workflow_id
        try:
            summary = await workflow.execute_activity(
                FxActivity.IMPORT,
                FxImportJob(workflow_id=workflow_id, which=request.which, url=request.url),
                result_type=FxImportSummary,
                # The fetch is bounded by its own timeout; the rest (parse, one transaction) takes seconds.
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds + 60),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=request.retry_initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=30),
                    maximum_attempts=request.attempts,
                    non_retryable_error_types=[ECB_FORMAT_ERROR],
                ),
                summary=f"fetch and store the ECB rates ({request.which})",
            )
        except ActivityError as error:
            reason = failure_reason(error)
            await self._alert(
                f"Exchange rates not imported ({request.which})",
                f"The ECB exchange-rate import {workflow_id} gave up: {reason}. Submits in a foreign currency use the "
                "last stored rate while it is within FX_MAX_STALE_DAYS; add a manual rate (POST /api/v1/fx/rates) "
                "if the import stays down.",
                {"workflow_id": workflow_id, "error": reason},
            )
            raise ApplicationError(
                f"exchange-rate import failed: {reason}", type=FX_IMPORT_FAILED, non_retryable=True
            ) from error
        workflow.set_current_details(f"Stored {len(summary.stored)} day(s); refused {len(summary.refused)}")
        if summary.refused:
            refused = "; ".join(f"{day}: {why}" for day, why in sorted(summary.refused.items()))
            await self._alert(
                f"Exchange rates of {len(summary.refused)} day(s) refused",
                f"The ECB import {workflow_id} stored {len(summary.stored)} day(s) and refused these whole: {refused}. "
                "Add manual rates for them if they are needed.",
                {"workflow_id": workflow_id, "error": refused},
                suffix="refused",
            )
        return summary

    async def _alert(self, title: str, body: str, context: dict[str, object], suffix: str = "failed") -> None:
        """Admins and superadmins, in-app and by email: once a day per kind of alert (a daily run retried by hand,
        or a backfill and the schedule failing together, tell them once)."""
        day = workflow.now().date().isoformat()
        alert = OperatorAlert(
            dedup_key=f"fx-import-{suffix}-{day}",
            event_type=EVENT,
            title=title,
            body=body,
            link="/fx/rates",
            data={"workflow_id": workflow.info().workflow_id, "day": day},
        )
        await alert_operators(FxActivity.ALERT_ADMINS, alert, EVENT, context)
