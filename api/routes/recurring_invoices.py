"""`/recurring-invoices`: a template invoice issued on a schedule (weekly, monthly, quarterly or yearly).

Accountants (and admins) create, submit and cancel them; managers read their team's. The template is approved once
through `/approvals/{approval_request_id}/...` like any invoice; from then on a Temporal Schedule issues an invoice
every period, numbered and sent at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.idempotency import IdempotencyKey, replayed
from api.listing import listing_of
from domain.approvals.commands import Caller
from domain.invoices import recurring
from domain.invoices.recurring_schemas import (
    RecurringInvoiceCreate,
    RecurringInvoiceOut,
    RecurringInvoicePage,
    RecurringStatus,
)
from domain.pagination import Cursor

router = APIRouter(prefix="/recurring-invoices", tags=["invoices"])

Read = Annotated[Grant, Depends(Authorize("invoice", "read"))]
Create = Annotated[Grant, Depends(Authorize("invoice", "create"))]
Submit = Annotated[Grant, Depends(Authorize("invoice", "submit"))]
Cancel = Annotated[Grant, Depends(Authorize("invoice", "void"))]
RecurringId = RowId


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a recurring invoice (a draft template)")
async def create_recurring_invoice(body: RecurringInvoiceCreate, tx: TxDep, grant: Create) -> RecurringInvoiceOut:
    """The template is a draft invoice (its lines priced like any invoice's); submit it to have it approved."""
    return await recurring.create(tx, grant.user, body, grant.audit)


@router.get("", summary="The recurring invoices you may see")
@read_only
async def list_recurring_invoices(
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(RecurringInvoiceOut))],
    status: RecurringStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> RecurringInvoicePage:
    return await recurring.list_recurring(tx, services.authorizer, grant.user, status, limit, offset, cursor)


@router.get("/{recurring_id}", summary="One recurring invoice")
@read_only
async def get_recurring_invoice(
    recurring_id: RecurringId, tx: TxDep, services: ServicesDep, grant: Read
) -> RecurringInvoiceOut:
    """An active one lists its schedule's next run times (when the workflow engine can tell)."""
    return await recurring.get(tx, services.authorizer, services.engine, grant.user, recurring_id)


@router.post("/{recurring_id}/submit", summary="Submit the template for approval")
async def submit_recurring_invoice(
    recurring_id: RecurringId, tx: TxDep, services: ServicesDep, grant: Submit, key: IdempotencyKey = None
) -> Any:
    """The template goes through the invoice approval (the chain by its total in the base currency; nobody decides
    their own). Approved, the recurring invoice is active and its schedule is created. 503 when the workflow engine
    is away (it stays a draft)."""
    answer = await recurring.submit(tx, services.invoices, Caller(grant.user, grant.audit, key), recurring_id)
    return replayed(answer)


@router.post("/{recurring_id}/cancel", summary="Cancel a recurring invoice")
async def cancel_recurring_invoice(
    recurring_id: RecurringId, tx: TxDep, services: ServicesDep, grant: Cancel
) -> RecurringInvoiceOut:
    """No more runs; its schedule is deleted. Invoices already issued stay (void or credit them one by one). 409
    while the template waits on approval (withdraw it first) and once ended or cancelled."""
    return await recurring.cancel(tx, services.authorizer, services.engine, grant.user, recurring_id, grant.audit)
