"""`/invoices`: drafts, approval before sending, and what a sent invoice shows (its status, overdue, balance).

Accountants (and admins) create, change and submit invoices; managers read their team's. A draft is changed with
If-Match; a submitted invoice is decided through `/approvals/{approval_request_id}/...` like any request, and once
approved it is numbered and sent by its workflow (`invoice-<id>`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.idempotency import IdempotencyKey, replayed
from api.listing import listing_of
from domain.approvals.commands import Caller
from domain.dates import BusinessDate
from domain.invoices import service
from domain.invoices.schemas import InvoiceCreate, InvoiceOut, InvoicePage, InvoiceStatus, InvoiceUpdate, VoidRequest
from domain.invoices.service import InvoiceFilters
from domain.pagination import Cursor

router = APIRouter(prefix="/invoices", tags=["invoices"])

Read = Annotated[Grant, Depends(Authorize("invoice", "read"))]
Create = Annotated[Grant, Depends(Authorize("invoice", "create"))]
Update = Annotated[Grant, Depends(Authorize("invoice", "update"))]
Submit = Annotated[Grant, Depends(Authorize("invoice", "submit"))]
Void = Annotated[Grant, Depends(Authorize("invoice", "void"))]
InvoiceId = RowId
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the invoice's version (its ETag)")]
Day = Annotated[BusinessDate | None, Query()]


def _tagged(response: Response, invoice: InvoiceOut) -> InvoiceOut:
    response.headers["ETag"] = f'"{invoice.version}"'
    return invoice


def _answer(answer: Any, response: Response) -> Any:
    sent = replayed(answer)
    return _tagged(response, sent) if isinstance(sent, InvoiceOut) else sent


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a draft invoice")
async def create_invoice(body: InvoiceCreate, response: Response, tx: TxDep, grant: Create) -> InvoiceOut:
    """Each line's net (quantity x unit price) and tax are rounded to the currency's minor units, then summed. The
    due date defaults to the issue date plus the customer's payment terms."""
    return _tagged(response, await service.create_invoice(tx, grant.user, body, grant.audit))


@router.get("", summary="The invoices you may see")
@read_only
async def list_invoices(
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(InvoiceOut))],
    status: InvoiceStatus | None = None,
    customer_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    overdue: bool | None = None,
    date_from: Day = None,
    date_to: Day = None,
    templates: Annotated[bool, Query(description="the templates of recurring invoices instead")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> InvoicePage:
    """`overdue` is computed from the due date (sent, not fully paid, past due); the dates filter the issue date."""
    filters = InvoiceFilters(status, customer_id, overdue, date_from, date_to, templates, limit, offset)
    return await service.list_invoices(tx, services.authorizer, grant.user, filters, cursor)


@router.get("/{invoice_id}", summary="One invoice")
@read_only
async def get_invoice(
    invoice_id: InvoiceId, response: Response, tx: TxDep, services: ServicesDep, grant: Read
) -> InvoiceOut:
    return _tagged(response, await service.get_invoice(tx, services.authorizer, grant.user, invoice_id))


@router.patch("/{invoice_id}", summary="Change a draft invoice")
async def update_invoice(
    invoice_id: InvoiceId,
    body: InvoiceUpdate,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Update,
    if_match: IfMatch = None,
) -> InvoiceOut:
    """Only a draft (409 otherwise: a sent invoice is never edited). If-Match: 428 without it, 412 when stale."""
    updated = await service.update_invoice(tx, services.authorizer, grant.user, invoice_id, body, if_match, grant.audit)
    return _tagged(response, updated)


@router.delete("/{invoice_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a draft invoice")
async def delete_invoice(invoice_id: InvoiceId, tx: TxDep, services: ServicesDep, grant: Update) -> None:
    """Only a draft never submitted (409 otherwise: a sent invoice is never deleted; void or credit it)."""
    await service.delete_invoice(tx, services.authorizer, grant.user, invoice_id, grant.audit)


@router.post("/{invoice_id}/submit", summary="Submit an invoice for approval before it is sent")
async def submit_invoice(
    invoice_id: InvoiceId,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Submit,
    key: IdempotencyKey = None,
) -> Any:
    """Starts the same durable approval as an expense (its total in the base currency picks the chain; nobody
    decides their own). Returned for changes, the invoice is a draft again: change it and submit it once more.
    503 when the workflow engine is away (the invoice stays a draft)."""
    answer = await services.invoices.submit(tx, Caller(grant.user, grant.audit, key), invoice_id)
    return _answer(answer, response)


@router.post("/{invoice_id}/withdraw", summary="Withdraw an invoice from approval")
async def withdraw_invoice(
    invoice_id: InvoiceId,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Submit,
    key: IdempotencyKey = None,
) -> Any:
    answer = await services.invoices.withdraw(tx, Caller(grant.user, grant.audit, key), invoice_id)
    return _answer(answer, response)


@router.post("/{invoice_id}/void", summary="Void an invoice nothing has been paid of")
async def void_invoice(
    invoice_id: InvoiceId,
    body: VoidRequest,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Void,
    key: IdempotencyKey = None,
) -> Any:
    """Its reminders end and its number stays used. After a payment, issue a credit note instead (409)."""
    answer = await services.invoices.void(tx, Caller(grant.user, grant.audit, key), invoice_id, body.reason)
    return _answer(answer, response)
