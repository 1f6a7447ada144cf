"""The invoice workflow's activities: send an approved invoice (render and store its PDF, mark it sent, email it), and
run one reminder step. Each commits its decision in one transaction, then delivers the emails that decision wrote
(domain/invoices/customer_mail.py), so a retry after the commit renders, records and sends nothing twice.

`send` runs on the reports queue: WeasyPrint's layout is CPU-bound (a few tenths of a second an invoice), and the
approvals queue answers people waiting on a decision; the layout itself runs in a process of its own
(core/processes.py), so it never holds the event loop the approval activities share. `remind` is a few statements
and an email: approvals queue.

Failures are retried (workflows/invoices.py backs off to ten minutes, without end): a mail server away, and also a
broken mail template or reminder policy, which a fix deploys and the waiting attempts then pick up. Only an invoice
that is not there, and a late fee that would be charged in a closed month (the database refuses it, migration 0015:
only an admin's reopening would let a retry through), fail for good.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import psycopg
from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from core.processes import in_process
from domain.audit.service import AuditContext
from domain.errors import DomainError
from domain.invoices import customer_mail, document, issuing, reminders, sending
from domain.invoices import repository as invoices
from domain.invoices.reminder_policy import ReminderPolicyError, load_reminder_policy
from domain.invoices.repository import InvoiceRow
from domain.ledger.periods import closed_period
from domain.mail.delivery import Mailer
from workflows.contracts import (
    PERIOD_CLOSED,
    InvoiceActivity,
    ReminderStep,
    RemindJob,
    RemindOutcome,
    SendJob,
    SentInvoice,
)

# Retried, not failed for good: the operator fixes the file and the waiting sends go on (the error shows on the
# activity in the Temporal UI, and in the worker's log).
POLICY_BROKEN = "ReminderPolicyBroken"


def _permanent(error: DomainError) -> ApplicationError:
    """No such invoice: a retry will not make one."""
    return ApplicationError(error.message, type=error.refusal, non_retryable=True)


def _context() -> AuditContext:
    return AuditContext(workflow_id=activity.info().workflow_id)


class InvoiceActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps
        self.mailer = Mailer(deps.db, deps.mail, deps.storage, deps.settings)

    @property
    def seller(self) -> document.Seller:
        return document.Seller.from_settings(self.deps.settings.invoices)

    def reminder_steps(self) -> list[ReminderStep]:
        try:
            return load_reminder_policy(self.deps.settings.reminder_policy_path)
        except ReminderPolicyError as error:
            activity.logger.error("%s", error)
            raise ApplicationError(str(error), type=POLICY_BROKEN) from error

    async def _invoice(self, invoice_id: int) -> InvoiceRow:
        try:
            async with self.deps.db.transaction(autocommit=True) as tx:
                return await invoices.invoice(tx.sql, invoice_id)
        except DomainError as error:
            raise _permanent(error) from error

    @activity.defn(name=InvoiceActivity.SEND)
    async def send(self, job: SendJob) -> SentInvoice:
        """Send the approved invoice once; return its status, due date and the reminder steps (read from the policy
        by the attempt that completes, and pinned by the workflow from then on)."""
        invoice = await self._invoice(job.invoice_id)
        steps: list[ReminderStep] | None = None
        if invoice.status == issuing.APPROVED:
            steps = self.reminder_steps()  # a broken policy holds the send before anything is done
            await self._render_and_record(invoice, job)
        await customer_mail.deliver_unsent(self.deps.db, self.mailer, job.invoice_id)
        invoice = await self._invoice(job.invoice_id)
        if invoice.status not in issuing.OPEN:  # void before it went out, or paid since: nothing to remind of
            return SentInvoice(status=invoice.status, open=False, due_date=invoice.due_date)
        return SentInvoice(
            status=invoice.status,
            due_date=invoice.due_date,
            steps=steps if steps is not None else self.reminder_steps(),
            hour_utc=self.deps.settings.invoices.reminder_hour_utc,
        )

    async def _render_and_record(self, invoice: InvoiceRow, job: SendJob) -> None:
        async with self.deps.db.transaction(autocommit=True) as tx:
            lines = (await invoices.lines_of(tx.sql, [invoice.id])).get(invoice.id, [])
            customer = await invoices.customer(tx.sql, invoice.customer_id)
        seller = self.seller
        pdf = await in_process(document.render_pdf, invoice, lines, customer, seller)
        key = document.storage_key(invoice)
        await asyncio.to_thread(self._store, key, pdf)
        async with self.deps.db.transaction() as tx:
            await sending.record_sent(tx.sql, invoice.id, key, job.now, seller, _context())

    def _store(self, key: str, pdf: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="invoice-") as folder:
            path = Path(folder) / "invoice.pdf"
            path.write_bytes(pdf)
            self.deps.storage.put_file(key, path, document.CONTENT_TYPE)

    @activity.defn(name=InvoiceActivity.REMIND)
    async def remind(self, job: RemindJob) -> RemindOutcome:
        """Run one reminder step once (its fee at most once), then email it."""
        try:
            async with self.deps.db.transaction() as tx:
                outcome = await reminders.remind(tx.sql, job.invoice_id, job.step, job.reminder, job.now,
                                                 self.seller, _context())  # fmt: skip
        except DomainError as error:
            raise _permanent(error) from error
        except (DBAPIError, psycopg.Error) as error:
            # A late fee in a closed month: refused by the database, nothing of the step written. Final, as a domain
            # refusal is (retrying every ten minutes would never end); the workflow skips the step and goes on.
            refusal = closed_period(error)
            if refusal is None:
                raise
            raise ApplicationError(refusal.message, refusal.details, type=PERIOD_CLOSED,
                                   non_retryable=True) from error  # fmt: skip
        if not outcome.ended:
            await customer_mail.deliver_unsent(self.deps.db, self.mailer, job.invoice_id)
        return outcome
