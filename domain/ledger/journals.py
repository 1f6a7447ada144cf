"""A month's balanced double-entry journals in the base currency: one per approved entry, invoice movement, payment
and credit note dated in it. Computed on the fly for an open month; frozen into `journals` / `journal_lines` when
it closes (domain/ledger/periods.py), which is what every export of that closing reads.

Every line is in the base currency, each amount rounded half-up to its minor units once, and carries the currency,
amount and rate it was converted from. Debits equal credits in every journal, exactly (the builders below make it so
and `Journal.balanced` checks it before anything is written).

- An approved expense: Dr its category's expense account, Cr payable, its base amount (locked at submit).
- An approved revenue entry that no invoice payment booked: Dr cash, Cr its source's revenue account. Cash, not
  receivable: a revenue entry records money received (a payment books its own, and is left out here: its revenue is
  the invoice's journal, its cash the payment's).
- An invoice, accrual basis, at the rate locked at its submit: its receivable moves in the month it is issued (by
  issue date; numbered, i.e. approved, not a template), in each later month a late fee is charged in, and in the
  month it is voided. What the month books is the change of what the invoice has booked between the month's first
  instant and the next month's: issued, Dr receivable (the invoice's total converted once, which is its
  `base_total`), Cr each line's net converted (late fees too: revenue, untaxed) to the revenue account of its
  customer (as a source) or of the invoices' revenue category (INVOICE_REVENUE_CATEGORY), Cr the tax of each tax
  rate converted to the tax account; a later late fee, the same for the fee; a void, all that was booked reversed
  (voided in the month it was issued: nothing). Converting line by line leaves a difference of a few minor units
  from the total converted once: it goes to the `rounding` account, never into a customer's or the tax authority's.
- A payment (by the date paid): Dr cash its base amount (at the payment's rate), Cr receivable its booked base (at
  the invoice's locked rate), the difference to `fx_gain` (Cr) or `fx_loss` (Dr).
- A credit note (by the day it was issued, UTC), at the invoice's locked rate: Cr receivable its amount converted
  once; Dr the invoice's revenue account the net and Dr the tax account the tax of each tax rate, converted one by
  one, as its split holds them (`credit_note_taxes`: the amount split in the invoice's proportions per tax rate,
  domain/invoices/credit_notes.split_by_tax_rate), so a credit of a taxed invoice reverses its share of the tax;
  the few minor units converting part by part leaves go to `rounding`, as an invoice's do. Credit notes from before
  the split (migration 0015) hold one untaxed part and reverse no tax, as they booked then.

Each of these is refused, whoever writes, once its month is closed (domain/ledger/periods.py, migrations 0014 and
0015): what a closed month's journals were made of does not change until an admin reopens it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext

from domain.ledger import months
from domain.ledger.mappings import Booked, Chart
from domain.ledger.sources import (
    CreditNoteSource,
    EntrySource,
    InvoiceLineSource,
    InvoiceSource,
    MonthSources,
    PaymentSource,
    Trail,
)
from domain.models.rows import approval_title
from domain.money import in_minor_units, plain_str, rate_str

ZERO = Decimal(0)
ONE = Decimal(1)
SOURCE_ORDER = ("entry", "invoice", "payment", "credit_note")


@dataclass(frozen=True)
class Line:
    account: Booked
    debit: Decimal
    credit: Decimal
    currency: str
    original_amount: Decimal
    rate: Decimal
    cost_center: str
    description: str


@dataclass(frozen=True)
class Journal:
    number: str
    journal_date: date
    source_kind: str
    source_id: int
    description: str
    counterparty: str
    approved_by: str
    approved_at: datetime | None
    audit_hash: str
    link: str
    lines: tuple[Line, ...]

    @property
    def debit_total(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credit_total(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def balanced(self) -> bool:
        return self.debit_total == self.credit_total

    def sort_key(self) -> tuple[date, int, int, str]:
        return (self.journal_date, SOURCE_ORDER.index(self.source_kind), self.source_id, self.number)


class Unbalanced(AssertionError):
    """A journal whose debits differ from its credits: a fault in the builders, never written."""


def to_base(amount: Decimal, rate: Decimal, base: str) -> Decimal:
    """`amount` x `rate`, rounded once (half-up) to the base currency's minor units."""
    with localcontext() as context:
        context.prec = 40  # 15 + 4 digits of amount times 16 + 12 of rate: exact before the one rounding
        return in_minor_units(amount * rate, base)


@dataclass
class _Lines:
    """The lines of one journal as they are added: a signed base amount each (debit positive)."""

    base: str
    cost_center: str
    items: list[tuple[Booked, Decimal, str, Decimal, Decimal, str]]

    def add(self, account: Booked, signed: Decimal, currency: str, original: Decimal, rate: Decimal, text: str) -> None:
        """A debit (positive) or credit (negative); nothing for zero."""
        if signed != 0:
            self.items.append((account, signed, currency, abs(original), rate, text))

    def residual(self) -> Decimal:
        """What the lines so far leave unbalanced (positive: more debit)."""
        return sum((item[1] for item in self.items), ZERO)

    def built(self) -> tuple[Line, ...]:
        lines = []
        for account, signed, currency, original, rate, text in self.items:
            amount = in_minor_units(abs(signed), self.base)
            debit, credit = (amount, ZERO) if signed > 0 else (ZERO, amount)
            lines.append(Line(account, debit, credit, currency, in_minor_units(original, currency), rate,
                              self.cost_center, text[:500]))  # fmt: skip
        return tuple(lines)


def utc_day(instant: datetime) -> date:
    """The day of a timestamped event, as the month's bounds count it (UTC)."""
    return instant.astimezone(UTC).date()


def _lines(base: str, cost_center: str) -> _Lines:
    return _Lines(base, cost_center, [])


# --- entries -------------------------------------------------------------------------------------------------------


def entry_journal(entry: EntrySource, chart: Chart, base: str) -> Journal:
    lines = _lines(base, entry.cost_center)
    amount, rate, title = entry.base_amount, entry.fx_rate, approval_title(entry.category, entry.description,
                                                                            entry.vendor, entry.source)  # fmt: skip
    if entry.kind == "expense":
        lines.add(chart.expense(entry.category), amount, entry.currency, entry.amount, rate, entry.category)
        lines.add(chart.role("payable"), -amount, entry.currency, entry.amount, rate, f"payable: {title}")
        number, path, party = f"EXP-{entry.id}", "expenses", entry.vendor
    else:
        lines.add(chart.role("cash"), amount, entry.currency, entry.amount, rate, f"received: {title}")
        lines.add(chart.revenue(entry.source, entry.category), -amount, entry.currency, entry.amount, rate,
                  entry.category)  # fmt: skip
        number, path, party = f"REV-{entry.id}", "revenue", entry.source
    trail = entry.trail
    return Journal(number, entry.entry_date, "entry", entry.id, title, party or "", trail.by, trail.at,
                   trail.audit_hash, f"/api/v1/{path}/{entry.id}", lines.built())  # fmt: skip


# --- invoices ------------------------------------------------------------------------------------------------------


def booked_lines(invoice: InvoiceSource, day: date, instant: datetime) -> list[InvoiceLineSource]:
    """What the invoice has booked before `day` (its first instant: `instant`): nothing before its issue date or
    once voided, else its items and the late fees charged by then."""
    if invoice.issue_date >= day or (invoice.voided_at is not None and invoice.voided_at < instant):
        return []
    return [line for line in invoice.lines if line.kind != "late_fee" or line.created_at < instant]


def _gross(lines: Iterable[InvoiceLineSource]) -> Decimal:
    return sum((line.net + line.tax for line in lines), ZERO)


def invoice_journal(
    invoice: InvoiceSource, month: date, chart: Chart, base: str, revenue_category: str
) -> Journal | None:
    """What the invoice books in `month` (None: nothing): the change of `booked_lines` across the month."""
    following = months.following(month)
    before = booked_lines(invoice, month, months.start(month))
    after = booked_lines(invoice, following, months.start(following))
    before_ids = {line.id for line in before}
    added = [line for line in after if line.id not in before_ids]
    removed = before if not after else []  # lines only go all at once, by a void
    moved, sign = (added, 1) if added else (removed, -1)
    if not moved:
        return None
    rate, currency = invoice.fx_rate, invoice.currency
    lines = _lines(base, invoice.cost_center)
    # The receivable moves by the total converted once, as of each end: the months' moves add up to base_total.
    receivable = to_base(_gross(after), rate, base) - to_base(_gross(before), rate, base)
    lines.add(chart.role("receivable"), receivable, currency, _gross(moved), rate, f"invoice {invoice.number}")
    revenue = chart.revenue(invoice.customer, revenue_category)
    for line in moved:
        lines.add(revenue, -sign * to_base(line.net, rate, base), currency, line.net, rate, line.description)
    taxes: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
    for line in moved:
        if line.tax:
            taxes[line.tax_rate] += line.tax
    for tax_rate, tax in sorted(taxes.items()):
        text = f"tax {plain_str(tax_rate.normalize())}% on invoice {invoice.number}"
        lines.add(chart.role("tax"), -sign * to_base(tax, rate, base), currency, tax, rate, text)
    residual = lines.residual()
    if residual:
        lines.add(
            chart.role("rounding"), -residual, base, residual, ONE, f"rounding, converting invoice {invoice.number}"
        )
    if not added:
        trail, number, day = invoice.voided, f"{invoice.number}-VOID", invoice.voided_at
        text = f"invoice {invoice.number} to {invoice.customer} voided"
    elif before:
        fees = sorted(line.reminder_step or 0 for line in added)
        latest = max(added, key=lambda line: line.created_at)
        trail = Trail("", latest.created_at, latest.audit_hash)  # charged by the reminder policy, not by a person
        number, day = f"{invoice.number}-LF{'-'.join(map(str, fees))}", latest.created_at
        text = f"late fee on invoice {invoice.number} to {invoice.customer}"
    else:
        trail, number, day = invoice.issued, invoice.number, None
        text = f"invoice {invoice.number} to {invoice.customer}"
    journal_date = utc_day(day) if isinstance(day, datetime) else invoice.issue_date
    built = lines.built()
    if not built:
        return None  # amounts that convert to nothing
    return Journal(number[:30], journal_date, "invoice", invoice.id, text, invoice.customer, trail.by, trail.at,
                   trail.audit_hash, f"/api/v1/invoices/{invoice.id}", built)  # fmt: skip


# --- payments and credit notes --------------------------------------------------------------------------------------


def payment_journal(payment: PaymentSource, chart: Chart, base: str) -> Journal:
    lines = _lines(base, payment.cost_center)
    currency, number = payment.currency, payment.invoice_number
    lines.add(chart.role("cash"), payment.base_amount, currency, payment.amount, payment.fx_rate,
              f"received on invoice {number} at {rate_str(payment.fx_rate)}")  # fmt: skip
    lines.add(chart.role("receivable"), -payment.booked_base, currency, payment.amount, payment.locked_rate,
              f"invoice {number} at its locked rate {rate_str(payment.locked_rate)}")  # fmt: skip
    difference = payment.base_amount - payment.booked_base  # realized: a gain when positive
    if difference > 0:
        lines.add(chart.role("fx_gain"), -difference, base, difference, ONE, f"exchange gain on invoice {number}")
    elif difference < 0:
        lines.add(chart.role("fx_loss"), -difference, base, difference, ONE, f"exchange loss on invoice {number}")
    reference = f", reference {payment.reference}" if payment.reference else ""
    trail = payment.trail
    return Journal(f"PAY-{payment.id}", payment.paid_on, "payment", payment.id,
                   f"payment of invoice {number} by {payment.customer}{reference}", payment.customer, trail.by,
                   trail.at, trail.audit_hash, f"/api/v1/invoices/{payment.invoice_id}/payments",
                   lines.built())  # fmt: skip


def credit_note_journal(note: CreditNoteSource, chart: Chart, base: str, revenue_category: str) -> Journal:
    lines = _lines(base, note.cost_center)
    rate, currency = note.locked_rate, note.currency
    revenue = chart.revenue(note.customer, revenue_category)
    several = len(note.parts) > 1
    for part in note.parts:
        text = f"credit note {note.number}: {note.reason}"
        if several:
            text = f"credit note {note.number}, net at {plain_str(part.tax_rate.normalize())}%: {note.reason}"
        lines.add(revenue, to_base(part.net, rate, base), currency, part.net, rate, text)
    for part in note.parts:
        if part.tax:
            text = f"tax {plain_str(part.tax_rate.normalize())}% on credit note {note.number}"
            lines.add(chart.role("tax"), to_base(part.tax, rate, base), currency, part.tax, rate, text)
    lines.add(chart.role("receivable"), -to_base(note.amount, rate, base), currency, note.amount, rate,
              f"credit note {note.number} on invoice {note.invoice_number}")  # fmt: skip
    residual = lines.residual()
    if residual:
        lines.add(
            chart.role("rounding"), -residual, base, residual, ONE, f"rounding, converting credit note {note.number}"
        )
    trail = note.trail
    return Journal(note.number, utc_day(note.created_at), "credit_note", note.id,
                   f"credit note {note.number} on invoice {note.invoice_number} to {note.customer}", note.customer,
                   trail.by, trail.at, trail.audit_hash, f"/api/v1/invoices/{note.invoice_id}/credit-notes",
                   lines.built())  # fmt: skip


# --- a month -------------------------------------------------------------------------------------------------------


def month_journals(sources: MonthSources, month: date, chart: Chart, base: str, revenue_category: str) -> list[Journal]:
    """Every journal of the month, in date order (then entries, invoices, payments, credit notes, by id). Those left
    without lines (amounts that convert to zero) are left out. Accounts the chart lacks are in `chart.missing`."""
    built: list[Journal | None] = [
        *(entry_journal(entry, chart, base) for entry in sources.entries),
        *(invoice_journal(invoice, month, chart, base, revenue_category) for invoice in sources.invoices),
        *(payment_journal(payment, chart, base) for payment in sources.payments),
        *(credit_note_journal(note, chart, base, revenue_category) for note in sources.credit_notes),
    ]
    journals = sorted((journal for journal in built if journal is not None and journal.lines), key=Journal.sort_key)
    for journal in journals:
        if not journal.balanced:
            raise Unbalanced(
                f"journal {journal.number}: debits {journal.debit_total} <> credits {journal.credit_total}"
            )
    return journals
