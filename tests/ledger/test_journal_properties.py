"""Properties of the journal builder over random months of entries, invoices (with late fees and voids across
months), payments and credit notes (split per tax rate) in several currencies and base currencies (JPY with no minor
unit, BHD with three): every journal balances exactly, every line is one-sided, non-negative and in the base
currency's minor units, and an invoice's receivable moves over the months add up to its total converted once (zero
when it was voided)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.invoices.credit_notes import split_by_tax_rate
from domain.ledger import months
from domain.ledger.journals import Journal, invoice_journal, month_journals, to_base
from domain.ledger.sources import (
    CreditNotePart,
    CreditNoteSource,
    EntrySource,
    InvoiceLineSource,
    InvoiceSource,
    MonthSources,
    PaymentSource,
    Trail,
)
from domain.money import in_minor_units, minor_units
from tests.ledger.builders import full_chart

CURRENCIES = ("USD", "EUR", "JPY", "GBP", "BHD", "CHF")
FIRST = date(2026, 1, 1)
MONTHS = [FIRST, date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)]
TRAIL = Trail("Ada", datetime(2026, 1, 1, tzinfo=UTC), "h" * 64)

rates = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("500"), places=12).filter(lambda r: r > 0)
days = st.integers(min_value=0, max_value=119).map(lambda n: FIRST + timedelta(days=n))
instants = st.tuples(days, st.integers(0, 86_399)).map(
    lambda pair: datetime(pair[0].year, pair[0].month, pair[0].day, tzinfo=UTC) + timedelta(seconds=pair[1])
)


def money(currency: str, low: int = 1, high: int = 10**9) -> st.SearchStrategy[Decimal]:
    """An amount in the currency's minor units."""
    units = minor_units(currency) or 0
    return st.integers(min_value=low, max_value=high).map(lambda n: Decimal(n).scaleb(-units))


@st.composite
def entries(draw: st.DrawFn, base: str) -> EntrySource:
    currency = draw(st.sampled_from(CURRENCIES))
    amount = draw(money(currency))
    rate = Decimal(1) if currency == base else draw(rates)
    return EntrySource(
        id=draw(st.integers(1, 10**6)), kind=draw(st.sampled_from(["expense", "revenue"])), amount=amount,
        currency=currency, category=draw(st.sampled_from(["travel", "meals", "Invoices"])), description="",
        entry_date=draw(days), source=draw(st.sampled_from([None, "Grant Co"])), vendor=None, fx_rate=rate,
        base_amount=to_base(amount, rate, base), cost_center="lead", trail=TRAIL,
    )  # fmt: skip


@st.composite
def invoices(draw: st.DrawFn) -> InvoiceSource:
    currency = draw(st.sampled_from(CURRENCIES))
    issued = draw(days)
    lines = []
    for position in range(1, draw(st.integers(1, 6)) + 1):
        net = draw(money(currency, 0, 10**8))
        tax_rate = draw(st.sampled_from([Decimal(0), Decimal(7), Decimal(19), Decimal("5.5"), Decimal(20)]))
        tax = in_minor_units(net * tax_rate / 100, currency)
        fee = draw(st.booleans()) and position > 1
        created = draw(instants) if fee else datetime(2026, 1, 1, tzinfo=UTC)
        lines.append(InvoiceLineSource(position, position, "late_fee" if fee else "item", f"line {position}",
                                       net, Decimal(0) if fee else tax, Decimal(0) if fee else tax_rate, created,
                                       position if fee else None))  # fmt: skip
    return InvoiceSource(
        id=draw(st.integers(1, 10**6)), number="INV-2026-0001", currency=currency, fx_rate=draw(rates),
        issue_date=issued, voided_at=draw(st.one_of(st.none(), instants)), customer="Acme", cost_center="lead",
        lines=tuple(lines), issued=TRAIL, voided=TRAIL,
    )  # fmt: skip


@st.composite
def payments(draw: st.DrawFn, base: str) -> PaymentSource:
    currency = draw(st.sampled_from(CURRENCIES))
    amount = draw(money(currency))
    paid_rate, locked = (Decimal(1), Decimal(1)) if currency == base else (draw(rates), draw(rates))
    return PaymentSource(
        id=draw(st.integers(1, 10**6)), invoice_id=1, invoice_number="INV-2026-0001", currency=currency,
        amount=amount, paid_on=draw(days), reference="", fx_rate=paid_rate,
        base_amount=to_base(amount, paid_rate, base), booked_base=to_base(amount, locked, base), locked_rate=locked,
        customer="Acme", cost_center="lead", trail=TRAIL,
    )  # fmt: skip


@st.composite
def credit_notes(draw: st.DrawFn) -> CreditNoteSource:
    """A credit note of part or all of a random invoice's total, split by tax rate as the service splits it."""
    invoice = draw(invoices())
    total = sum((line.net + line.tax for line in invoice.lines), Decimal(0))
    assume(total > 0)
    units = minor_units(invoice.currency) or 0
    amount = Decimal(draw(st.integers(1, int(total.scaleb(units))))).scaleb(-units)
    parts = split_by_tax_rate(amount, invoice.lines, invoice.currency)
    return CreditNoteSource(
        id=draw(st.integers(1, 10**6)), number="CN-2026-0001", invoice_id=1, invoice_number="INV-2026-0001",
        currency=invoice.currency, amount=amount, locked_rate=draw(rates), reason="discount",
        created_at=draw(instants), customer="Acme", cost_center="lead", trail=TRAIL,
        parts=tuple(CreditNotePart(part.tax_rate, part.net, part.tax) for part in parts),
    )  # fmt: skip


def check_lines(journal: Journal, base: str) -> None:
    assert journal.debit_total == journal.credit_total, journal
    assert journal.lines
    for line in journal.lines:
        assert line.debit >= 0 and line.credit >= 0 and (line.debit == 0 or line.credit == 0)
        assert line.debit + line.credit > 0
        assert in_minor_units(line.debit, base) == line.debit and in_minor_units(line.credit, base) == line.credit
        assert in_minor_units(line.original_amount, line.currency) == line.original_amount


@settings(max_examples=300, deadline=None)
@given(data=st.data(), base=st.sampled_from(["USD", "JPY", "BHD", "EUR"]))
def test_every_journal_of_any_month_balances(data: st.DataObject, base: str) -> None:
    sources = MonthSources(
        entries=data.draw(st.lists(entries(base), max_size=6)),
        invoices=data.draw(st.lists(invoices(), max_size=4)),
        payments=data.draw(st.lists(payments(base), max_size=4)),
        credit_notes=data.draw(st.lists(credit_notes(), max_size=3)),
    )
    for month in MONTHS:
        chart = full_chart()
        built = month_journals(sources, month, chart, base, "Invoices")
        assert chart.missing == set()
        for journal in built:
            check_lines(journal, base)
        assert built == sorted(built, key=Journal.sort_key)


@settings(max_examples=300, deadline=None)
@given(invoice=invoices(), base=st.sampled_from(["USD", "JPY", "BHD"]))
def test_an_invoices_receivable_over_the_months_is_its_total_converted_once(invoice: InvoiceSource, base: str) -> None:
    receivable = Decimal(0)
    for month in [date(2025, 12, 1), *MONTHS, date(2026, 5, 1)]:  # before, during and after everything happens
        journal = invoice_journal(invoice, month, full_chart(), base, "Invoices")
        if journal is not None:
            check_lines(journal, base)
            receivable += sum((line.debit - line.credit for line in journal.lines if line.account.code == "1200"),
                              Decimal(0))  # fmt: skip
    end = months.start(date(2026, 6, 1))
    voided = invoice.voided_at is not None and invoice.voided_at < end
    total = sum((line.net + line.tax for line in invoice.lines), Decimal(0))
    assert receivable == (Decimal(0) if voided else to_base(total, invoice.fx_rate, base))
