"""Credit notes: the correction of a sent invoice, which is never edited.

A credit note lowers what is due on an open invoice (`sent`, `partially_paid`) by an amount greater than 0, in the
invoice's currency and at most its balance due (domain/invoices/settlement.py), for a stated reason. It is numbered
`CN-YYYY-NNNN` from its own gap-free series (domain/invoices/numbering.py), the year of its date (today, UTC), in
the transaction that writes it. A credit note that leaves nothing due settles the invoice (`paid`, and its workflow
is told after the commit, so its reminders end). An Idempotency-Key makes a repeated request answer the first answer.

Its amount is split between net and tax in the invoice's proportions per tax rate (`split_by_tax_rate`, kept in
`credit_note_taxes`), so that it reverses its share of the invoice's tax, and an invoice credited in full reverses
exactly its tax: the ledger books it Dr revenue (the nets), Dr tax (the taxes), Cr receivable
(domain/ledger/journals.py). It books no revenue entry: those are per payment (cash basis,
domain/invoices/payments.py), and no cash moved. It is refused on a day of a closed month (the database's trigger,
migration 0015: 409 "the period YYYY-MM is closed").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Protocol

from core.db import Tx
from domain.approvals.commands import Caller
from domain.audit.service import record
from domain.idempotency.once import Replayed, once
from domain.invoices import numbering
from domain.invoices import repository as invoices
from domain.invoices import settlement_repository as settlements
from domain.invoices.commands import InvoiceCommands
from domain.invoices.schemas import CreditNoteIn, CreditNoteOut, CreditNotePage, CreditNoteTaxOut
from domain.invoices.service import RESOURCE, visible_invoice
from domain.invoices.settlement import Outcome, check_amount, check_open, settle, tell_when_paid
from domain.invoices.settlement_repository import CreditNoteRow, CreditNoteTaxRow
from domain.models import User
from domain.money import in_minor_units, plain_str, trimmed
from domain.pagination import Cursor, Pager


class TaxedLine(Protocol):
    """What the split reads of an invoice line (domain/invoices/repository.LineRow)."""

    @property
    def tax_rate(self) -> Decimal: ...
    @property
    def net(self) -> Decimal: ...
    @property
    def tax(self) -> Decimal: ...


@dataclass(frozen=True)
class TaxPart:
    """A credit note's amount at one tax rate (percent): its net and its tax, in the invoice's currency."""

    tax_rate: Decimal
    net: Decimal
    tax: Decimal


def split_by_tax_rate(
    amount: Decimal, lines: Iterable[TaxedLine], currency: str, credited: Iterable[TaxedLine] = ()
) -> tuple[TaxPart, ...]:
    """`amount` (0 < amount <= the lines' total less what is `credited`, in the currency's minor units) split between
    net and tax per tax rate in the invoice's proportions: those of what its `lines` (late fees too, untaxed) charged
    at each rate less what its earlier credit notes (their parts: `credited`) took there, which for the first credit
    note are the lines' own. By tax rate, none empty.

    Rounding, so the parts add up to `amount` exactly, none is negative and none passes what is left at its rate:
    first each tax rate's share of the amount, in proportion to that rate's gross (net + tax) left, rounded down to
    the minor unit; the remainder of that rounding (less than one minor unit per rate) goes to the largest share
    (the largest gross; on a tie the lower rate), so the result does not depend on the lines' order. Only when that
    share would pass its rate's gross (an amount within a few minor units of what is left, over three rates or more)
    does the rest go on to the next largest, and so on. Then each share is split into its tax, in the rate's
    proportion of tax to gross, rounded half-up, and its net, the rest. So the credit notes of an invoice never
    reverse more net or tax at a rate than it charged, and the one that credits it in full (alone or after others)
    takes exactly what is left: an invoice credited in full reverses exactly its tax."""
    charged: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net, tax = charged.get(line.tax_rate, (Decimal(0), Decimal(0)))
        charged[line.tax_rate] = (net + line.net, tax + line.tax)
    taken: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for part in credited:
        net, tax = taken.get(part.tax_rate, (Decimal(0), Decimal(0)))
        taken[part.tax_rate] = (net + part.net, tax + part.tax)
    zero = (Decimal(0), Decimal(0))
    left = {
        rate: (max(net - taken.get(rate, zero)[0], Decimal(0)), max(tax - taken.get(rate, zero)[1], Decimal(0)))
        for rate, (net, tax) in charged.items()
    }
    # What earlier credit notes took beyond a rate's charge (those from before the split, migration 0015, hold the
    # whole amount untaxed) cannot be told apart from the rest: the lines' own proportions then.
    basis = left if amount <= sum((net + tax for net, tax in left.values()), Decimal(0)) else charged
    net_at = {rate: net for rate, (net, tax) in basis.items() if net + tax > 0}
    tax_at = {rate: tax for rate, (net, tax) in basis.items() if net + tax > 0}
    gross_at = {rate: net_at[rate] + tax_at[rate] for rate in net_at}
    total = sum(gross_at.values(), Decimal(0))
    if not 0 < amount <= total:
        raise ValueError(f"a credit note of {amount} on lines totalling {total}")
    with localcontext() as context:
        context.prec = 60  # amounts of 19 digits multiplied: exact, then the quotient far finer than a minor unit
        shares = {
            rate: in_minor_units(amount * gross / total, currency, ROUND_DOWN) for rate, gross in gross_at.items()
        }
        remainder = amount - sum(shares.values(), Decimal(0))
        for rate in sorted(gross_at, key=lambda rate: (-gross_at[rate], rate)):
            added = min(remainder, gross_at[rate] - shares[rate])
            shares[rate] += added
            remainder -= added
        parts = []
        for rate in sorted(shares):
            share = shares[rate]
            if share == 0:
                continue
            tax = in_minor_units(share * tax_at[rate] / gross_at[rate], currency)
            parts.append(TaxPart(rate, share - tax, tax))
    return tuple(parts)


def credit_note_out(note: CreditNoteRow, parts: Iterable[CreditNoteTaxRow], currency: str) -> CreditNoteOut:
    by_rate = [CreditNoteTaxOut(tax_rate=trimmed(part.tax_rate), net=in_minor_units(part.net, currency),
                                tax=in_minor_units(part.tax, currency)) for part in parts]  # fmt: skip
    tax = sum((part.tax for part in by_rate), Decimal(0))
    amount = in_minor_units(note.amount, currency)
    return CreditNoteOut(id=note.id, invoice_id=note.invoice_id, number=note.number, amount=amount,
                         currency=currency, net=amount - tax, tax=in_minor_units(tax, currency), by_tax_rate=by_rate,
                         reason=note.reason, created_by_id=note.created_by_id,
                         created_at=note.created_at)  # fmt: skip


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
        lines = (await invoices.lines_of(tx.sql, [invoice.id])).get(invoice.id, [])
        credited = await settlements.credited_by_tax_rate(tx.sql, invoice.id)
        split = split_by_tax_rate(body.amount, lines, invoice.currency, credited)
        number = await numbering.next_number(tx.sql, numbering.CREDIT_NOTE, now.year)
        note = await settlements.insert_credit_note(tx.sql, {
            "invoice_id": invoice.id, "number": number, "amount": body.amount, "reason": body.reason,
            "created_by_id": caller.user.id,
        })  # fmt: skip
        parts = await settlements.insert_credit_note_taxes(
            tx.sql, note.id, [(part.tax_rate, part.net, part.tax) for part in split]
        )
        settled = settle(invoice, now, credited=body.amount)
        updated = await invoices.update_invoice(tx.sql, invoice.id, settled.fields, bump=True)
        await record(tx.sql, caller.audit, "invoice.credited", RESOURCE, invoice.id, {
            "credit_note_id": note.id, "number": number, "amount": plain_str(body.amount),
            "currency": invoice.currency, "reason": body.reason, "status": [invoice.status, updated.status],
            "balance_due": plain_str(in_minor_units(updated.balance_due, invoice.currency)),
            "by_tax_rate": [[plain_str(trimmed(p.tax_rate)), plain_str(p.net), plain_str(p.tax)] for p in split],
        })  # fmt: skip
        outcome.paid = settled.paid
        return credit_note_out(note, parts, invoice.currency)

    async def page(
        self, tx: Tx, viewer: User, invoice_id: int, limit: int, offset: int, cursor: Cursor | None = None
    ) -> CreditNotePage:
        """An invoice's credit notes, oldest first (404 for an invoice the viewer may not see)."""
        pager = Pager(limit, offset, cursor)
        keyset = settlements.CREDIT_NOTES_KEYSET
        invoice = await visible_invoice(tx, self.authorizer, viewer, invoice_id)
        rows, total = await settlements.credit_notes_page(tx.sql, invoice.id, pager.fetch, offset, pager.key(keyset))
        rows, next_cursor = pager.cut(keyset, rows, lambda row: (row.id,))
        parts = await settlements.credit_note_taxes_of(tx.sql, [row.id for row in rows])
        items = [credit_note_out(row, parts.get(row.id, []), invoice.currency) for row in rows]
        return CreditNotePage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)
