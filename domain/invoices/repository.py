"""Every statement on `customers`, `invoices` and `invoice_lines`, in plain SQL; rows come back as the dataclasses
below (their fields are the tables' columns, in order)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.sql import Sql, columns
from domain.errors import NotFound
from domain.pagination import Keyset


@dataclass(frozen=True)
class CustomerRow:
    id: int
    name: str
    billing_email: str
    currency: str
    payment_terms_days: int
    address: str
    version: int
    created_by_id: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InvoiceRow:
    id: int
    customer_id: int
    owner_id: int
    status: str
    is_template: bool
    currency: str
    issue_date: date
    due_date: date
    notes: str
    number: str | None
    number_year: int | None
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_paid: Decimal
    amount_credited: Decimal
    approval_request_id: int | None
    base_currency: str | None
    fx_rate: Decimal | None
    rate_date: date | None
    rate_source: str | None
    base_total: Decimal | None
    pdf_key: str | None
    submitted_at: datetime | None
    approved_at: datetime | None
    sent_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None
    recurring_id: int | None
    recurring_run_on: date | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def balance_due(self) -> Decimal:
        return self.total - self.amount_paid - self.amount_credited


@dataclass(frozen=True)
class LineRow:
    id: int
    invoice_id: int
    position: int
    kind: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    net: Decimal
    tax: Decimal
    reminder_step: int | None
    created_at: datetime


CUSTOMER = columns(CustomerRow)
INVOICE = columns(InvoiceRow, "i")
LINE = columns(LineRow)


# --- customers --------------------------------------------------------------------------------------------------


async def customer(sql: Sql, customer_id: int, *, lock: bool = False) -> CustomerRow:
    found = await sql.row(
        CustomerRow, f"SELECT {CUSTOMER} FROM customers WHERE id = %s" + (" FOR UPDATE" if lock else ""), (customer_id,)
    )
    if found is None:
        raise NotFound("customer not found", id=customer_id)
    return found


async def insert_customer(sql: Sql, fields: dict[str, Any], created_by_id: int) -> CustomerRow:
    names = [*fields, "created_by_id"]
    return await sql.written(
        CustomerRow,
        f"INSERT INTO customers ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) RETURNING {CUSTOMER}",
        (*fields.values(), created_by_id),
    )


async def update_customer(sql: Sql, customer_id: int, fields: dict[str, Any]) -> CustomerRow:
    sets = ", ".join(f"{name} = %s" for name in fields)
    return await sql.written(
        CustomerRow,
        f"UPDATE customers SET {sets}, version = version + 1 WHERE id = %s RETURNING {CUSTOMER}",
        (*fields.values(), customer_id),
    )


# By name; ix_customers_lower_name serves a cursor's `(lower(name), id) > (%s, %s)` as a range on the name.
CUSTOMERS_KEYSET = Keyset("customers", ("lower(name)", "id"), (str, int), descending=False)


async def customers_page(
    sql: Sql, name: str | None, limit: int, offset: int, after: tuple[Any, ...] | None = None
) -> tuple[list[tuple[CustomerRow, tuple[str, int]]], int]:
    """Customers by name (those whose name holds `name`), `limit` from `offset` or after the key `after`; each
    with its key as the database sorts it (its lower(), not Python's, which differs on some letters)."""
    # The name's own % and _ are matched as themselves, not as patterns.
    pattern = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if name else ""
    condition, params = ("lower(name) LIKE %s", (f"%{pattern}%",)) if name else ("TRUE", ())
    total = int(await sql.scalar(f"SELECT count(*) FROM customers WHERE {condition}", params))
    if after is not None:
        keyset, values = CUSTOMERS_KEYSET.after_positional(after)
        condition, params = f"{condition} AND {keyset}", (*params, *values)
    rows = await sql.all(
        f"SELECT {CUSTOMER}, lower(name) FROM customers WHERE {condition} ORDER BY {CUSTOMERS_KEYSET.order_by()} "
        "LIMIT %s OFFSET %s",
        (*params, limit, offset),
    )
    return [(CustomerRow(*row[:-1]), (row[-1], row[0])) for row in rows], total


# --- invoices ---------------------------------------------------------------------------------------------------

_INVOICE = f"SELECT {INVOICE} FROM invoices i WHERE i.id = %s"


async def invoice(sql: Sql, invoice_id: int, *, lock: bool = False) -> InvoiceRow:
    found = await sql.row(InvoiceRow, _INVOICE + (" FOR UPDATE" if lock else ""), (invoice_id,))
    if found is None:
        raise NotFound("invoice not found", id=invoice_id)
    return found


async def invoice_of_request(sql: Sql, request_id: int, *, lock: bool = False) -> InvoiceRow | None:
    return await sql.row(
        InvoiceRow,
        f"SELECT {INVOICE} FROM invoices i WHERE i.approval_request_id = %s" + (" FOR UPDATE" if lock else ""),
        (request_id,),
    )


async def run_invoice(sql: Sql, recurring_id: int, run_on: date) -> InvoiceRow | None:
    """The invoice a recurring invoice's run of `run_on` made, if one did (unique per recurring invoice and date)."""
    return await sql.row(
        InvoiceRow,
        f"SELECT {INVOICE} FROM invoices i WHERE i.recurring_id = %s AND i.recurring_run_on = %s",
        (recurring_id, run_on),
    )


async def insert_invoice(sql: Sql, fields: dict[str, Any]) -> InvoiceRow:
    names = list(fields)
    return await sql.written(
        InvoiceRow,
        f"INSERT INTO invoices AS i ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) RETURNING {INVOICE}",
        tuple(fields.values()),
    )


async def update_invoice(sql: Sql, invoice_id: int, fields: dict[str, Any], *, bump: bool = False) -> InvoiceRow:
    """`bump`: a change a client made (its If-Match version moves on)."""
    sets = ", ".join([*(f"{name} = %s" for name in fields), *(["version = version + 1"] if bump else [])])
    return await sql.written(
        InvoiceRow,
        f"UPDATE invoices AS i SET {sets} WHERE i.id = %s RETURNING {INVOICE}",
        (*fields.values(), invoice_id),
    )


async def delete_invoice(sql: Sql, invoice_id: int) -> None:
    await sql.run("DELETE FROM invoices WHERE id = %s", (invoice_id,))


async def lines_of(sql: Sql, invoice_ids: Sequence[int]) -> dict[int, list[LineRow]]:
    found: dict[int, list[LineRow]] = {}
    if not invoice_ids:
        return found
    rows = await sql.all(
        f"SELECT {LINE} FROM invoice_lines WHERE invoice_id = ANY(%s) ORDER BY invoice_id, position",
        (list(invoice_ids),),
    )
    for row in rows:
        line = LineRow(*row)
        found.setdefault(line.invoice_id, []).append(line)
    return found


_INSERT_LINES = (
    "INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price, tax_rate, net, tax, "
    "reminder_step) SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::text[], %s::numeric[], %s::numeric[], "
    f"%s::numeric[], %s::numeric[], %s::numeric[], %s::int[]) RETURNING {LINE}"
)


@dataclass(frozen=True)
class NewLine:
    position: int
    kind: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    net: Decimal
    tax: Decimal
    reminder_step: int | None = None


async def insert_lines(sql: Sql, invoice_id: int, lines: Sequence[NewLine]) -> list[LineRow]:
    """The lines in one statement; a late fee's (invoice, step) is unique, so a retried fee raises UniqueViolation."""
    columns_of = [[getattr(line, name) for line in lines] for name in NewLine.__dataclass_fields__]
    rows = await sql.all(_INSERT_LINES, (invoice_id, *columns_of))
    return sorted((LineRow(*row) for row in rows), key=lambda line: line.position)


async def delete_lines(sql: Sql, invoice_id: int) -> None:
    await sql.run("DELETE FROM invoice_lines WHERE invoice_id = %s", (invoice_id,))


async def customer_names(sql: Sql, customer_ids: Sequence[int]) -> dict[int, str]:
    rows = await sql.all("SELECT id, name FROM customers WHERE id = ANY(%s)", (list(set(customer_ids)),))
    return {row[0]: row[1] for row in rows}
