"""What a payment or a credit note does to an invoice, written once for both.

Only an open invoice (`sent`, `partially_paid`) takes one: a draft or an invoice waiting on approval has not gone out,
a paid one has nothing left due, a void one is void (409). The amount is greater than 0, in the invoice currency's
minor units, and at most the balance due (422: an overpayment or an over-credit names the balance). Once nothing is
left due the invoice is `paid` (a credit note that settles the balance settles it too); a payment short of that
makes it `partially_paid`; a credit note short of it leaves the status as it was.

The caller holds the invoice's row lock: concurrent payments and credit notes queue on it, and each checks the
balance its predecessors left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.db import Tx
from domain.errors import InvalidState, ValidationFailed
from domain.invoices import issuing
from domain.invoices.commands import InvoiceCommands
from domain.invoices.repository import InvoiceRow
from domain.money import fits, in_minor_units, minor_units, plain_str


def check_open(invoice: InvoiceRow, what: str) -> None:
    """409 unless the invoice is sent and not settled. `what`: "a payment", "a credit note"."""
    if invoice.status not in issuing.OPEN:
        raise InvalidState(
            f"only a sent invoice that is not fully paid takes {what}; this one is {invoice.status}",
            status=invoice.status,
        )


def check_amount(invoice: InvoiceRow, amount: Decimal, what: str) -> None:
    """422 unless 0 < amount <= the balance due, in the invoice currency's minor units."""
    currency = invoice.currency
    if amount <= 0:
        raise ValidationFailed(f"{what} must be greater than 0", field="amount")
    if not fits(amount, currency):
        units = minor_units(currency)
        raise ValidationFailed(
            f"{currency} amounts have {units} decimal place{'' if units == 1 else 's'}; {plain_str(amount)} has more",
            field="amount",
            currency=currency,
            minor_units=units,
        )
    balance = in_minor_units(invoice.balance_due, currency)
    if amount > balance:
        raise ValidationFailed(
            f"{what} of {plain_str(amount)} {currency} is more than the balance due of {plain_str(balance)} "
            f"{currency} on invoice {invoice.number}",
            field="amount",
            balance_due=plain_str(balance),
            currency=currency,
        )


@dataclass(frozen=True)
class Settled:
    """The invoice's columns after an amount paid or credited, and its new status."""

    fields: dict[str, Any]
    status: str

    @property
    def paid(self) -> bool:
        return self.status == issuing.PAID


def settle(
    invoice: InvoiceRow, now: datetime, *, paid: Decimal = Decimal(0), credited: Decimal = Decimal(0)
) -> Settled:
    """`paid` received or `credited` (already checked against the balance): what the invoice becomes."""
    amount_paid = invoice.amount_paid + paid
    amount_credited = invoice.amount_credited + credited
    fields: dict[str, Any] = {"amount_paid": amount_paid, "amount_credited": amount_credited}
    if invoice.total - amount_paid - amount_credited <= 0:
        status = issuing.PAID
        fields["paid_at"] = now
    elif paid > 0:
        status = issuing.PARTIALLY_PAID
    else:
        status = invoice.status
    fields["status"] = status
    return Settled(fields, status)


@dataclass
class Outcome:
    """Filled in by a command that runs under an Idempotency-Key (domain/idempotency/once.py): whether it settled the
    invoice. A replayed answer leaves it empty: the first request told the workflow."""

    paid: bool = False


async def tell_when_paid(tx: Tx, commands: InvoiceCommands, invoice_id: int, outcome: Outcome) -> None:
    """After a payment or credit note that settled the invoice: commit (the change and the remembered answer are
    durable before the workflow hears of it), then tell the invoice's workflow, so its reminders end."""
    if outcome.paid:
        await tx.commit()
        await commands.tell_closed(invoice_id, issuing.PAID)
