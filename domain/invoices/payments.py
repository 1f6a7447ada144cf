"""Payments received on a sent invoice.

A payment is recorded in one transaction: the invoice's row lock (concurrent payments queue on it, so together they
never pay more than is due), the checks (domain/invoices/settlement.py), the rate, the revenue it books, the payment,
the invoice's new amount paid and status, and the audit rows. Once the invoice is paid its workflow is told, after
the commit, so its reminders end. An Idempotency-Key makes a repeated request answer the first answer, never record
a second payment.

Rates. The invoice's total was locked in the base currency at submit (`invoices.fx_rate`). A payment's own rate is 1
for an invoice in the base currency, else the rate the caller sends (what the bank converted at: source `payment`),
else the rate stored for the payment date (domain/fx/rates.py: source `ecb` or `manual`). `base_amount` is the
payment at its own rate, `booked_base` the same amount at the invoice's locked rate, and their difference the
realized FX gain (positive) or loss (negative), each rounded once to the base currency's minor units.

Revenue is recognized per payment (cash basis): each payment books an approved revenue entry of its amount, in the
invoice's currency, at the invoice's locked rate (`booked_base`), dated the payment date, owned by the invoice's
owner, from the customer, in the INVOICE_REVENUE_CATEGORY category. The entries table's triggers carry it into the
dashboard's totals and the reports read it like any approved revenue; the FX difference stays on the payment (it is
not revenue). A credit note books nothing: no cash moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext

from core.db import Tx
from core.sql import Sql
from domain.approvals.commands import Caller
from domain.audit.service import record
from domain.entries import repository as entries
from domain.entries.repository import NewEntry
from domain.errors import InvalidState, ValidationFailed
from domain.fx import rates as fx_rates
from domain.fx.rates import Locked, Rate
from domain.idempotency.once import Replayed, once
from domain.invoices import repository as invoices
from domain.invoices import settlement_repository as settlements
from domain.invoices.commands import InvoiceCommands
from domain.invoices.repository import CustomerRow, InvoiceRow
from domain.invoices.schemas import PaymentIn, PaymentOut, PaymentPage
from domain.invoices.service import MAX_TOTAL, RESOURCE, visible_invoice
from domain.invoices.settlement import Outcome, check_amount, check_open, settle, tell_when_paid
from domain.invoices.settlement_repository import PaymentRow
from domain.models import EntryKind, EntryStatus, User
from domain.models.rows import EntryRow
from domain.money import in_minor_units, plain_str
from domain.pagination import Cursor, Pager

PAYMENT_RATE = "payment"  # the rate source of a rate the caller sent with the payment


@dataclass(frozen=True)
class PaymentRate:
    """Units of the base currency for one unit of the invoice's, on the payment, and where it came from."""

    rate: Decimal
    source: str
    described: dict[str, object]


def payment_out(payment: PaymentRow, currency: str, base_currency: str) -> PaymentOut:
    return PaymentOut(
        id=payment.id, invoice_id=payment.invoice_id, amount=in_minor_units(payment.amount, currency),
        currency=currency, paid_on=payment.paid_on, reference=payment.reference, fx_rate=payment.fx_rate,
        rate_source=payment.rate_source, base_currency=base_currency,
        base_amount=in_minor_units(payment.base_amount, base_currency),
        booked_base=in_minor_units(payment.booked_base, base_currency),
        fx_difference=in_minor_units(payment.fx_difference, base_currency), entry_id=payment.entry_id,
        created_by_id=payment.created_by_id, created_at=payment.created_at,
    )  # fmt: skip


def _check_paid_on(paid_on: date, today: date) -> None:
    # Money is not received in the future; a day's grace for a payer whose day begins before UTC's.
    if paid_on > today + timedelta(days=1):
        raise ValidationFailed(f"paid_on {paid_on.isoformat()} is in the future", field="paid_on")


def _in_base(amount: Decimal, rate: Decimal, base: str) -> Decimal:
    """`amount` x `rate`, rounded once (half-up) to the base currency's minor units; 422 when it is out of bounds
    (a mistyped rate)."""
    with localcontext() as context:
        context.prec = 40  # 15 + 4 digits of amount times 16 + 12 of rate: exact before the one rounding
        converted = in_minor_units(amount * rate, base)
    if converted > MAX_TOTAL:
        raise ValidationFailed(f"the payment is {plain_str(converted)} {base} at that rate: check fx_rate",
                               field="fx_rate")  # fmt: skip
    return converted


class PaymentCommands:
    def __init__(self, invoices: InvoiceCommands) -> None:
        self.invoices = invoices
        self.authorizer = invoices.authorizer
        self.settings = invoices.approvals.settings

    async def record(self, tx: Tx, caller: Caller, invoice_id: int, body: PaymentIn) -> PaymentOut | Replayed:
        """Record a payment (201). 409 when the invoice is not sent or already settled; 422 for an amount that does
        not fit the currency or exceeds the balance due, or a missing rate. A paid invoice's workflow is told after
        the commit."""
        scope = f"POST /invoices/{invoice_id}/payments"
        outcome = Outcome()
        answer = await once(tx, caller.user.id, caller.key, scope, body.model_dump(mode="json"), 201, self._record,
                            tx, caller, invoice_id, body, outcome)  # fmt: skip
        await tell_when_paid(tx, self.invoices, invoice_id, outcome)
        return answer

    async def _record(self, tx: Tx, caller: Caller, invoice_id: int, body: PaymentIn, outcome: Outcome) -> PaymentOut:
        invoice = await visible_invoice(tx, self.authorizer, caller.user, invoice_id, lock=True)
        check_open(invoice, "a payment")
        check_amount(invoice, body.amount, "a payment")
        now = datetime.now(UTC)
        _check_paid_on(body.paid_on, now.date())
        base = self.settings.approvals.base_currency
        if invoice.fx_rate is None or invoice.base_currency != base:
            raise InvalidState("the invoice has no rate locked in the base currency", status=invoice.status)
        paid = await self.payment_rate(tx.sql, invoice, body, base)
        base_amount = _in_base(body.amount, paid.rate, base)
        booked_base = _in_base(body.amount, invoice.fx_rate, base)
        fx_difference = base_amount - booked_base  # realized: a gain when positive, a loss when negative
        customer = await invoices.customer(tx.sql, invoice.customer_id)
        entry = await self._book_revenue(tx.sql, invoice, customer, body, booked_base, now)
        payment = await settlements.insert_payment(tx.sql, {
            "invoice_id": invoice.id, "amount": body.amount, "paid_on": body.paid_on, "reference": body.reference,
            "fx_rate": paid.rate, "rate_source": paid.source, "base_amount": base_amount, "booked_base": booked_base,
            "fx_difference": fx_difference, "entry_id": entry.id, "created_by_id": caller.user.id,
        })  # fmt: skip
        settled = settle(invoice, now, paid=body.amount)
        updated = await invoices.update_invoice(tx.sql, invoice.id, settled.fields, bump=True)
        await record(tx.sql, caller.audit, "entry.booked", "entry", entry.id, _booked(entry, invoice, payment))
        await record(tx.sql, caller.audit, "invoice.payment_recorded", RESOURCE, invoice.id, {
            "payment_id": payment.id, "amount": plain_str(body.amount), "currency": invoice.currency,
            "paid_on": body.paid_on.isoformat(), "reference": body.reference, "base_currency": base,
            "fx": paid.described, "locked_rate": plain_str(invoice.fx_rate), "base_amount": plain_str(base_amount),
            "booked_base": plain_str(booked_base), "fx_difference": plain_str(fx_difference),
            "entry_id": entry.id, "status": [invoice.status, updated.status],
            "balance_due": plain_str(in_minor_units(updated.balance_due, invoice.currency)),
        })  # fmt: skip
        outcome.paid = settled.paid
        return payment_out(payment, invoice.currency, base)

    async def payment_rate(self, sql: Sql, invoice: InvoiceRow, body: PaymentIn, base: str) -> PaymentRate:
        """The payment's own rate: 1 in the base currency, else the caller's, else the one stored for `paid_on`
        (422, naming the currency and the date, when there is none)."""
        if invoice.currency == base:
            if body.fx_rate is not None and body.fx_rate != 1:
                raise ValidationFailed(f"the invoice is in the base currency {base}: its rate is 1; leave fx_rate out",
                                       field="fx_rate")  # fmt: skip
            return PaymentRate(Decimal(1), fx_rates.Source.BASE, fx_rates.same(base, body.paid_on).describe())
        if body.fx_rate is not None:
            return PaymentRate(body.fx_rate, PAYMENT_RATE, {"rate": plain_str(body.fx_rate), "source": PAYMENT_RATE})
        stale_days = self.settings.fx.max_stale_days
        stored = await fx_rates.rate_on(sql, invoice.currency, base, body.paid_on, stale_days)
        if stored is None:
            raise ValidationFailed(
                f"no exchange rate from {invoice.currency} to {base} dated {body.paid_on.isoformat()} or up to "
                f"{stale_days} days before: send the payment's fx_rate, or add the rate",
                field="fx_rate",
                reason="rate_missing",
                currency=invoice.currency,
                paid_on=body.paid_on.isoformat(),
            )
        return PaymentRate(stored.rate, stored.source, stored.describe())

    async def _book_revenue(
        self, sql: Sql, invoice: InvoiceRow, customer: CustomerRow, body: PaymentIn, booked_base: Decimal, now: datetime
    ) -> EntryRow:
        """The approved revenue entry of the payment, at the invoice's locked rate (the triggers on `entries` move
        the dashboard's totals as it turns approved)."""
        reference = f", reference {body.reference}" if body.reference else ""
        new = NewEntry(
            kind=EntryKind.REVENUE.value, owner_id=invoice.owner_id, amount=body.amount, currency=invoice.currency,
            category=self.settings.invoices.revenue_category,
            description=f"Payment of invoice {invoice.number}{reference}", entry_date=body.paid_on,
            source=customer.name, vendor=None,
        )  # fmt: skip
        entry = await entries.insert(sql, new)
        assert invoice.fx_rate is not None and invoice.base_currency is not None and invoice.rate_date is not None
        rate = Rate(invoice.currency, invoice.base_currency, invoice.fx_rate, invoice.rate_date,
                    invoice.rate_source or fx_rates.Source.BASE)  # fmt: skip
        await entries.relock(sql, entry.id, Locked(invoice.currency, body.amount, invoice.base_currency, rate,
                                                   booked_base))  # fmt: skip
        return await entries.set_status(sql, entry.id, EntryStatus.APPROVED, decided_at=now, submitted_at=now)

    async def page(
        self, tx: Tx, viewer: User, invoice_id: int, limit: int, offset: int, cursor: Cursor | None = None
    ) -> PaymentPage:
        """An invoice's payments, oldest first (404 for an invoice the viewer may not see)."""
        pager = Pager(limit, offset, cursor)
        keyset = settlements.PAYMENTS_KEYSET
        invoice = await visible_invoice(tx, self.authorizer, viewer, invoice_id)
        rows, total = await settlements.payments_page(tx.sql, invoice.id, pager.fetch, offset, pager.key(keyset))
        rows, next_cursor = pager.cut(keyset, rows, lambda row: (row.id,))
        base = invoice.base_currency or self.settings.approvals.base_currency
        items = [payment_out(row, invoice.currency, base) for row in rows]
        return PaymentPage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)


def _booked(entry: EntryRow, invoice: InvoiceRow, payment: PaymentRow) -> dict[str, object]:
    """The booked entry's audit row: what it holds and which payment booked it."""
    return {
        "kind": entry.kind, "status": entry.status, "amount": plain_str(entry.amount), "currency": entry.currency,
        "base_amount": plain_str(payment.booked_base), "base_currency": entry.base_currency,
        "fx_rate": plain_str(invoice.fx_rate) if invoice.fx_rate is not None else None, "category": entry.category,
        "source": entry.source, "entry_date": entry.entry_date.isoformat(), "invoice_id": invoice.id,
        "invoice_number": invoice.number, "payment_id": payment.id,
    }  # fmt: skip
