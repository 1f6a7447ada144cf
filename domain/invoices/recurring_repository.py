"""Every statement on `recurring_invoices`, in plain SQL (the style of domain/invoices/repository.py); rows come
back as RecurringRow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.sql import Sql, columns, row_of, width
from domain.errors import NotFound
from domain.invoices.repository import INVOICE, InvoiceRow
from domain.pagination import Keyset


@dataclass(frozen=True)
class RecurringRow:
    id: int
    template_id: int
    frequency: str
    starts_on: date
    count: int | None
    runs: int
    status: str
    owner_id: int
    version: int
    created_at: datetime
    updated_at: datetime


RECURRING = columns(RecurringRow, "r")
_ONE = f"SELECT {RECURRING} FROM recurring_invoices r WHERE r.id = %s"


async def recurring(sql: Sql, recurring_id: int, *, lock: bool = False) -> RecurringRow:
    found = await sql.row(RecurringRow, _ONE + (" FOR UPDATE" if lock else ""), (recurring_id,))
    if found is None:
        raise NotFound("recurring invoice not found", id=recurring_id)
    return found


async def recurring_of_template(sql: Sql, template_id: int, *, lock: bool = False) -> RecurringRow | None:
    return await sql.row(
        RecurringRow,
        f"SELECT {RECURRING} FROM recurring_invoices r WHERE r.template_id = %s" + (" FOR UPDATE" if lock else ""),
        (template_id,),
    )


async def insert(sql: Sql, fields: dict[str, Any]) -> RecurringRow:
    names = list(fields)
    return await sql.written(
        RecurringRow,
        f"INSERT INTO recurring_invoices AS r ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
        f"RETURNING {RECURRING}",
        tuple(fields.values()),
    )


async def update(sql: Sql, recurring_id: int, fields: dict[str, Any], *, bump: bool = False) -> RecurringRow:
    """`bump`: a change a client made (the version moves on)."""
    sets = ", ".join([*(f"{name} = %s" for name in fields), *(["version = version + 1"] if bump else [])])
    return await sql.written(
        RecurringRow,
        f"UPDATE recurring_invoices AS r SET {sets} WHERE r.id = %s RETURNING {RECURRING}",
        (*fields.values(), recurring_id),
    )


# Newest first, by id (the primary key serves a cursor's `r.id < %s` as a range).
KEYSET = Keyset("recurring-invoices", ("r.id",), (int,))


async def page(
    sql: Sql,
    owners: list[int] | None,
    status: str | None,
    limit: int,
    offset: int,
    after: tuple[Any, ...] | None = None,
) -> tuple[list[tuple[RecurringRow, InvoiceRow]], int]:
    """A page of recurring invoices with their templates, newest first, of these owners (None: everyone's) and
    status: from `offset`, or after the key `after`."""
    conditions: list[str] = []
    params: list[Any] = []
    if owners is not None:
        conditions.append("r.owner_id = ANY(%s)")
        params.append(owners)
    if status is not None:
        conditions.append("r.status = %s")
        params.append(status)
    where = " AND ".join(conditions) or "TRUE"
    total = int(await sql.scalar(f"SELECT count(*) FROM recurring_invoices r WHERE {where}", tuple(params)))
    if after is not None:
        condition, values = KEYSET.after_positional(after)
        where, params = f"{where} AND {condition}", [*params, *values]
    rows = await sql.all(
        f"SELECT {RECURRING}, {INVOICE} FROM recurring_invoices r JOIN invoices i ON i.id = r.template_id "
        f"WHERE {where} ORDER BY {KEYSET.order_by()} LIMIT %s OFFSET %s",
        (*params, limit, offset),
        prepare=False if owners is not None else None,  # the plan depends on how many owners the list holds
    )
    found: list[tuple[RecurringRow, InvoiceRow]] = []
    for values in rows:
        template = row_of(InvoiceRow, values, width(RecurringRow))
        assert template is not None
        found.append((RecurringRow(*values[: width(RecurringRow)]), template))
    return found, total
