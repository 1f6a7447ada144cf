"""An invoice's receivable across months, worked out by hand: issued in one month, a late fee charged in a later
one (with the cent its conversion leaves to rounding), voided in another (everything booked reversed), and an invoice
issued and voided in the same month (nothing at all). No database: the journal builder on sources made here.

1 EUR = 1.085 USD locked. One line of 999.99 EUR at 19% (tax 189.9981 -> 190.00): 1189.99 EUR in all."""

from __future__ import annotations

from datetime import date

from domain.ledger.journals import Journal, invoice_journal
from tests.ledger.builders import at, full_chart, invoice, line

JAN, FEB, MAR, MAY = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 5, 1)
INVOICES = "Invoices"


def rows(journal: Journal | None) -> list[tuple[str, str, str, str, str]]:
    assert journal is not None
    assert journal.balanced
    return [(line.account.code, str(line.debit), str(line.credit), line.currency, str(line.original_amount))
            for line in journal.lines]  # fmt: skip


def month_of(source: object, month: date) -> Journal | None:
    return invoice_journal(source, month, full_chart(), "USD", INVOICES)  # type: ignore[arg-type]


def test_a_late_fee_in_a_later_month_books_there_and_a_void_reverses_what_was_booked() -> None:
    lines = [line(1, "999.99", "19", description="Consulting"), line(2, "10.06", fee_on=date(2026, 3, 3), step=2)]
    voided = invoice(lines, "1.085", date(2026, 1, 15), voided=at(date(2026, 5, 20)))

    issued = month_of(voided, JAN)
    # Issued: 1189.99 x 1.085 = 1291.13915 -> 1291.14; 999.99 -> 1084.99, 190.00 -> 206.15: no rounding left.
    assert rows(issued) == [
        ("1200", "1291.14", "0", "EUR", "1189.99"),
        ("4000", "0", "1084.99", "EUR", "999.99"),
        ("2200", "0", "206.15", "EUR", "190.00"),
    ]
    assert issued is not None
    assert (issued.number, issued.journal_date, issued.approved_by, issued.audit_hash) == (
        "INV-2026-0007", date(2026, 1, 15), "Ada Admin", "i" * 64,
    )  # fmt: skip
    assert month_of(voided, FEB) is None

    # The fee: the receivable moves from 1291.14 to 1200.05 x 1.085 = 1302.05425 -> 1302.05, by 10.91; the fee
    # converted alone is 10.06 x 1.085 = 10.9151 -> 10.92: the cent between them is rounding's.
    fee = month_of(voided, MAR)
    assert rows(fee) == [
        ("1200", "10.91", "0", "EUR", "10.06"),
        ("4000", "0", "10.92", "EUR", "10.06"),
        ("7900", "0.01", "0", "USD", "0.01"),
    ]
    assert fee is not None
    assert (fee.number, fee.journal_date, fee.approved_by) == ("INV-2026-0007-LF2", date(2026, 3, 3), "")

    # Voided in May: all that was booked (the line, its tax and the fee) comes back, against the receivable of
    # 1302.05; the cent of rounding goes back too.
    void = month_of(voided, MAY)
    assert rows(void) == [
        ("1200", "0", "1302.05", "EUR", "1200.05"),
        ("4000", "1084.99", "0", "EUR", "999.99"),
        ("4000", "10.92", "0", "EUR", "10.06"),
        ("2200", "206.15", "0", "EUR", "190.00"),
        ("7900", "0", "0.01", "USD", "0.01"),
    ]
    assert void is not None
    assert (void.number, void.journal_date, void.approved_by, void.audit_hash) == (
        "INV-2026-0007-VOID", date(2026, 5, 20), "Vic Voider", "v" * 64,
    )  # fmt: skip
    # Every account the invoice touched is back at zero.
    net: dict[str, int] = {}
    for journal in (issued, fee, void):
        for booked in journal.lines:
            net[booked.account.code] = net.get(booked.account.code, 0) + int((booked.debit - booked.credit) * 100)
    assert set(net.values()) == {0}


def test_an_invoice_voided_in_its_own_month_books_nothing() -> None:
    same = invoice([line(1, "500.00", "19")], "1.085", date(2026, 1, 10), voided=at(date(2026, 1, 31), 23))
    assert [month_of(same, month) for month in (JAN, FEB, MAR)] == [None, None, None]
    # Voided before the issue date it carries: never booked either.
    early = invoice([line(1, "500.00", "19")], "1.085", date(2026, 3, 10), voided=at(date(2026, 2, 27)))
    assert [month_of(early, month) for month in (JAN, FEB, MAR)] == [None, None, None]


def test_a_fee_charged_in_the_issue_month_is_part_of_the_issue() -> None:
    both = invoice([line(1, "999.99", "19"), line(2, "10.06", fee_on=date(2026, 1, 31))], "1.085", date(2026, 1, 5))
    # 1200.05 -> 1302.05; 1084.99 + 10.92 + 206.15 = 1302.06: a cent too much credited, debited to rounding.
    assert rows(month_of(both, JAN)) == [
        ("1200", "1302.05", "0", "EUR", "1200.05"),
        ("4000", "0", "1084.99", "EUR", "999.99"),
        ("4000", "0", "10.92", "EUR", "10.06"),
        ("2200", "0", "206.15", "EUR", "190.00"),
        ("7900", "0.01", "0", "USD", "0.01"),
    ]
    assert month_of(both, FEB) is None
