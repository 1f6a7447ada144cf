"""A month's journals as the books hold them: computed now from what the database says (an open month), or as a
closing froze them (a closed one, the last closing's), and the freezing itself.

The frozen rows mean what domain/models/ledger.py says: `journals` one per source and month and closing, its lines
in the base currency (debit or credit, never both) with the original currency, amount and rate behind each. The
exports read them as they are (one closing of a month always reads the same lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from core.settings import Settings
from core.sql import Sql
from domain.ledger import months, sources
from domain.ledger import repository as ledger
from domain.ledger.journals import ZERO, Journal, Line, month_journals
from domain.ledger.mappings import Chart, MissingAccounts
from domain.ledger.repository import JournalLineRow, JournalRow
from domain.ledger.schemas import JournalLineOut, JournalOut, JournalPage
from domain.money import in_minor_units
from domain.pagination import Keyset, Pager


@dataclass(frozen=True)
class LedgerTerms:
    """What the journals are kept in: the base currency, and the category of invoice revenue
    (INVOICE_REVENUE_CATEGORY: what a payment books, and what invoices are credited to when their customer is not
    mapped as a source)."""

    base: str
    revenue_category: str

    @classmethod
    def of(cls, settings: Settings) -> LedgerTerms:
        return cls(settings.approvals.base_currency, settings.invoices.revenue_category)


async def journals_now(sql: Sql, month: date, terms: LedgerTerms) -> list[Journal]:
    """The month's journals from what the database holds now; 409 naming every account the mapping lacks for them."""
    chart = Chart.of(await ledger.mappings(sql))
    journals = month_journals(await sources.month_sources(sql, month), month, chart, terms.base,
                              terms.revenue_category)  # fmt: skip
    if chart.missing:
        raise MissingAccounts(chart.missing)
    return journals


async def freeze(sql: Sql, month: date, closing: int, journals: list[Journal]) -> int:
    """Write the journals as `closing` of the month, in their order; the number of lines written."""
    rows = [
        (month, closing, j.number, j.journal_date, j.source_kind, j.source_id, j.description, j.counterparty[:200],
         j.approved_by[:200], j.approved_at, j.audit_hash, j.link)
        for j in journals
    ]  # fmt: skip
    lines = [
        [
            (
                number,
                line.account.code,
                line.account.name,
                line.debit,
                line.credit,
                line.currency,
                line.original_amount,
                line.rate,
                line.account.tax_code,
                line.cost_center[:100],
                line.description,
            )
            for number, line in enumerate(journal.lines, start=1)
        ]
        for journal in journals
    ]
    return await ledger.insert_journals(sql, rows, lines)


def _line_out(line_no: int, line: Line | JournalLineRow, base: str) -> JournalLineOut:
    if isinstance(line, Line):
        code, name, tax_code = line.account.code, line.account.name, line.account.tax_code
    else:
        code, name, tax_code = line.account_code, line.account_name, line.tax_code
    return JournalLineOut(
        line_no=line_no, account_code=code, account_name=name, debit=in_minor_units(line.debit, base),
        credit=in_minor_units(line.credit, base), currency=line.currency,
        original_amount=in_minor_units(line.original_amount, line.currency), rate=line.rate, tax_code=tax_code,
        cost_center=line.cost_center, description=line.description,
    )  # fmt: skip


def journal_out(journal: Journal | JournalRow, lines: list[JournalLineOut]) -> JournalOut:
    return JournalOut(
        number=journal.number, journal_date=journal.journal_date, source_kind=journal.source_kind,  # type: ignore[arg-type]
        source_id=journal.source_id, description=journal.description, counterparty=journal.counterparty,
        approved_by=journal.approved_by, approved_at=journal.approved_at, audit_hash=journal.audit_hash,
        link=journal.link, lines=lines,
    )  # fmt: skip


def frozen_keyset(month: date, closing: int) -> Keyset:
    """A closed month's journals in the order its closing wrote them (by id). The closing is in the scope: once the
    month is reopened or closed again, a cursor into the old closing is refused instead of skipping or repeating."""
    return Keyset(f"journals:{months.label(month)}:closing-{closing}", ("j.id",), (int,), descending=False)


def open_keyset(month: date) -> Keyset:
    """An open month's journals, computed now, in their sort order (`Journal.sort_key`); a cursor is the key of the
    last one shown, so a journal approved meanwhile lands in its place without shifting the pages."""
    return Keyset(f"journals:{months.label(month)}:open", ("date", "source", "source_id", "number"),
                  (date, int, int, str), descending=False)  # fmt: skip


async def journal_page(sql: Sql, month: date, terms: LedgerTerms, pager: Pager) -> JournalPage:
    """The month's journals: the last closing's of a closed month, else computed now."""
    period = await ledger.period(sql, month)
    base = terms.base
    if period is not None and period.status == "closed":
        keyset = frozen_keyset(month, period.closings)
        after = pager.key(keyset)
        frozen, total, debit, credit = await ledger.frozen_page(
            sql, month, period.closings, pager.fetch, pager.offset, after[0] if after else None
        )
        frozen, next_cursor = pager.cut(keyset, frozen, lambda journal: (journal.id,))
        items = [
            journal_out(journal, [_line_out(line.line_no, line, base) for line in journal.lines]) for journal in frozen
        ]
        return JournalPage(month=months.label(month), status="closed", closing=period.closings, base_currency=base,
                           items=items, total=total, debit_total=in_minor_units(debit, base),
                           credit_total=in_minor_units(credit, base), limit=pager.limit, offset=pager.page_offset,
                           next_cursor=next_cursor)  # fmt: skip
    keyset = open_keyset(month)
    after = pager.key(keyset)
    journals = await journals_now(sql, month, terms)
    following = [journal for journal in journals if after is None or journal.sort_key() > after]
    page, next_cursor = pager.cut(keyset, following[pager.offset : pager.offset + pager.fetch], Journal.sort_key)
    shown = [
        journal_out(journal, [_line_out(n, line, base) for n, line in enumerate(journal.lines, start=1)])
        for journal in page
    ]
    debit, credit = totals(journals)
    return JournalPage(month=months.label(month), status="open", closing=None, base_currency=base, items=shown,
                       total=len(journals), debit_total=in_minor_units(debit, base),
                       credit_total=in_minor_units(credit, base), limit=pager.limit, offset=pager.page_offset,
                       next_cursor=next_cursor)  # fmt: skip


def totals(journals: list[Journal]) -> tuple[Decimal, Decimal]:
    return sum((j.debit_total for j in journals), ZERO), sum((j.credit_total for j in journals), ZERO)
