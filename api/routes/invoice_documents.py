"""`/invoices/{id}/pdf`: the PDF an invoice's customer was sent (rendered and stored when the invoice was sent)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.file_responses import file_responses
from domain.invoices import document

router = APIRouter(prefix="/invoices", tags=["invoices"])

Read = Annotated[Grant, Depends(Authorize("invoice", "read"))]
InvoiceId = RowId

_PDF_RESPONSES = file_responses((document.CONTENT_TYPE,), {
    404: "no such invoice, or not one you may see",
    409: "the invoice has not been sent yet: its PDF is rendered when it is",
}, description="the PDF")  # fmt: skip


@router.get("/{invoice_id}/pdf", summary="An invoice's PDF", response_class=Response, responses=_PDF_RESPONSES)
@read_only
async def invoice_pdf(invoice_id: InvoiceId, tx: TxDep, services: ServicesDep, grant: Read) -> Response:
    """The document as the customer received it (a late fee added later is a line of the invoice, not of this PDF)."""
    pdf = await document.stored_pdf(tx, services.authorizer, grant.user, invoice_id, services.storage)
    return Response(
        pdf.content,
        media_type=document.CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{pdf.filename}"'},
    )
