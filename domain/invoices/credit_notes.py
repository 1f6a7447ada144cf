"""Credit notes: the correction of a sent invoice, which is never edited.

A credit note lowers what is due on an open invoice (`sent`, `partially_paid`) by an amount greater than 0, in the
invoice's currency and at most its balance due (domain/invoices/settlement.py), for a stated reason. It is numbered
`CN-YYYY-NNNN` from its own gap-free series (domain/invoices/numbering.py), the year of its date (today, UTC), in
the transaction that writes it. A credit note that leaves nothing due settles the invoice (`paid`, and its workflow
is told after the commit, so its reminders end). It books no revenue: revenue is recognized per payment (cash
basis), and no cash moved. An Idempotency-Key makes a repeated request answer the first answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.db import Tx
from domain.approvals.commands import Caller
from domain.audit.service import record
from domain.idempotency.once import Replayed, once
from domain.invoices import numbering
from domain.invoices import repository as invoices
from domain.invoices import settlement_repository as settlements
from domain.invoices.commands import InvoiceCommands
from domain.invoices.schemas import CreditNoteIn, CreditNoteOut, CreditNotePage
from domain.invoices.service import RESOURCE, visible_invoice
from domain.invoices.settlement import Outcome, check_amount, check_open, settle, tell_when_paid
from domain.invoices.settlement_repository import CreditNoteRow
from domain.models import User
from domain.money import in_minor_units, plain_str


def credit_note_out(note: CreditNoteRow, currency: str) -> CreditNoteOut:
    return CreditNoteOut(id=note.id, invoice_id=note.invoice_id, number=note.number,
                         amount=in_minor_units(note.amount, currency), currency=currency, reason=note.reason,
                         created_by_id=note.created_by_id, created_at=note.created_at)  # fmt: skip


class CreditNoteCommands:
    def __init__(self, invoices: InvoiceCommands) -> None:
        self.invoices = invoices
        self.authorizer = invoices.authorizer

    async def issue(self, tx: Tx, caller: Caller, invoice_id: int, body: CreditNoteIn) -> CreditNoteOut | Replayed:
        """Issue a credit note (201). 409 when the invoice is not sent or already settled; 422 for an amount that
        does not fit the currency or exceeds the balance due."""
        scope = f"POST /invoices/{invoice_id}/credit-notes"
        outcome = Outcome()
        answer = await once(tx, caller.user.id, caller.key, scope, body.model_dump(mode="json"), 201, self._issue,
                            tx, caller, invoice_id, body, outcome)  # fmt: skip
        await tell_when_paid(tx, self.invoices, invoice_id, outcome)
        return answer

    async def _issue(
        self, tx: Tx, caller: Caller, invoice_id: int, body: CreditNoteIn, outcome: Outcome
    ) -> CreditNoteOut:
        invoice = await visible_invoice(tx, self.authorizer, caller.user, invoice_id, lock=True)
        check_open(invoice, "a credit note")
        check_amount(invoice, body.amount, "a credit note")
        now = datetime.now(UTC)
        number = await numbering.next_number(tx.sql, numbering.CREDIT_NOTE, now.year)
        note = await settlements.insert_credit_note(tx.sql, {
            "invoice_id": invoice.id, "number": number, "amount": body.amount, "reason": body.reason,
            "created_by_id": caller.user.id,
        })  # fmt: skip
        settled = settle(invoice, now, credited=body.amount)
        updated = await invoices.update_invoice(tx.sql, invoice.id, settled.fields, bump=True)
        await record(tx.sql, caller.audit, "invoice.credited", RESOURCE, invoice.id, {
            "credit_note_id": note.id, "number": number, "amount": plain_str(body.amount),
            "currency": invoice.currency, "reason": body.reason, "status": [invoice.status, updated.status],
            "balance_due": plain_str(in_minor_units(updated.balance_due, invoice.currency)),
        })  # fmt: skip
        outcome.paid = settled.paid
        return credit_note_out(note, invoice.currency)

    async def page(self, tx: Tx, viewer: User, invoice_id: int, limit: int, offset: int) -> CreditNotePage:
        """An invoice's credit notes, oldest first (404 for an invoice the viewer may not see)."""
        invoice = await visible_invoice(tx, self.authorizer, viewer, invoice_id)
        rows, total = await settlements.credit_notes_page(tx.sql, invoice.id, limit, offset)
        items = [credit_note_out(row, invoice.currency) for row in rows]
        return CreditNotePage(items=items, total=total, limit=limit, offset=offset)
