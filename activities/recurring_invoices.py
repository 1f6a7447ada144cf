"""The recurring-invoice activities: create an active recurring invoice's schedule, and issue one run's invoice.

Both are idempotent: a schedule that exists already is left as it is, and a run of a date that has its invoice
makes nothing. A domain refusal is permanent (non-retryable), and so is a run dated in a closed month (the database
refuses to number it, migration 0015: nothing of the run is written); a missing exchange rate, which the daily import
or an accountant's manual rate supplies, is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from core.engine import ScheduleRefused, WorkflowEngine
from domain.approvals import outbox
from domain.audit.service import AuditContext
from domain.errors import DomainError
from domain.fx.rates import terms_from
from domain.invoices import recurring, recurring_lifecycle
from domain.invoices import recurring_repository as recurring_rows
from domain.ledger.periods import closed_period
from workflows.contracts import (
    RecurringActivity,
    RecurringInvoiceInput,
    RecurringRunJob,
    RecurringRunResult,
    recurring_schedule_id,
)

log = logging.getLogger(__name__)

RATE_MISSING = "rate_missing"  # domain.fx.rates.lock's reason when no rate is stored for the day


class RecurringInvoiceActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @property
    def engine(self) -> WorkflowEngine:
        assert self.deps.engine is not None, "the worker hands the recurring-invoice activities its engine"
        return self.deps.engine

    @activity.defn(name=RecurringActivity.PUT_SCHEDULE)
    async def put_schedule(self, job: RecurringInvoiceInput) -> bool:
        """Create the schedule of an active recurring invoice (True: created now). Times of its spec between its
        start and now (an approval that came after the start day) run at once, each dated its own day."""
        row = await self._read(job.recurring_id)
        if row.status != recurring_lifecycle.ACTIVE:
            return False  # cancelled before its schedule was made: nothing to make
        engine = self.engine
        now = datetime.now(UTC)
        start = recurring_lifecycle.start_of(row.starts_on)
        try:
            created = await engine.add_schedule(
                recurring_schedule_id(row.id),
                recurring_lifecycle.engine_schedule(row, engine.queues.approvals),
                backfill=(start, now) if start <= now else None,
            )
        except ScheduleRefused as error:
            raise ApplicationError(str(error), type="ScheduleRefused", non_retryable=True) from error
        # A cancel that committed while the schedule was being made found nothing to delete: delete it here.
        if (await self._read(job.recurring_id)).status != recurring_lifecycle.ACTIVE:
            await recurring.retire_schedule(engine, row.id)
        return created

    @activity.defn(name=RecurringActivity.RUN)
    async def run(self, job: RecurringRunJob) -> RecurringRunResult:
        context = AuditContext(workflow_id=job.workflow_id)
        terms = terms_from(self.deps.settings)
        try:
            async with self.deps.db.transaction() as tx:
                ran = await recurring.run(tx.sql, job.recurring_id, job.run_on, datetime.now(UTC), terms, context)
        except DomainError as error:
            retry = error.details.get("reason") == RATE_MISSING
            raise ApplicationError(error.message, error.details, type=error.refusal, non_retryable=not retry) from error
        except (DBAPIError, psycopg.Error) as error:
            # The run's day is in a closed month: the database refused to issue its invoice. Retrying for two days
            # would not reopen the month; the run fails for good with the message (an admin may reopen the month and
            # backfill the schedule for that day).
            refusal = closed_period(error)
            if refusal is None:
                raise
            raise ApplicationError(refusal.message, refusal.details, type=refusal.refusal,
                                   non_retryable=True) from error  # fmt: skip
        if ran.created and ran.request_id is not None:
            await self._deliver(ran.request_id)
        if ran.recurring.status in (recurring_lifecycle.ENDED, recurring_lifecycle.CANCELLED):
            await recurring.retire_schedule(self.engine, ran.recurring.id)  # nothing left for it to run
        invoice = ran.invoice
        return RecurringRunResult(
            recurring_id=ran.recurring.id,
            run_on=job.run_on,
            status=ran.recurring.status,
            created=ran.created,
            invoice_id=invoice.id if invoice is not None else None,
            number=invoice.number if invoice is not None else None,
        )

    async def _read(self, recurring_id: int) -> recurring_rows.RecurringRow:
        async with self.deps.db.transaction(autocommit=True) as tx:
            return await recurring_rows.recurring(tx.sql, recurring_id)

    async def _deliver(self, request_id: int) -> None:
        """Start the new invoice's workflow now; the outbox relay delivers whatever this cannot."""
        try:
            async with self.deps.db.transaction() as tx:
                await outbox.deliver_follow_ups(tx.sql, self.engine, request_id)
        except Exception as error:  # delivery is the relay's job too: nothing is lost
            log.warning("invoice workflow start of request %s left to the outbox relay: %s", request_id, error)

    def all(self) -> list[Callable[..., object]]:
        return [self.put_schedule, self.run]
