"""A fixed closed month, March 2026 (closing 1), as the period close would have frozen it: six journals in EUR books
with lines in EUR, USD, GBP and JPY, tax codes, cost centers, a zero line, a journal with several lines on both
sides, and text that tests the files' quoting and encoding (umlauts, the euro sign, characters Windows-1252 lacks,
quotes, a comma, a line break, a typed spreadsheet formula).

`insert_closed_month` writes it (or any journals) straight into `periods`, `journals` and `journal_lines`, as the
ledger's close does; the golden files are rendered from `JOURNALS` directly.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

from activities.deps import ActivityDeps
from core.settings import ExportSettings
from domain.exports.formats import renderer_for
from domain.exports.rendering import ExportContext
from domain.ledger.repository import FrozenJournal, JournalLineRow

MONTH = date(2026, 3, 1)
CLOSED_AT = datetime(2026, 4, 2, 8, 15, 30, 123456, tzinfo=UTC)
BASE = "EUR"

SETTINGS = ExportSettings(  # every field given: nothing from the environment or a .env file changes the goldens
    datev_consultant_number=29098,
    datev_client_number=55003,
    datev_fiscal_year_start_month=1,
    datev_account_length=4,
    datev_chart_of_accounts="03",
    datev_clearing_account="1590",
    datev_tax_keys={},
    xero_tax_rates={"VAT20": "20% (VAT on Income)"},
    xero_no_tax_rate="Tax Exempt",
    xero_tracking_category="Cost Center",
)


def _line(no: int, code: str, name: str, debit: str, credit: str, currency: str, original: str, rate: str,
          tax: str = "", cost_center: str = "", description: str = "") -> JournalLineRow:  # fmt: skip
    return JournalLineRow(0, no, code, name, Decimal(debit), Decimal(credit), currency, Decimal(original),
                          Decimal(rate), tax, cost_center, description)  # fmt: skip


def _approved(day: int) -> datetime:
    return datetime(2026, 3, day, 16, 45, 0, tzinfo=UTC)


JOURNALS: tuple[FrozenJournal, ...] = (
    FrozenJournal(
        1, MONTH, 1, "EXP-101", date(2026, 3, 3), "entry", 101, "Taxi zum Flughafen, Fahrer Müller", "Taxi Müller GmbH",
        "Doe, Jane", _approved(4), "a1" * 32, "/api/v1/expenses/101",
        (
            _line(1, "4670", "Reisekosten", "84.03", "0", "EUR", "84.03", "1", "VAT19", "Sales",
                  "Fahrt zum Flughafen München"),
            _line(2, "1576", "Vorsteuer 19 %", "15.97", "0", "EUR", "15.97", "1", "VAT19", "", "Input VAT"),
            _line(3, "1600", "Verbindlichkeiten", "0", "100.00", "EUR", "100.00", "1"),
        ),
    ),
    FrozenJournal(
        2, MONTH, 1, "EXP-102", date(2026, 3, 5), "entry", 102, 'Conference "FinOps" ticket 100 € — early bird',
        "EventCo Inc.",
        "Jane Doe", _approved(6), "b2" * 32, "/api/v1/expenses/102",
        (
            _line(1, "4900", "Sonstige Aufwendungen", "92.00", "0", "USD", "100.00", "0.92", "", "Marketing/EU",
                  "Ticket 100 € (early bird)"),
            _line(2, "1600", "Verbindlichkeiten", "0", "92.00", "USD", "100.00", "0.92"),
        ),
    ),
    FrozenJournal(
        3, MONTH, 1, "INV-2026-0007", date(2026, 3, 10), "invoice", 7, "Invoice INV-2026-0007\nconsulting March",
        "Acme Ltd",
        "Jane Doe", _approved(10), "c3" * 32, "/api/v1/invoices/7",
        (
            _line(1, "1400", "Forderungen", "1404.00", "0", "GBP", "1200.00", "1.17"),
            _line(2, "8400", "Erlöse 20 %", "0", "1170.00", "GBP", "1000.00", "1.17", "VAT20", "Consulting"),
            _line(3, "1776", "Umsatzsteuer 20 %", "0", "234.00", "GBP", "200.00", "1.17", "VAT20"),
        ),
    ),
    FrozenJournal(
        4, MONTH, 1, "PAY-55", date(2026, 3, 20), "payment", 55, "Payment from 東京 Trading", "東京 Trading KK",
        "", None, "d4" * 32, "/api/v1/invoices/9/payments",
        (
            _line(1, "1200", "Bank", "6100.00", "0", "JPY", "1000000", "0.0061"),
            _line(2, "2150", "Kursverluste", "100.00", "0", "EUR", "100.00", "1"),
            _line(3, "4990", "Rundung", "0", "0", "EUR", "0", "1", "", "", "rounding, nothing to book"),
            _line(4, "1400", "Forderungen", "0", "6200.00", "JPY", "1016393", "0.0061"),
        ),
    ),
    FrozenJournal(
        5, MONTH, 1, "PAY-56", date(2026, 3, 20), "payment", 56, "Payment INV-2026-0003 less fees", "Globex",
        "", None, "e5" * 32, "/api/v1/invoices/3/payments",
        (
            _line(1, "1200", "Bank", "500.00", "0", "EUR", "500.00", "1"),
            _line(2, "4970", "Nebenkosten des Geldverkehrs", "5.00", "0", "EUR", "5.00", "1"),
            _line(3, "1400", "Forderungen", "0", "480.00", "EUR", "480.00", "1"),
            _line(4, "2660", "Kursgewinne", "0", "25.00", "EUR", "25.00", "1"),
        ),
    ),
    FrozenJournal(
        6, MONTH, 1, "CN-2026-0002", date(2026, 3, 31), "credit_note", 2, "Credit note CN-2026-0002", "Acme Ltd",
        "Jane Doe", _approved(31), "f6" * 32, "/api/v1/invoices/7/credit-notes",
        (
            _line(1, "8400", "Erlöse 20 %", "117.00", "0", "GBP", "100.00", "1.17", "VAT20", "Consulting",
                  '=HYPERLINK("http://evil.example/","x")'),
            _line(2, "1776", "Umsatzsteuer 20 %", "23.40", "0", "GBP", "20.00", "1.17", "VAT20"),
            _line(3, "1400", "Forderungen", "0", "140.40", "GBP", "120.00", "1.17"),
        ),
    ),
)  # fmt: skip

LINES = sum(len(journal.lines) for journal in JOURNALS)


def context(
    journals: tuple[FrozenJournal, ...] = JOURNALS, settings: ExportSettings = SETTINGS, **changes: object
) -> ExportContext:
    values: dict[str, object] = {
        "month": MONTH, "closing": 1, "closed_at": CLOSED_AT, "base_currency": BASE, "settings": settings,
        "journals": len(journals), "lines": sum(len(journal.lines) for journal in journals),
    }  # fmt: skip
    values.update(changes)
    return ExportContext(**values)  # type: ignore[arg-type]


def rendered(export_format: str, context: ExportContext, journals: tuple[FrozenJournal, ...] = JOURNALS) -> bytes:
    """The format's file for these journals, rendered directly (no database, no workflow)."""
    out = io.BytesIO()
    renderer = renderer_for(export_format, context, out)
    renderer.write(journals)
    renderer.finish()
    return out.getvalue()


_PERIOD = (
    "INSERT INTO periods (month, status, closed_at, closings) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (month) DO UPDATE SET status = excluded.status, closed_at = excluded.closed_at, "
    "closings = excluded.closings"
)
_JOURNAL = (
    "INSERT INTO journals (month, closing, number, journal_date, source_kind, source_id, description, counterparty, "
    "approved_by, approved_at, audit_hash, link) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_LINE = (
    "INSERT INTO journal_lines (journal_id, line_no, account_code, account_name, debit, credit, currency, "
    "original_amount, rate, tax_code, cost_center, description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


async def insert_closed_month(
    deps: ActivityDeps,
    journals: tuple[FrozenJournal, ...] = JOURNALS,
    *,
    month: date = MONTH,
    closing: int = 1,
    closed_at: datetime = CLOSED_AT,
    status: str = "closed",
) -> None:
    """The month's period row (closed at its `closing`-th closing, or `status` open) and the journals that closing
    froze, inserted in reverse so that only the export's ORDER BY can put them in order."""
    async with deps.db.transaction() as tx:
        await tx.sql.run(_PERIOD, (month, status, closed_at, closing))
        for journal in reversed(journals):
            journal_id = await tx.sql.scalar(_JOURNAL, (
                month, closing, journal.number, journal.journal_date, journal.source_kind, journal.source_id,
                journal.description, journal.counterparty, journal.approved_by, journal.approved_at,
                journal.audit_hash, journal.link,
            ))  # fmt: skip
            for line in reversed(journal.lines):
                await tx.sql.run(_LINE, (
                    journal_id, line.line_no, line.account_code, line.account_name, line.debit, line.credit,
                    line.currency, line.original_amount, line.rate, line.tax_code, line.cost_center, line.description,
                ))  # fmt: skip
