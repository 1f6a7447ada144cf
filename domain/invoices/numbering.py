"""Gap-free numbers per series and year: `INV-2026-0001`, `CN-2026-0001`; and the export batches' plain numbers
(series `EXPORT`, year 0: one series that never restarts, domain/exports/service.py).

The next number is taken in the transaction that issues the document, on the series' row for the year (an upsert
that locks it): a concurrent issue waits for the commit or rollback, so two documents never share a number, and a
rolled-back issue gives its number back (nothing is skipped). A PostgreSQL SEQUENCE would be faster and is not
gap-free (nextval is never rolled back), which invoice numbering in most jurisdictions must be.
"""

from __future__ import annotations

from core.sql import Sql

INVOICE = "INV"
CREDIT_NOTE = "CN"

_NEXT = (
    "INSERT INTO invoice_sequences AS s (series, year, last) VALUES (%s, %s, 1) "
    "ON CONFLICT (series, year) DO UPDATE SET last = s.last + 1 RETURNING last"
)


def formatted(series: str, year: int, number: int) -> str:
    return f"{series}-{year}-{number:04d}"


async def next_in_series(sql: Sql, series: str, year: int) -> int:
    """The next value of `series` in `year` (a series that never restarts uses one year, 0), held by this
    transaction until it ends."""
    return int(await sql.scalar(_NEXT, (series, year)))


async def next_number(sql: Sql, series: str, year: int) -> str:
    """The next number of `series` in `year`, held by this transaction until it ends."""
    return formatted(series, year, await next_in_series(sql, series, year))
