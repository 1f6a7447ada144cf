"""Every statement on `export_batches`, in plain SQL; rows come back as `BatchRow` (its fields are the columns).

A batch changes once: from `pending` to `completed` (its file, size and hash) or to `failed` (the reason). Both
updates require `pending`, so a completed batch is never rendered or changed again, whoever runs the workflow again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.sql import Sql, columns
from domain.pagination import Keyset


@dataclass(frozen=True)
class BatchRow:
    id: int
    number: int
    month: date
    closing: int
    format: str
    status: str
    workflow_id: str
    storage_key: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    journals: int | None
    error: str | None
    created_by_id: int
    completed_at: datetime | None
    created_at: datetime


BATCH = columns(BatchRow)

_INSERT = (
    "INSERT INTO export_batches (number, month, closing, format, status, workflow_id, created_by_id) "
    f"VALUES (%s, %s, %s, %s, 'pending', %s, %s) RETURNING {BATCH}"
)


async def insert(
    sql: Sql, number: int, month: date, closing: int, export_format: str, workflow_id: str, created_by_id: int
) -> BatchRow:
    return await sql.written(BatchRow, _INSERT, (number, month, closing, export_format, workflow_id, created_by_id))


async def get(sql: Sql, batch_id: int) -> BatchRow | None:
    return await sql.row(BatchRow, f"SELECT {BATCH} FROM export_batches WHERE id = %s", (batch_id,))


_COMPLETE = (
    "UPDATE export_batches SET status = 'completed', storage_key = %s, filename = %s, content_type = %s, "
    "size_bytes = %s, sha256 = %s, journals = %s, completed_at = now() "
    f"WHERE id = %s AND status = 'pending' RETURNING {BATCH}"
)


async def complete(
    sql: Sql,
    batch_id: int,
    *,
    storage_key: str,
    filename: str,
    content_type: str,
    size_bytes: int,
    sha256: str,
    journals: int,
) -> BatchRow | None:
    """The batch, completed; None when it was no longer pending (completed or failed before: nothing changes)."""
    params = (storage_key, filename, content_type, size_bytes, sha256, journals, batch_id)
    return await sql.row(BatchRow, _COMPLETE, params)


_FAIL = (
    "UPDATE export_batches SET status = 'failed', error = %s, completed_at = now() "
    f"WHERE id = %s AND status = 'pending' RETURNING {BATCH}"
)


async def fail(sql: Sql, batch_id: int, error: str) -> BatchRow | None:
    """The batch, failed with `error`; None when it was no longer pending."""
    return await sql.row(BatchRow, _FAIL, (error[:2000], batch_id))


_FILTERS = {"month": "month = %s", "format": "format = %s", "status": "status = %s"}


# The newest first, by number (unique, given in order): a cursor's `number < %s` is a range on its unique index.
KEYSET = Keyset("exports", ("number",), (int,))


async def page(
    sql: Sql, limit: int, offset: int, after: tuple[Any, ...] | None = None, **filters: date | str | None
) -> tuple[list[BatchRow], int]:
    """Batches, the newest first (after the key `after` when given), and how many match."""
    given = {name: value for name, value in filters.items() if value is not None}
    where = " AND ".join(_FILTERS[name] for name in given) or "true"
    params = tuple(given.values())
    total = int(await sql.scalar(f"SELECT count(*) FROM export_batches WHERE {where}", params))
    if after is not None:
        keyset, values = KEYSET.after_positional(after)
        where, params = f"{where} AND {keyset}", (*params, *values)
    rows = await sql.all(
        f"SELECT {BATCH} FROM export_batches WHERE {where} ORDER BY {KEYSET.order_by()} LIMIT %s OFFSET %s",
        (*params, limit, offset),
    )
    return [BatchRow(*row) for row in rows], total
