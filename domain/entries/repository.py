"""Every statement on `entries`, in plain SQL on the transaction's connection; rows come back as `EntryRow`s.

A write answers with the row as it now is (RETURNING), so no caller works on a stale copy. `updated_at`, the
version and the dashboard's totals follow every write by themselves (database triggers, migration 0007).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.sql import Sql, columns, row_of, width
from domain.approvals.repository import pending_step_of
from domain.fx.rates import Locked
from domain.models import EntryStatus
from domain.models.rows import EntryRow, RequestRow, StepRow
from domain.pagination import Keyset

ENTRY = columns(EntryRow, "e")
_RETURNING = f"RETURNING {columns(EntryRow)}"

_BY_ID = f"SELECT {ENTRY} FROM entries e WHERE e.id = %s"
_OF_KIND = _BY_ID + " AND e.kind = %s"


async def get(sql: Sql, entry_id: int, kind: str | None = None, *, lock: bool = False) -> EntryRow | None:
    """The entry (of this kind, when given), locked for the transaction's rest when `lock`."""
    query = (_OF_KIND if kind is not None else _BY_ID) + (" FOR UPDATE" if lock else "")
    return await sql.row(EntryRow, query, (entry_id, kind) if kind is not None else (entry_id,))


_WITH_APPROVAL = (
    f"SELECT {ENTRY}, {columns(RequestRow, 'r')}, {columns(StepRow, 's')} FROM entries e "
    "LEFT JOIN approval_requests r ON r.id = e.approval_request_id "
    f"LEFT JOIN LATERAL ({pending_step_of('e.approval_request_id')}) s ON true WHERE e.id = %s AND e.kind = %s"
)


async def with_approval(
    sql: Sql, entry_id: int, kind: str
) -> tuple[EntryRow, RequestRow | None, StepRow | None] | None:
    """The entry, its approval request and the request's open step, in one read (what a decision needs)."""
    values = await sql.one(_WITH_APPROVAL, (entry_id, kind))
    if values is None:
        return None
    return (
        EntryRow(*values[: width(EntryRow)]),
        row_of(RequestRow, values, width(EntryRow)),
        row_of(StepRow, values, width(EntryRow) + width(RequestRow)),
    )


@dataclass(frozen=True)
class NewEntry:
    kind: str
    owner_id: int
    amount: Decimal
    currency: str
    category: str
    description: str
    entry_date: date
    source: str | None
    vendor: str | None


_INSERT = (
    "INSERT INTO entries (kind, owner_id, amount, currency, category, description, entry_date, source, vendor, "
    f"status, version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'draft', 1) {_RETURNING}"
)


async def insert(sql: Sql, new: NewEntry) -> EntryRow:
    """A new draft."""
    params = (
        new.kind,
        new.owner_id,
        new.amount,
        new.currency,
        new.category,
        new.description,
        new.entry_date,
        new.source,
        new.vendor,
    )
    return await sql.written(EntryRow, _INSERT, params)


# The columns an edit may set (the SQL names only these, whatever a caller hands in).
EDITABLE = ("amount", "currency", "category", "description", "entry_date", "source", "vendor")


async def update_fields(sql: Sql, entry_id: int, changes: dict[str, Any]) -> EntryRow:
    """Set the given editable fields."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    names = [name for name in EDITABLE if name in changes]
    assignments = ", ".join(f"{name} = %s" for name in names)
    query = f"UPDATE entries SET {assignments} WHERE id = %s {_RETURNING}"
    return await sql.written(EntryRow, query, (*(changes[name] for name in names), entry_id))


_SET_STATUS = (
    "UPDATE entries SET status = %s, decided_at = CASE WHEN %s THEN %s ELSE decided_at END, "
    f"submitted_at = CASE WHEN %s THEN %s ELSE submitted_at END WHERE id = %s {_RETURNING}"
)


async def set_status(
    sql: Sql, entry_id: int, status: str, *, decided_at: datetime | None = None, submitted_at: datetime | None = None
) -> EntryRow:
    """The entry's new status; the times are set when given."""
    params = (status, decided_at is not None, decided_at, submitted_at is not None, submitted_at, entry_id)
    return await sql.written(EntryRow, _SET_STATUS, params)


_SUBMIT = (
    "UPDATE entries SET status = 'pending', approval_request_id = %s, workflow_id = %s, submitted_at = %s, "
    "decided_at = NULL, base_currency = %s, fx_rate = %s, rate_date = %s, rate_source = %s, base_amount = %s "
    f"WHERE id = %s {_RETURNING}"
)


async def submit(sql: Sql, entry_id: int, request: RequestRow, at: datetime, fx: Locked) -> EntryRow:
    """The entry pending under `request` (its decision time cleared, its submission time `at`), with the rate
    locked for it."""
    rate = fx.rate
    params = (request.id, request.workflow_id, at, fx.base_currency, rate.rate, rate.day, rate.source,
              fx.base_amount, entry_id)  # fmt: skip
    return await sql.written(EntryRow, _SUBMIT, params)


_RELOCK = (
    "UPDATE entries SET base_currency = %s, fx_rate = %s, rate_date = %s, rate_source = %s, base_amount = %s "
    f"WHERE id = %s {_RETURNING}"
)


async def relock(sql: Sql, entry_id: int, fx: Locked) -> EntryRow:
    """The rate locked again (a resubmission after changes: the amount, currency or date may have changed)."""
    rate = fx.rate
    return await sql.written(EntryRow, _RELOCK, (fx.base_currency, rate.rate, rate.day, rate.source,
                                                 fx.base_amount, entry_id))  # fmt: skip


# A draft again holds no locked rate: its next submit locks one.
_UNSUBMIT = (
    "UPDATE entries SET status = 'draft', submitted_at = NULL, base_currency = NULL, fx_rate = NULL, "
    f"rate_date = NULL, rate_source = NULL, base_amount = NULL WHERE id = %s {_RETURNING}"
)


async def unsubmit(sql: Sql, entry_id: int) -> EntryRow:
    """The entry back to a draft (its submission was undone)."""
    return await sql.written(EntryRow, _UNSUBMIT, (entry_id,))


async def delete(sql: Sql, entry_id: int) -> None:
    await sql.run("DELETE FROM entries WHERE id = %s", (entry_id,))


# --- the list ----------------------------------------------------------------------------------------------

LIST_COUNT_CAP = 1_000


@dataclass(frozen=True)
class ListQuery:
    """What a list asks for, already checked (the entries service builds it from the viewer and the filters)."""

    kind: str
    owners: list[int] | None  # None: every owner
    status: EntryStatus | None
    category: str | None
    owner_id: int | None
    date_from: date | None
    date_to: date | None
    amount_min: Decimal | None
    amount_max: Decimal | None
    sort_column: str  # "entry_date" or "amount"
    descending: bool
    limit: int  # rows to read (a keyset page reads one more than it shows)
    offset: int
    after: tuple[Any, ...] | None = None  # the (sort value, id) of the row a cursor names: rows strictly past it
    updated_since: datetime | None = None  # delta sync: rows changed (updated_at) at or after it

    @property
    def keyset(self) -> Keyset:
        """The order as a keyset: its scope keeps a cursor to this kind and this sort."""
        column = {"entry_date": "entry_date", "amount": "amount"}[self.sort_column]  # never a caller's text in SQL
        kind = date if column == "entry_date" else Decimal
        scope = f"{self.kind}:{column}:{'desc' if self.descending else 'asc'}"
        return Keyset(scope, (column, "id"), (kind, int), self.descending)

    def where(self) -> tuple[str, dict[str, Any]]:
        conditions = ["kind = %(kind)s"]
        params: dict[str, Any] = {"kind": self.kind}
        optional = (
            ("owner_id = ANY(%(owners)s)", "owners", self.owners),
            ("status = %(status)s", "status", self.status.value if self.status else None),
            ("lower(category) = %(category)s", "category", self.category.strip().lower() if self.category else None),
            ("owner_id = %(owner_id)s", "owner_id", self.owner_id),
            ("entry_date >= %(date_from)s", "date_from", self.date_from),
            ("entry_date <= %(date_to)s", "date_to", self.date_to),
            ("amount >= %(amount_min)s", "amount_min", self.amount_min),
            ("amount <= %(amount_max)s", "amount_max", self.amount_max),
            ("updated_at >= %(updated_since)s", "updated_since", self.updated_since),
        )
        for condition, name, value in optional:
            if value is not None:
                conditions.append(condition)
                params[name] = value
        return " AND ".join(conditions), params


async def page(sql: Sql, query: ListQuery) -> tuple[list[EntryRow], int]:
    """One page of the entries matching `query`, and how many match, counted up to LIST_COUNT_CAP + 1.

    The page's ids come first, from the list indexes alone (they cover every filter column, migration 0006: no heap
    fetch for the rows a filter skips), then only those rows are read, each carrying the capped count: one round
    trip for page and total. Counting every match of a broad filter over millions of rows would cost more than the
    page itself. A cursor's page starts after its row with `(sort, id) < (%s, %s)`: the same (kind, sort, id)
    indexes answer it as a range, so a deep page costs what the first one does (an offset one reads every row
    before it). The count ignores the cursor: it is how many match the filters."""
    where, params = query.where()
    keyset = query.keyset
    chosen_where = where
    if query.after is not None:
        after, after_params = keyset.after(query.after)
        chosen_where = f"{where} AND {after}"
        params |= after_params
    column, direction = keyset.columns[0], keyset.direction
    params |= {"limit": query.limit, "offset": query.offset, "cap": LIST_COUNT_CAP + 1}
    counted = f"(SELECT count(*) FROM (SELECT id FROM entries WHERE {where} LIMIT %(cap)s) matching)"
    chosen = (
        f"SELECT id FROM entries WHERE {chosen_where} ORDER BY {keyset.order_by()} LIMIT %(limit)s OFFSET %(offset)s"
    )
    statement = (
        f"SELECT {ENTRY}, {counted} FROM entries e JOIN ({chosen}) chosen ON chosen.id = e.id "
        f"ORDER BY e.{column} {direction}, e.id {direction}"
    )
    rows = await sql.all(statement, params, prepare=query.owners is None)
    if rows:
        return [EntryRow(*values[: width(EntryRow)]) for values in rows], int(rows[0][-1])
    if query.offset == 0 and query.after is None:
        return [], 0  # an empty first page: nothing matches
    return [], int(await sql.scalar(f"SELECT {counted}", params))  # past the end: still say how many there are


def sort_key(row: EntryRow, query: ListQuery) -> tuple[Any, ...]:
    """The row's key in the list's order (what its cursor carries): the stored value, not the one shown."""
    return (row.entry_date if query.sort_column == "entry_date" else row.amount, row.id)
