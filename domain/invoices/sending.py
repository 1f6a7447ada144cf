"""An approved invoice goes out: `approved -> sent` with its stored PDF and its email to the customer, in one
transaction (the invoice workflow's send activity renders and stores the PDF first, and delivers the email after the
commit: activities/invoices.py)."""

from __future__ import annotations

from datetime import datetime

from core.sql import Sql
from domain.audit.service import AuditContext, record
from domain.invoices import customer_mail, issuing
from domain.invoices import repository as invoices
from domain.invoices.document import Seller
from domain.invoices.repository import InvoiceRow


async def record_sent(
    sql: Sql, invoice_id: int, pdf_key: str, now: datetime, seller: Seller, context: AuditContext
) -> InvoiceRow | None:
    """Mark the invoice sent at `now` with the PDF at `pdf_key`, and write its email (to send after the commit).
    None when it is no longer approved: an earlier attempt sent it, or it was voided meanwhile."""
    invoice = await invoices.invoice(sql, invoice_id, lock=True)
    if invoice.status != issuing.APPROVED or invoice.is_template:
        return None
    customer = await invoices.customer(sql, invoice.customer_id)
    sent = await invoices.update_invoice(sql, invoice.id, {"status": issuing.SENT, "sent_at": now, "pdf_key": pdf_key})
    key = customer_mail.invoice_key(invoice.id)
    job = customer_mail.email_job(key, customer_mail.INVOICE_TEMPLATE, sent, customer, seller, now.date())
    await customer_mail.add_email(sql, invoice.id, job)
    await record(sql, context, "invoice.sent", "invoice", invoice.id,
                 {"status": [issuing.APPROVED, issuing.SENT], "number": invoice.number, "pdf_key": pdf_key,
                  "to": customer.billing_email, "email": key, "at": now.isoformat()})  # fmt: skip
    return sent
