"""An invoice's status follows its approval request, in the transition's own transaction.

`pending` is `pending_approval`; sent back for changes, withdrawn or expired, the invoice is a draft again (edit it
and submit it once more); rejected, it is void (it never went out: nothing to credit). Approved, it is issued: it
takes the next number of its year (domain/invoices/numbering.py, gap-free) and its workflow is started through the
approval outbox (`invoice-<id>`: send it, then remind). A template invoice is approved and not issued: its
recurring invoice's runs are (domain/invoices/recurring.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from core.engine import UserMetadata
from core.sql import Sql
from domain.approvals import outbox
from domain.audit.service import AuditContext, record
from domain.fx.rates import Locked
from domain.invoices import numbering, recurring_lifecycle
from domain.invoices import repository as invoices
from domain.invoices.repository import InvoiceRow
from domain.models import RequestStatus
from domain.models.rows import RequestRow
from domain.money import money_str
from workflows.contracts import CUSTOMER_ID, INVOICE_NUMBER, InvoiceInput, invoice_workflow_id

INVOICE = "invoice"  # the approval request's subject_kind

DRAFT = "draft"
PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
SENT = "sent"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"
VOID = "void"
OPEN = (SENT, PARTIALLY_PAID)  # sent and not settled: what reminders, payments and credit notes apply to

_FOLLOWING = {
    RequestStatus.PENDING: PENDING_APPROVAL,
    RequestStatus.CHANGES_REQUESTED: DRAFT,
    RequestStatus.WITHDRAWN: DRAFT,
    RequestStatus.EXPIRED: DRAFT,
    RequestStatus.REJECTED: VOID,
}


def locked_rate_fields(fx: Locked) -> dict[str, Any]:
    return {
        "base_currency": fx.base_currency,
        "fx_rate": fx.rate.rate,
        "rate_date": fx.rate.day,
        "rate_source": fx.rate.source,
        "base_total": fx.base_amount,
    }


async def submitted(sql: Sql, invoice_id: int, request: RequestRow, fx: Locked, now: datetime) -> InvoiceRow:
    """The invoice waits on `request`, at the rate its submit locked."""
    fields = {"status": PENDING_APPROVAL, "approval_request_id": request.id, "submitted_at": now}
    return await invoices.update_invoice(sql, invoice_id, fields | locked_rate_fields(fx))


async def follow(sql: Sql, request: RequestRow, now: datetime) -> InvoiceRow | None:
    """The invoice of `request` moved to match the request's new status (None: not an invoice's request)."""
    if request.invoice_id is None:
        return None
    invoice = await invoices.invoice(sql, request.invoice_id, lock=True)
    if request.status == RequestStatus.APPROVED:
        return await issue(sql, invoice, request.id, now, AuditContext(workflow_id=request.workflow_id))
    status = _FOLLOWING.get(RequestStatus(request.status))
    if status is None or invoice.status == status:
        return invoice
    fields: dict[str, Any] = {"status": status}
    if status == VOID:
        fields |= {"voided_at": now, "void_reason": "rejected in approval"}
    moved = await invoices.update_invoice(sql, invoice.id, fields)
    if moved.is_template:
        await recurring_lifecycle.follow_template(sql, moved)
    return moved


async def issue(sql: Sql, invoice: InvoiceRow, request_id: int, now: datetime, context: AuditContext) -> InvoiceRow:
    """Approved: the next number of its year, and its workflow to start once this transaction commits (a template
    is only approved). `request_id`: the approval behind it (a recurring run's is its template's), which the
    outbox keeps the start with. Idempotent: an invoice issued already is left as it is."""
    if invoice.status not in (DRAFT, PENDING_APPROVAL):
        return invoice
    if invoice.is_template:  # its recurring invoice is active from now on, its runs are issued
        approved = await invoices.update_invoice(sql, invoice.id, {"status": APPROVED, "approved_at": now})
        await recurring_lifecycle.activate(sql, approved, request_id, context)
        return approved
    year = invoice.issue_date.year
    number = await numbering.next_number(sql, numbering.INVOICE, year)
    invoice = await invoices.update_invoice(
        sql, invoice.id, {"status": APPROVED, "approved_at": now, "number": number, "number_year": year}
    )
    workflow_id = invoice_workflow_id(invoice.id)
    attributes: dict[str, str | int] = {INVOICE_NUMBER.name: number, CUSTOMER_ID.name: str(invoice.customer_id)}
    customer = (await invoices.customer_names(sql, [invoice.customer_id])).get(invoice.customer_id, "")
    metadata = UserMetadata(
        summary=f"Invoice {number} to {customer or f'customer {invoice.customer_id}'}, "
        f"{money_str(invoice.total, invoice.currency)} {invoice.currency}, due {invoice.due_date.isoformat()}",
        details=f"Invoice #{invoice.id}: sent, then its customer reminded on the reminder policy's steps until it "
        f"is paid or void. In the app: /api/v1/invoices/{invoice.id}",
    )
    await outbox.add_workflow_start(
        sql, request_id, workflow_id, InvoiceInput(invoice_id=invoice.id, number=number), attributes, metadata
    )
    await record(sql, context, "invoice.issued", "invoice", invoice.id,
                 {"number": number, "status": [PENDING_APPROVAL, APPROVED], "workflow_id": workflow_id})  # fmt: skip
    return invoice


def overdue_days(invoice: InvoiceRow, today: date) -> int:
    """Days past the due date of a sent invoice not yet settled (0: not overdue). Computed, never stored."""
    if invoice.status not in OPEN or invoice.is_template:
        return 0
    return max((today - invoice.due_date).days, 0)
