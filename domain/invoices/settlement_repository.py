"""Every statement on `invoice_payments`, `credit_notes` and `credit_note_taxes`, in plain SQL; rows come back as the
dataclasses below (their fields are the tables' columns)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from core.sql import Sql, columns
from domain.pagination import Keyset


@dataclass(frozen=True)
class PaymentRow:
    id: int
    invoice_id: int
    amount: Decimal
    paid_on: date
    reference: str
    fx_rate: Decimal
    rate_source: str
    base_amount: Decimal
    booked_base: Decimal
    fx_difference: Decimal
    entry_id: int | None
    created_by_id: int
    created_at: datetime


@dataclass(frozen=True)
class CreditNoteRow:
    id: int
    invoice_id: int
    number: str
    amount: Decimal
    reason: str
    created_by_id: int
    created_at: datetime


@dataclass(frozen=True)
class CreditNoteTaxRow:
    credit_note_id: int
    tax_rate: Decimal
    net: Decimal
    tax: Decimal


R = TypeVar("R")

PAYMENT = columns(PaymentRow)
CREDIT_NOTE = columns(CreditNoteRow)
CREDIT_NOTE_TAX = columns(CreditNoteTaxRow)


async def _insert(sql: Sql, row_type: type[R], table: str, returning: str, fields: dict[str, Any]) -> R:
    names = list(fields)
    values = ", ".join(["%s"] * len(names))
    return await sql.written(
        row_type,
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values}) RETURNING {returning}",
        tuple(fields.values()),
    )


async def insert_payment(sql: Sql, fields: dict[str, Any]) -> PaymentRow:
    return await _insert(sql, PaymentRow, "invoice_payments", PAYMENT, fields)


# Oldest first, by id: an invoice's payments and credit notes are few (their invoice_id index finds them).
PAYMENTS_KEYSET = Keyset("invoice-payments", ("id",), (int,), descending=False)
CREDIT_NOTES_KEYSET = Keyset("credit-notes", ("id",), (int,), descending=False)


def _after(keyset: Keyset, after: tuple[Any, ...] | None) -> tuple[str, tuple[Any, ...]]:
    if after is None:
        return "", ()
    condition, values = keyset.after_positional(after)
    return f" AND {condition}", values


async def payments_page(
    sql: Sql, invoice_id: int, limit: int, offset: int, after: tuple[Any, ...] | None = None
) -> tuple[list[PaymentRow], int]:
    """An invoice's payments, oldest first (from `offset`, or after the key `after`), and how many it has."""
    total = int(await sql.scalar("SELECT count(*) FROM invoice_payments WHERE invoice_id = %s", (invoice_id,)))
    condition, values = _after(PAYMENTS_KEYSET, after)
    rows = await sql.all(
        f"SELECT {PAYMENT} FROM invoice_payments WHERE invoice_id = %s{condition} ORDER BY id LIMIT %s OFFSET %s",
        (invoice_id, *values, limit, offset),
    )
    return [PaymentRow(*row) for row in rows], total


async def insert_credit_note(sql: Sql, fields: dict[str, Any]) -> CreditNoteRow:
    return await _insert(sql, CreditNoteRow, "credit_notes", CREDIT_NOTE, fields)


async def credit_notes_page(
    sql: Sql, invoice_id: int, limit: int, offset: int, after: tuple[Any, ...] | None = None
) -> tuple[list[CreditNoteRow], int]:
    """An invoice's credit notes, oldest first (from `offset`, or after the key `after`), and how many it has."""
    total = int(await sql.scalar("SELECT count(*) FROM credit_notes WHERE invoice_id = %s", (invoice_id,)))
    condition, values = _after(CREDIT_NOTES_KEYSET, after)
    rows = await sql.all(
        f"SELECT {CREDIT_NOTE} FROM credit_notes WHERE invoice_id = %s{condition} ORDER BY id LIMIT %s OFFSET %s",
        (invoice_id, *values, limit, offset),
    )
    return [CreditNoteRow(*row) for row in rows], total


async def insert_credit_note_taxes(
    sql: Sql, credit_note_id: int, parts: Sequence[tuple[Decimal, Decimal, Decimal]]
) -> list[CreditNoteTaxRow]:
    """A credit note's split, (tax rate, net, tax) a part, in one statement; by tax rate."""
    rows = await sql.all(
        "INSERT INTO credit_note_taxes (credit_note_id, tax_rate, net, tax) "
        f"SELECT %s, * FROM unnest(%s::numeric[], %s::numeric[], %s::numeric[]) RETURNING {CREDIT_NOTE_TAX}",
        (credit_note_id, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]),
    )
    return sorted((CreditNoteTaxRow(*row) for row in rows), key=lambda row: row.tax_rate)


async def credit_note_taxes_of(sql: Sql, credit_note_ids: Sequence[int]) -> dict[int, list[CreditNoteTaxRow]]:
    """The credit notes' splits, each by tax rate."""
    found: dict[int, list[CreditNoteTaxRow]] = {}
    if not credit_note_ids:
        return found
    rows = await sql.all(
        f"SELECT {CREDIT_NOTE_TAX} FROM credit_note_taxes WHERE credit_note_id = ANY(%s) "
        "ORDER BY credit_note_id, tax_rate",
        (list(credit_note_ids),),
    )
    for row in rows:
        part = CreditNoteTaxRow(*row)
        found.setdefault(part.credit_note_id, []).append(part)
    return found


async def credited_by_tax_rate(sql: Sql, invoice_id: int) -> list[CreditNoteTaxRow]:
    """What an invoice's credit notes have credited at each tax rate, net and tax added up (`credit_note_id` 0)."""
    rows = await sql.all(
        "SELECT 0, t.tax_rate, sum(t.net), sum(t.tax) FROM credit_note_taxes t "
        "JOIN credit_notes n ON n.id = t.credit_note_id WHERE n.invoice_id = %s GROUP BY t.tax_rate ORDER BY 2",
        (invoice_id,),
    )
    return [CreditNoteTaxRow(*row) for row in rows]
