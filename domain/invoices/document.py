"""An invoice as its customer receives it: the PDF (Jinja2 + WeasyPrint, `templates/invoices/invoice.html`), where it
is stored, and the figures the PDF and the emails about it print.

The PDF is rendered once, when the invoice is sent, and kept in object storage (`invoices/<year>/<number>.pdf`): it
is the document the customer received, so a later change (a late fee line, a renamed customer) never re-renders it;
a late fee is told in its reminder's email, a correction is a credit note.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from core.authz import Authorizer
from core.db import Tx
from core.settings import PROJECT_ROOT, InvoiceSettings
from core.storage import ObjectStorage
from domain.errors import InvalidState, NotFound
from domain.invoices.repository import CustomerRow, InvoiceRow, LineRow
from domain.invoices.service import visible_invoice
from domain.models import User
from domain.money import in_minor_units

TEMPLATES_DIR = PROJECT_ROOT / "templates" / "invoices"
CONTENT_TYPE = "application/pdf"


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices (INVOICE_SELLER_* and INVOICE_PAYMENT_DETAILS)."""

    name: str
    address: list[str]
    tax_id: str
    email: str
    payment_details: list[str]

    @classmethod
    def from_settings(cls, settings: InvoiceSettings) -> Seller:
        return cls(
            name=settings.seller_name,
            address=_lines(settings.seller_address),
            tax_id=settings.seller_tax_id,
            email=settings.seller_email,
            payment_details=_lines(settings.payment_details),
        )


def _lines(text: str) -> list[str]:
    # A value from the environment may carry its line breaks as the two characters "\n" (an unquoted .env line).
    return [line.strip() for line in text.replace("\\n", "\n").splitlines() if line.strip()]


def storage_key(invoice: InvoiceRow) -> str:
    """Where the invoice's PDF is kept: one key per number, so a retried render overwrites, never adds, a file."""
    assert invoice.number is not None and invoice.number_year is not None, "only a numbered invoice has a PDF"
    return f"invoices/{invoice.number_year}/{invoice.number}.pdf"


def filename(invoice: InvoiceRow) -> str:
    return f"{invoice.number}.pdf"


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount as printed: the currency's places, thousands grouped (1,508.50; JPY 150,000)."""
    return format(in_minor_units(amount, currency), ",f")


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _number_text(value: Decimal) -> str:
    """A quantity or a rate without trailing zeros (10, 2.5, 19)."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class TaxGroup:
    rate: str
    net: str
    tax: str


def tax_groups(lines: Sequence[LineRow], currency: str) -> list[TaxGroup]:
    """The net and tax of the lines per tax rate, by rate (what a tax authority asks an invoice to show)."""
    sums: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net, tax = sums.get(line.tax_rate.normalize(), (Decimal(0), Decimal(0)))
        sums[line.tax_rate.normalize()] = (net + line.net, tax + line.tax)
    return [
        TaxGroup(_number_text(rate), amount_text(net, currency), amount_text(tax, currency))
        for rate, (net, tax) in sorted(sums.items())
    ]


def document_context(
    invoice: InvoiceRow, lines: Sequence[LineRow], customer: CustomerRow, seller: Seller
) -> dict[str, Any]:
    currency = invoice.currency
    return {
        "seller": seller,
        "customer": {"name": customer.name, "address": _lines(customer.address), "email": customer.billing_email},
        "number": invoice.number,
        "issue_date": long_date(invoice.issue_date),
        "due_date": long_date(invoice.due_date),
        "currency": currency,
        "lines": [
            {
                "description": line.description,
                "quantity": _number_text(line.quantity),
                "unit_price": amount_text(line.unit_price, currency),
                "tax_rate": _number_text(line.tax_rate),
                "net": amount_text(line.net, currency),
                "tax": amount_text(line.tax, currency),
            }
            for line in lines
        ],
        "subtotal": amount_text(invoice.subtotal, currency),
        "taxes": tax_groups(lines, currency),
        "total": amount_text(invoice.total, currency),
        "notes": invoice.notes,
        "payment_reference": invoice.number,
    }


def invoice_html(context: dict[str, Any]) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))
    return environment.get_template("invoice.html").render(context)


def render_pdf(invoice: InvoiceRow, lines: Sequence[LineRow], customer: CustomerRow, seller: Seller) -> bytes:
    """The invoice's PDF (CPU-bound: run it in a thread)."""
    from weasyprint import HTML

    html = invoice_html(document_context(invoice, lines, customer, seller))
    pdf: bytes = HTML(string=html, base_url=str(TEMPLATES_DIR)).write_pdf()
    return pdf


@dataclass(frozen=True)
class StoredPdf:
    filename: str
    content: bytes


async def stored_pdf(
    tx: Tx, authorizer: Authorizer, viewer: User, invoice_id: int, storage: ObjectStorage
) -> StoredPdf:
    """The PDF the customer was sent, for a viewer who may see the invoice (else 404). InvalidState until it is
    rendered, which happens when the invoice is sent."""
    invoice = await visible_invoice(tx, authorizer, viewer, invoice_id)
    key = invoice.pdf_key
    if key is None:
        raise InvalidState(
            f"the invoice has no PDF yet: it is rendered when the invoice is sent, and it is {invoice.status}",
            status=invoice.status,
        )

    def read() -> bytes:
        with storage.open(key) as handle:
            return handle.read()

    try:
        content = await asyncio.to_thread(read)
    except FileNotFoundError as error:  # lost from the storage folder
        raise NotFound("the invoice's PDF is no longer in storage", id=invoice_id) from error
    return StoredPdf(filename(invoice), content)
