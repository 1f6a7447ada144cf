"""The journals of a closed month as the exports read them.

The period close (the ledger's part) writes `periods`, `journals` and `journal_lines`; an export only reads them,
here. A month's export reads the journals of its latest closing, and a batch keeps which closing that was: a month
reopened and closed again gets new journals under a new closing number, so a batch's bytes stay those of the
closing it was made from.

The order is part of the file (two batches of one closing must be byte-identical): journal date, then number
(compared byte by byte, `COLLATE "C"`, so no database's locale changes it), then id, then line number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from core.sql import Sql


@dataclass(frozen=True)
class Closing:
    """A closed month's latest closing (`closing`: which one, 1 for the first) and when it closed."""

    month: date
    closing: int
    closed_at: datetime


@dataclass(frozen=True)
class Line:
    """One line; `debit` and `credit` in the base currency (one of them zero), `original_amount` in `currency` on
    the same side, `rate` the base units of one unit of `currency` (base = original x rate, as entries lock it)."""

    line_no: int
    account_code: str
    account_name: str
    debit: Decimal
    credit: Decimal
    currency: str
    original_amount: Decimal
    rate: Decimal
    tax_code: str = ""
    cost_center: str = ""
    description: str = ""

    @property
    def is_debit(self) -> bool:
        return self.debit > 0

    @property
    def base_amount(self) -> Decimal:
        """The line's amount in the base currency, whichever side it is on."""
        return self.debit if self.debit > 0 else self.credit


@dataclass(frozen=True)
class Journal:
    id: int
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


_CLOSED = "SELECT month, closings, closed_at FROM periods WHERE month = %s AND status = 'closed'"
# FOR SHARE: a reopening (an UPDATE of the row) waits until the export that read it commits, so a batch is never
# recorded for a closing that was reopened meanwhile.
_CLOSED_LOCKED = _CLOSED + " FOR SHARE"


async def closed(sql: Sql, month: date, *, lock: bool = False) -> Closing | None:
    """The month's latest closing, or None while it is open (or was never closed)."""
    row = await sql.one(_CLOSED_LOCKED if lock else _CLOSED, (month,))
    if row is None or row[2] is None:
        return None
    return Closing(row[0], int(row[1]), row[2])


_COUNT = (
    "SELECT count(DISTINCT j.id), count(*) FROM journals j JOIN journal_lines l ON l.journal_id = j.id "
    "WHERE j.month = %s AND j.closing = %s"
)


async def counted(sql: Sql, month: date, closing: int) -> tuple[int, int]:
    """How many journals (with lines: the ones exported) and lines the closing holds."""
    row = await sql.one(_COUNT, (month, closing))
    assert row is not None
    return int(row[0]), int(row[1])


_JOURNAL_COLUMNS = (
    "j.id, j.number, j.journal_date, j.source_kind, j.source_id, j.description, j.counterparty, j.approved_by, "
    "j.approved_at, j.audit_hash, j.link"
)
_LINE_COLUMNS = (
    "l.line_no, l.account_code, l.account_name, l.debit, l.credit, l.currency, l.original_amount, l.rate, "
    "l.tax_code, l.cost_center, l.description"
)
_JOURNALS = (
    f"SELECT {_JOURNAL_COLUMNS}, {_LINE_COLUMNS} FROM journals j JOIN journal_lines l ON l.journal_id = j.id "
    'WHERE j.month = %s AND j.closing = %s ORDER BY j.journal_date, j.number COLLATE "C", j.id, l.line_no'
)
_JOURNAL_WIDTH = 11


async def journals_of(sql: Sql, month: date, closing: int, batch_size: int = 1000) -> AsyncIterator[list[Journal]]:
    """The closing's journals in export order, a batch at a time, from a server-side cursor (memory stays flat
    however large the month). A journal without lines has nothing to export and is left out. Read it in a
    transaction: a server-side cursor lives in one."""
    head: tuple[object, ...] | None = None
    lines: list[Line] = []
    batch: list[Journal] = []
    async with sql.connection.cursor(name="export_journals") as cursor:
        await cursor.execute(_JOURNALS, (month, closing))
        while rows := await cursor.fetchmany(batch_size):
            for row in rows:
                if head is not None and row[0] != head[0]:
                    batch.append(_journal(head, lines))
                    lines = []
                head = row[:_JOURNAL_WIDTH]
                lines.append(Line(*row[_JOURNAL_WIDTH:]))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if head is not None:
        batch.append(_journal(head, lines))
    if batch:
        yield batch


def _journal(head: tuple[object, ...], lines: list[Line]) -> Journal:
    return Journal(*head, tuple(lines))  # type: ignore[arg-type, call-arg]
