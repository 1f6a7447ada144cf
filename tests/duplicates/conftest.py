"""Possible duplicates: expenses and receipts written straight into the tables for the rule's edges (each test in a
transaction rolled back), and the approval tests' organisation over HTTP for what people see and do."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal

from activities.deps import ActivityDeps
from core.sql import Sql, columns
from domain.duplicates.check import DuplicateRules, Findings, check_expense
from domain.models.rows import EntryRow
from tests.approvals.conftest import client, eventually, team  # noqa: F401 - fixtures, used by name

DAY = date(2024, 6, 15)
_storage_keys = itertools.count(1)


class _RolledBack(Exception):
    pass


@asynccontextmanager
async def rolled_back(deps: ActivityDeps) -> AsyncIterator[Sql]:
    """A transaction whose writes are undone at the end (each hypothesis example starts from the same tables)."""
    try:
        async with deps.db.transaction() as tx:
            yield tx.sql
            raise _RolledBack
    except _RolledBack:
        pass


_INSERT = (
    "INSERT INTO entries (kind, owner_id, amount, currency, category, description, entry_date, vendor, status, "
    "version, base_currency, fx_rate, rate_date, rate_source, base_amount) VALUES (%(kind)s, %(owner)s, %(amount)s, "
    "'USD', 'travel', '', %(day)s, %(vendor)s, %(status)s, 1, %(base_currency)s, %(rate)s, %(rate_date)s, "
    f"%(source)s, %(base)s) RETURNING {columns(EntryRow)}"
)


async def expense(
    sql: Sql,
    owner_id: int,
    amount: str = "100.00",
    day: date = DAY,
    vendor: str | None = "Rail Co",
    status: str = "pending",
    kind: str = "expense",
) -> EntryRow:
    """An entry as its submit leaves it (a draft has no base amount yet), in the base currency."""
    submitted = status != "draft"
    values = {
        "kind": kind,
        "owner": owner_id,
        "amount": Decimal(amount),
        "day": day,
        "vendor": vendor,
        "status": status,
        "base_currency": "USD" if submitted else None,
        "rate": Decimal(1) if submitted else None,
        "rate_date": day if submitted else None,
        "source": "base" if submitted else None,
        "base": Decimal(amount) if submitted else None,
    }
    values_row = await sql.one(_INSERT, values)
    assert values_row is not None
    return EntryRow(*values_row)


async def receipt(sql: Sql, entry_id: int, sha256: str, uploaded_by: int, status: str = "stored") -> None:
    """A receipt's row as the receipts' upload leaves it (its bytes are not needed: the check reads the hash)."""
    await sql.run(
        "INSERT INTO attachments (entry_id, filename, content_type, size_bytes, sha256, storage_key, status, "
        "uploaded_by_id, stored_at) VALUES (%s, 'receipt.pdf', 'application/pdf', 1234, %s, %s, %s, %s, now())",
        (entry_id, sha256, f"receipts/test-{next(_storage_keys)}", status, uploaded_by),
    )


async def found(sql: Sql, entry: EntryRow, rules: DuplicateRules | None = None) -> set[tuple[int, str]]:
    """Check `entry`: (other entry id, reason) of what this check found."""
    findings: Findings = await check_expense(sql, entry, rules or DuplicateRules())
    return {(row.other_entry_id, row.reason) for row in findings.rows if row.id in findings.found_ids}


async def found_ids(sql: Sql, entry: EntryRow, rules: DuplicateRules | None = None) -> set[int]:
    return {other for other, _ in await found(sql, entry, rules)}


async def similarity(sql: Sql, a: str, b: str) -> float:
    """pg_trgm's similarity of the two names lower-cased, as the check computes it."""
    return float(await sql.scalar("SELECT similarity(lower(%s), lower(%s))", (a, b)))
