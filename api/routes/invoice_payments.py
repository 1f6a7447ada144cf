"""`/invoices/{id}/payments` and `/invoices/{id}/credit-notes`: what settles a sent invoice.

Accountants (and admins) record payments and issue credit notes; whoever may see the invoice reads them. Each
payment books an approved revenue entry (revenue is recognized per payment: cash basis); a credit note lowers what is
due and books nothing. Both take an Idempotency-Key: a repeat answers the first answer, never a second effect.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.idempotency import IdempotencyKey, replayed
from api.listing import listing_of
from domain.approvals.commands import Caller
from domain.invoices.schemas import CreditNoteIn, CreditNoteOut, CreditNotePage, PaymentIn, PaymentOut, PaymentPage
from domain.pagination import Cursor

router = APIRouter(prefix="/invoices", tags=["invoices"])

Read = Annotated[Grant, Depends(Authorize("invoice", "read"))]
Pay = Annotated[Grant, Depends(Authorize("invoice", "pay"))]
Credit = Annotated[Grant, Depends(Authorize("invoice", "credit"))]
InvoiceId = RowId
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


@router.post(
    "/{invoice_id}/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    summary="Record a payment received on a sent invoice",
)
async def record_payment(
    invoice_id: InvoiceId, body: PaymentIn, tx: TxDep, services: ServicesDep, grant: Pay, key: IdempotencyKey = None
) -> Any:
    """The invoice becomes `partially_paid`, or `paid` when nothing is left due (its reminders end). 409 unless it
    is sent and not settled; 422 for an amount over the balance due or with more places than the currency. In
    another currency than the base, the payment's rate is `fx_rate` when sent, else the rate stored for `paid_on`;
    the difference to the invoice's locked rate is the realized FX gain or loss. Each payment books an approved
    revenue entry at the invoice's locked rate (cash basis)."""
    answer = await services.invoice_payments.record(tx, Caller(grant.user, grant.audit, key), invoice_id, body)
    return replayed(answer)


@router.get("/{invoice_id}/payments", summary="An invoice's payments")
@read_only
async def list_payments(
    invoice_id: InvoiceId,
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(PaymentOut))],
    limit: Limit = 50,
    offset: Offset = 0,
) -> PaymentPage:
    return await services.invoice_payments.page(tx, grant.user, invoice_id, limit, offset, cursor)


@router.post(
    "/{invoice_id}/credit-notes",
    status_code=status.HTTP_201_CREATED,
    response_model=CreditNoteOut,
    summary="Issue a credit note on a sent invoice",
)
async def issue_credit_note(
    invoice_id: InvoiceId,
    body: CreditNoteIn,
    tx: TxDep,
    services: ServicesDep,
    grant: Credit,
    key: IdempotencyKey = None,
) -> Any:
    """Numbered CN-YYYY-NNNN (gap-free per year); lowers the balance due, and settles the invoice (`paid`) when
    nothing is left. 409 unless the invoice is sent and not settled; 422 for more than the balance due."""
    answer = await services.credit_notes.issue(tx, Caller(grant.user, grant.audit, key), invoice_id, body)
    return replayed(answer)


@router.get("/{invoice_id}/credit-notes", summary="An invoice's credit notes")
@read_only
async def list_credit_notes(
    invoice_id: InvoiceId,
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(CreditNoteOut))],
    limit: Limit = 50,
    offset: Offset = 0,
) -> CreditNotePage:
    return await services.credit_notes.page(tx, grant.user, invoice_id, limit, offset, cursor)
