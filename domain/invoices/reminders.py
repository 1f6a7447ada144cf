"""One reminder step of a sent invoice, in one transaction under the invoice's lock: the step's row, its late fee (a
line of its own, at most once per invoice and step), its email, and their audit rows.

Idempotent: the step's row (`invoice_reminders`, keyed by invoice and step) is what a retry finds, and the partial
unique index on late-fee lines is the backstop, so a step retried after its commit changes nothing and writes no
second email. An invoice no longer open (paid, void) gets no reminder: the workflow is told to end.

A late fee is not taxed (tax rate 0): it is compensation for late payment, not a supply (in the EU, outside the
scope of VAT). `percent` is of the balance due when the step runs, rounded half-up to the currency's minor units, as
a `fixed` fee is. The PDF the customer received is not re-rendered: the reminder's email tells the fee and the new
balance.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from core.sql import Sql
from domain.audit.service import AuditContext, record
from domain.invoices import customer_mail, issuing
from domain.invoices import repository as invoices
from domain.invoices.document import Seller
from domain.invoices.repository import InvoiceRow, LineRow, NewLine
from domain.invoices.totals import HUNDRED
from domain.money import in_minor_units, plain_str
from workflows.contracts import LateFee, ReminderStep, RemindOutcome


def late_fee_amount(fee: LateFee, invoice: InvoiceRow) -> Decimal:
    """The fee in the invoice's currency: a fixed amount, or a percentage of the balance due now."""
    base = fee.amount if fee.kind == "fixed" else invoice.balance_due * fee.amount / HUNDRED
    return in_minor_units(base, invoice.currency)


def _fee_description(fee: LateFee, step: int, invoice: InvoiceRow) -> str:
    if fee.kind == "percent":
        balance = plain_str(in_minor_units(invoice.balance_due, invoice.currency))
        return f"Late fee (reminder {step}): {plain_str(fee.amount.normalize())}% of {balance} {invoice.currency}"
    return f"Late fee (reminder {step})"


async def _add_late_fee(
    sql: Sql, invoice: InvoiceRow, step: int, fee: LateFee, amount: Decimal
) -> tuple[InvoiceRow, LineRow]:
    lines = (await invoices.lines_of(sql, [invoice.id])).get(invoice.id, [])
    position = max((line.position for line in lines), default=0) + 1
    new = NewLine(position, "late_fee", _fee_description(fee, step, invoice), Decimal(1), amount, Decimal(0), amount,
                  Decimal(0), reminder_step=step)  # fmt: skip
    [line] = await invoices.insert_lines(sql, invoice.id, [new])
    total = invoice.total + amount
    fields: dict[str, object] = {"subtotal": invoice.subtotal + amount, "total": total}
    if invoice.fx_rate is not None and invoice.base_currency is not None:
        # base_total stays the total at the rate locked at submit.
        fields["base_total"] = in_minor_units(total * invoice.fx_rate, invoice.base_currency)
    return await invoices.update_invoice(sql, invoice.id, fields), line


async def remind(
    sql: Sql, invoice_id: int, step: int, reminder: ReminderStep, now: datetime, seller: Seller, context: AuditContext
) -> RemindOutcome:
    """Run reminder `step` (1-based in the invoice's pinned policy) at `now` (the workflow's clock), in the caller's
    transaction. Its email is sent after the commit (customer_mail.deliver_unsent)."""
    invoice = await invoices.invoice(sql, invoice_id, lock=True)
    if invoice.status not in issuing.OPEN:
        return RemindOutcome(status=invoice.status, ended=True)
    if await customer_mail.reminder(sql, invoice.id, step) is not None:
        return RemindOutcome(status=invoice.status)  # an earlier attempt ran this step and committed
    before = invoice
    fee_line: LineRow | None = None
    fee = reminder.late_fee
    amount = late_fee_amount(fee, invoice) if fee is not None else Decimal(0)
    if fee is not None and amount > 0:
        invoice, fee_line = await _add_late_fee(sql, invoice, step, fee, amount)
    await customer_mail.add_reminder(sql, invoice.id, step, reminder.template, fee_line.id if fee_line else None)
    customer = await invoices.customer(sql, invoice.customer_id)
    key = customer_mail.reminder_key(invoice.id, step)
    job = customer_mail.email_job(key, reminder.template, invoice, customer, seller, now.date(),
                                  amount if fee_line else None)  # fmt: skip
    await customer_mail.add_email(sql, invoice.id, job)
    currency = invoice.currency
    if fee is not None and fee_line is not None:
        await record(sql, context, "invoice.late_fee_applied", "invoice", invoice.id,
                     {"step": step, "kind": fee.kind, "rule": plain_str(fee.amount), "fee": plain_str(amount),
                      "line_id": fee_line.id, "currency": currency,
                      "total": [plain_str(in_minor_units(before.total, currency)),
                                plain_str(in_minor_units(invoice.total, currency))]})  # fmt: skip
    await record(sql, context, "invoice.reminded", "invoice", invoice.id,
                 {"step": step, "offset_days": reminder.offset_days, "template": reminder.template,
                  "at": now.isoformat(), "email": key, "to": customer.billing_email,
                  "balance_due": plain_str(in_minor_units(invoice.balance_due, currency))})  # fmt: skip
    return RemindOutcome(status=invoice.status, late_fee=amount if fee_line else None)
