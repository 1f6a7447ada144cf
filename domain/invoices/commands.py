"""What people ask of an invoice's lifecycle: submit it for approval, withdraw it, void it.

Submitting opens the same durable approval as an expense (domain/approvals: the chain by the amount's tier in the
base currency, separation of duties, delegation, request changes back to draft), with the invoice's total locked
at its issue date's rate. Approvers decide it through `/approvals/{request_id}/...` and see it in their inbox.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from core.db import Tx
from core.engine import EngineUnavailable, WorkflowGone
from domain.approvals import outbox
from domain.approvals import repository as requests
from domain.approvals.commands import ApprovalCommands, Caller, _once
from domain.approvals.transitions import open_request
from domain.audit.service import record
from domain.errors import InvalidState
from domain.fx import rates as fx_rates
from domain.idempotency.once import Replayed
from domain.invoices import issuing
from domain.invoices import repository as invoices
from domain.invoices.schemas import InvoiceOut
from domain.invoices.service import RESOURCE, check_draft, get_invoice, visible_invoice
from domain.models import RequestStatus
from domain.money import in_minor_units
from workflows.contracts import INVOICE_CLOSED_SIGNAL, invoice_workflow_id

log = logging.getLogger(__name__)

CLOSED_SIGNAL = INVOICE_CLOSED_SIGNAL  # the invoice workflow's signal: paid or void, nothing left to remind of


class InvoiceCommands:
    def __init__(self, approvals: ApprovalCommands) -> None:
        self.approvals = approvals
        self.authorizer = approvals.authorizer

    async def submit(self, tx: Tx, caller: Caller, invoice_id: int) -> InvoiceOut | Replayed:
        """Start the invoice's approval (or its next round, after changes). 503 when the engine is away (the
        invoice stays a draft)."""
        scope = f"POST /invoices/{invoice_id}/submit"
        return await _once(tx, caller, scope, None, 200, self._submit, tx, caller, invoice_id)

    async def _submit(self, tx: Tx, caller: Caller, invoice_id: int) -> InvoiceOut:
        user = caller.user
        invoice = await visible_invoice(tx, self.authorizer, user, invoice_id, lock=True)
        check_draft(invoice, "submitted")
        if invoice.approval_request_id is not None:
            request = await requests.request(tx.sql, invoice.approval_request_id)
            if request.status == RequestStatus.CHANGES_REQUESTED:
                if request.requester_id != user.id:
                    raise InvalidState("only who submitted the invoice may resubmit it after changes")
                await self.approvals._owner_update(tx, caller, request, "resubmit")
                return await get_invoice(tx, self.authorizer, user, invoice_id)
        settings = self.approvals.settings
        fx = await fx_rates.lock(tx.sql, invoice.currency, invoice.total, invoice.issue_date,
                                 fx_rates.terms_from(settings))  # fmt: skip
        customer = await invoices.customer(tx.sql, invoice.customer_id)
        title = f"Invoice to {customer.name}: {in_minor_units(invoice.total, invoice.currency)} {invoice.currency}"
        opening = self.approvals.opening(user, None, title, invoice.notes, fx.base_amount, fx)
        opening = dataclasses.replace(opening, subject_kind=issuing.INVOICE, invoice=invoice)
        submission = await open_request(tx.sql, opening, caller.audit)
        await self.approvals.lifecycle.start_or_undo(tx, submission, caller.audit)
        if submission.request.status == RequestStatus.APPROVED:  # approved at submit by a rule: issued already
            await outbox.deliver_follow_ups(tx.sql, self.approvals.lifecycle.engine, submission.request.id)
        return await get_invoice(tx, self.authorizer, user, invoice_id)

    async def withdraw(self, tx: Tx, caller: Caller, invoice_id: int) -> InvoiceOut | Replayed:
        """End the approval; the invoice is a draft again."""
        scope = f"POST /invoices/{invoice_id}/withdraw"
        return await _once(tx, caller, scope, None, 200, self._withdraw, tx, caller, invoice_id)

    async def _withdraw(self, tx: Tx, caller: Caller, invoice_id: int) -> InvoiceOut:
        invoice = await visible_invoice(tx, self.authorizer, caller.user, invoice_id)
        request = (
            await requests.request(tx.sql, invoice.approval_request_id)
            if invoice.approval_request_id is not None
            else None
        )
        if request is None or request.status not in (RequestStatus.PENDING, RequestStatus.CHANGES_REQUESTED):
            raise InvalidState(f"only an invoice waiting on approval can be withdrawn; this one is {invoice.status}")
        if request.requester_id != caller.user.id:
            raise InvalidState("only who submitted the invoice may withdraw it")
        await self.approvals._owner_update(tx, caller, request, "withdraw")
        return await get_invoice(tx, self.authorizer, caller.user, invoice_id)

    async def void(self, tx: Tx, caller: Caller, invoice_id: int, reason: str) -> InvoiceOut | Replayed:
        """Void an invoice nothing was paid or credited of (after a payment, a credit note corrects it; after a credit
        note, another credit note for the rest: a void reverses everything the invoice booked, and would count the
        credit twice). Its reminders end; its number stays used (a void invoice keeps its number, so the sequence
        has no gap)."""
        scope = f"POST /invoices/{invoice_id}/void"
        return await _once(tx, caller, scope, {"reason": reason}, 200, self._void, tx, caller, invoice_id, reason)

    async def _void(self, tx: Tx, caller: Caller, invoice_id: int, reason: str) -> InvoiceOut:
        invoice = await visible_invoice(tx, self.authorizer, caller.user, invoice_id, lock=True)
        if invoice.status == issuing.PENDING_APPROVAL:
            raise InvalidState("the invoice is waiting on approval: withdraw it first")
        if invoice.status in (issuing.VOID, issuing.PAID) or invoice.amount_paid > 0 or invoice.amount_credited > 0:
            raise InvalidState(
                f"only an invoice without payments or credit notes can be voided; this one is {invoice.status} "
                f"(paid {in_minor_units(invoice.amount_paid, invoice.currency)}, credited "
                f"{in_minor_units(invoice.amount_credited, invoice.currency)}): issue a credit note for what is due "
                "instead",
                status=invoice.status,
            )
        now = datetime.now(UTC)
        fields = {"status": issuing.VOID, "voided_at": now, "void_reason": reason}
        await invoices.update_invoice(tx.sql, invoice.id, fields, bump=True)
        changes = {"status": [invoice.status, issuing.VOID], "reason": reason, "number": invoice.number}
        await record(tx.sql, caller.audit, "invoice.voided", RESOURCE, invoice.id, changes)
        await tx.commit()
        if invoice.number is not None:
            await self.tell_closed(invoice.id, "void")
        return await get_invoice(tx, self.authorizer, caller.user, invoice_id)

    async def tell_closed(self, invoice_id: int, why: str) -> None:
        """Wake the invoice's workflow: nothing is left to remind of. Best effort: the workflow reads the invoice
        before each reminder and ends when it finds it closed."""
        try:
            await self.approvals.lifecycle.engine.signal(invoice_workflow_id(invoice_id), CLOSED_SIGNAL, why)
        except (WorkflowGone, EngineUnavailable) as error:
            log.info("invoice %s's workflow not told it closed (%s): it finds out at its next reminder", invoice_id,
                     error)  # fmt: skip
