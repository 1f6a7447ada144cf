"""InvoiceWorkflow (`invoice-<id>`, approvals queue): send an issued invoice, then remind its customer on durable
timers until it is paid or void. Started by the approval outbox once the approving transaction has committed
(domain/invoices/issuing.py); the Temporal UI finds it by its InvoiceNumber and CustomerId search attributes.

1. Send (activities/invoices.py, on the reports queue: it renders the PDF). It answers with the invoice's due date
   and the reminder steps of the policy, pinned here from then on: a later edit of policies/reminders.toml or of
   INVOICE_REMINDER_HOUR_UTC changes the schedule of invoices sent afterwards, not of this one.
2. For each step, in order: wait until its day (the due date + its offset) at the reminder hour (UTC), or until the
   `closed` signal (a full payment or a void: InvoiceCommands.tell_closed); then run the step. The step reads the
   invoice under its lock, so an invoice found paid or void ends the workflow even if the signal was lost.
   A step whose time had passed when the invoice was sent is skipped: the invoice itself is the notice.

Deterministic: time is the workflow's clock, every side effect is an activity named by its contract; the history is a
timer and an activity per step (a policy holds at most 20 steps).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        INVOICE_CLOSED_SIGNAL,
        INVOICE_WORKFLOW,
        PERIOD_CLOSED,
        REPORTS_QUEUE,
        InvoiceActivity,
        InvoiceInput,
        InvoiceOutcome,
        ReminderStep,
        RemindJob,
        RemindOutcome,
        SendJob,
        SentInvoice,
        queue_beside,
    )

# A mail server away for hours, a broken template or policy until the fix is deployed: keep trying, at most every
# ten minutes (the activities fail for good only when the invoice is not there: a non-retryable error).
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=10)
)
SEND_TIMEOUT = timedelta(minutes=2)  # render, store, commit, email
REMIND_TIMEOUT = timedelta(minutes=1)


def reminder_time(due_date: date, step: ReminderStep, hour_utc: int) -> datetime:
    """When a step runs: its day (the due date + its offset) at the reminder hour, UTC."""
    return datetime.combine(due_date + timedelta(days=step.offset_days), time(hour_utc), tzinfo=UTC)


@workflow.defn(name=INVOICE_WORKFLOW)
class InvoiceWorkflow:
    def __init__(self) -> None:
        self._closed: str | None = None

    @workflow.signal(name=INVOICE_CLOSED_SIGNAL)
    def closed(self, why: str) -> None:
        """The invoice is paid or void: nothing left to remind of (the first reason given is kept)."""
        if self._closed is None:
            self._closed = why or "closed"

    @workflow.run
    async def run(self, start: InvoiceInput) -> InvoiceOutcome:
        sent = await workflow.execute_activity(
            InvoiceActivity.SEND,
            SendJob(invoice_id=start.invoice_id, number=start.number, now=workflow.now()),
            result_type=SentInvoice,
            task_queue=queue_beside(workflow.info().task_queue, REPORTS_QUEUE),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=RETRY,
            summary=f"render and send invoice {start.number}",
        )
        if not sent.open:
            workflow.set_current_details(f"Ended: {sent.status} before it was sent")
            return InvoiceOutcome(ended_by=sent.status)
        sent_at = workflow.now()
        reminded: list[int] = []
        skipped: list[int] = []
        for number, step in enumerate(sent.steps, 1):
            due = reminder_time(sent.due_date, step, sent.hour_utc)
            if due <= sent_at:
                continue
            workflow.set_current_details(
                f"Sent; due {sent.due_date.isoformat()}. Next: reminder {number} of {len(sent.steps)} on "
                f"{due.strftime('%Y-%m-%d %H:%M UTC')}, unless paid or void first"
            )
            if await self._closed_before(due):
                workflow.set_current_details(f"Ended: {self._closed or 'closed'}; reminders sent: {len(reminded)}")
                return InvoiceOutcome(reminded=reminded, ended_by=self._closed or "closed", skipped=skipped)
            try:
                outcome = await workflow.execute_activity(
                    InvoiceActivity.REMIND,
                    RemindJob(invoice_id=start.invoice_id, step=number, reminder=step, now=workflow.now()),
                    result_type=RemindOutcome,
                    start_to_close_timeout=REMIND_TIMEOUT,
                    retry_policy=RETRY,
                    summary=f"reminder {number} of {len(sent.steps)} for invoice {start.number}",
                )
            except ActivityError as error:
                # Its day is in a closed period (an accountant closed the current month early): the step's fee
                # cannot book there, so the step is skipped, not the invoice's later reminders.
                if not (isinstance(error.cause, ApplicationError) and error.cause.type == PERIOD_CLOSED):
                    raise
                workflow.logger.warning("invoice %s: reminder %s skipped: %s", start.invoice_id, number, error.cause)
                skipped.append(number)
                continue
            if outcome.ended:
                workflow.set_current_details(f"Ended: {outcome.status}; reminders sent: {len(reminded)}")
                return InvoiceOutcome(reminded=reminded, ended_by=outcome.status, skipped=skipped)
            reminded.append(number)
        workflow.set_current_details(f"Every reminder step done ({len(reminded)} sent, {len(skipped)} skipped)")
        return InvoiceOutcome(reminded=reminded, ended_by="steps done", skipped=skipped)

    async def _closed_before(self, moment: datetime) -> bool:
        """Wait until `moment` unless the `closed` signal comes first; True when it did."""
        wait = moment - workflow.now()
        if wait > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._closed is not None, timeout=wait)
            except TimeoutError:
                pass
        return self._closed is not None


# Versioned workers (docs/operations.md, "Rolling deploy") register this class instead: the same workflow under the
# same name, auto-upgrading (Temporal refuses a versioning behaviour from an unversioned worker, so it is declared
# only here). An invoice's reminders run for weeks past its due date; pinned, every build would have to keep a
# worker that long. Its runs move to the current build at their next task instead, so a change to this workflow
# must replay the recorded histories (tests/invoices/histories): make it with `workflow.patched`.
@workflow.defn(name=INVOICE_WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoUpgradeInvoiceWorkflow(InvoiceWorkflow):
    @workflow.run
    async def run(self, start: InvoiceInput) -> InvoiceOutcome:
        return await super().run(start)
