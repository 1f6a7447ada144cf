"""Every statement on `accounts`, `account_mappings`, `periods`, `journals` and `journal_lines`, in plain SQL; rows
come back as the dataclasses below (their fields are the tables' columns)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.sql import Sql, columns, width
from domain.pagination import Keyset

# --- accounts ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRow:
    id: int
    code: str
    name: str
    type: str
    tax_code: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


ACCOUNT = columns(AccountRow, "a")
_ACCOUNT_RETURNING = f"RETURNING {columns(AccountRow)}"


async def account(sql: Sql, account_id: int, *, lock: bool = False) -> AccountRow | None:
    query = f"SELECT {ACCOUNT} FROM accounts a WHERE a.id = %s" + (" FOR UPDATE" if lock else "")
    return await sql.row(AccountRow, query, (account_id,))


async def accounts_by_code(sql: Sql, codes: Sequence[str]) -> dict[str, AccountRow]:
    rows = await sql.all(f"SELECT {ACCOUNT} FROM accounts a WHERE a.code = ANY(%s)", (list(codes),))
    found = [AccountRow(*values) for values in rows]
    return {row.code: row for row in found}


async def insert_account(sql: Sql, fields: dict[str, Any]) -> AccountRow | None:
    """The new account; None when its code is taken (the unique index decides, so two at once cannot both win)."""
    query = (
        "INSERT INTO accounts (code, name, type, tax_code, active) VALUES (%s, %s, %s, %s, %s) "
        f"ON CONFLICT (code) DO NOTHING {_ACCOUNT_RETURNING}"
    )
    params = (fields["code"], fields["name"], fields["type"], fields["tax_code"], fields["active"])
    return await sql.row(AccountRow, query, params)


# The columns a change may set (the SQL names only these, whatever a caller hands in).
ACCOUNT_EDITABLE = ("code", "name", "type", "tax_code", "active")


async def update_account(sql: Sql, account_id: int, changes: dict[str, Any]) -> AccountRow | None:
    """The account changed; None when a new code is taken."""
    names = [name for name in ACCOUNT_EDITABLE if name in changes]
    assignments = ", ".join(f"{name} = %s" for name in names)
    query = (
        f"UPDATE accounts SET {assignments} WHERE id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM accounts o WHERE o.code = %s AND o.id <> %s) {_ACCOUNT_RETURNING}"
    )
    code = changes.get("code", "")
    return await sql.row(AccountRow, query, (*(changes[name] for name in names), account_id, code, account_id))


# By code (unique): a cursor's `code > %s` is a range on uq_accounts_code.
ACCOUNTS_KEYSET = Keyset("accounts", ("a.code",), (str,), descending=False)


async def accounts_page(
    sql: Sql,
    account_type: str | None,
    active: bool | None,
    limit: int,
    offset: int,
    after: tuple[Any, ...] | None = None,
) -> tuple[list[AccountRow], int]:
    """Accounts by code (after the key `after` when given), and how many match."""
    conditions: list[str] = ["true"]
    params: list[Any] = []
    if account_type is not None:
        conditions.append("a.type = %s")
        params.append(account_type)
    if active is not None:
        conditions.append("a.active = %s")
        params.append(active)
    where = " AND ".join(conditions)
    total = int(await sql.scalar(f"SELECT count(*) FROM accounts a WHERE {where}", params))
    if after is not None:
        keyset, values = ACCOUNTS_KEYSET.after_positional(after)
        where, params = f"{where} AND {keyset}", [*params, *values]
    query = f"SELECT {ACCOUNT} FROM accounts a WHERE {where} ORDER BY {ACCOUNTS_KEYSET.order_by()} LIMIT %s OFFSET %s"
    rows = await sql.all(query, (*params, limit, offset))
    return [AccountRow(*values) for values in rows], total


async def any_account(sql: Sql) -> bool:
    return bool(await sql.scalar("SELECT EXISTS (SELECT 1 FROM accounts)"))


# --- the mapping ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedRow:
    """A mapping and the account it names."""

    kind: str
    key: str
    account: AccountRow


async def mappings(sql: Sql) -> list[MappedRow]:
    """The mapping in force, by kind and key."""
    query = (
        f"SELECT m.kind, m.key, {ACCOUNT} FROM account_mappings m JOIN accounts a ON a.id = m.account_id "
        "ORDER BY m.kind, m.key"
    )
    rows = await sql.all(query)
    return [MappedRow(values[0], values[1], AccountRow(*values[2:])) for values in rows]


async def lock_mappings(sql: Sql) -> None:
    """Until the transaction ends, nobody else replaces the mapping or changes a mapped account (each takes this
    lock first, then the accounts' rows: one order, no deadlock); reading it is not held up."""
    await sql.run("LOCK TABLE account_mappings IN SHARE ROW EXCLUSIVE MODE")


async def roles_of(sql: Sql, account_id: int) -> list[tuple[str, str]]:
    """The (kind, key) pairs the account is mapped under."""
    rows = await sql.all(
        "SELECT kind, key FROM account_mappings WHERE account_id = %s ORDER BY kind, key", (account_id,)
    )
    return [(str(kind), str(key)) for kind, key in rows]


async def replace_mappings(sql: Sql, pairs: Sequence[tuple[str, str, int]]) -> None:
    """The mapping becomes `pairs` of (kind, key, account id): one statement out, one in."""
    await sql.run("DELETE FROM account_mappings")
    if pairs:
        await sql.run(
            "INSERT INTO account_mappings (kind, key, account_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])",
            ([kind for kind, _, _ in pairs], [key for _, key, _ in pairs], [account_id for _, _, account_id in pairs]),
        )


# --- periods -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodRow:
    month: date
    status: str
    closed_by_id: int | None
    closed_at: datetime | None
    reopened_by_id: int | None
    reopened_at: datetime | None
    closings: int


PERIOD = columns(PeriodRow, "p")
_PERIOD_RETURNING = f"RETURNING {columns(PeriodRow)}"


async def period(sql: Sql, month: date, *, lock: bool = False) -> PeriodRow | None:
    query = f"SELECT {PERIOD} FROM periods p WHERE p.month = %s" + (" FOR UPDATE" if lock else "")
    return await sql.row(PeriodRow, query, (month,))


async def locked_period(sql: Sql, month: date) -> PeriodRow:
    """The month's row, made (open, never closed) when it has none, and locked for the transaction."""
    await sql.run(
        "INSERT INTO periods (month, status, closings) VALUES (%s, 'open', 0) ON CONFLICT DO NOTHING", (month,)
    )
    found = await period(sql, month, lock=True)
    assert found is not None
    return found


async def close_period(sql: Sql, month: date, closing: int, by: int, at: datetime) -> PeriodRow:
    query = (
        f"UPDATE periods SET status = 'closed', closings = %s, closed_by_id = %s, closed_at = %s WHERE month = %s "
        f"{_PERIOD_RETURNING}"
    )
    return await sql.written(PeriodRow, query, (closing, by, at, month))


async def reopen_period(sql: Sql, month: date, by: int, at: datetime) -> PeriodRow:
    query = (
        f"UPDATE periods SET status = 'open', reopened_by_id = %s, reopened_at = %s WHERE month = %s "
        f"{_PERIOD_RETURNING}"
    )
    return await sql.written(PeriodRow, query, (by, at, month))


# The latest month first (one row a month): a cursor's `month < %s` is a range on the primary key.
PERIODS_KEYSET = Keyset("periods", ("p.month",), (date,))


async def periods_page(
    sql: Sql, limit: int, offset: int, after: tuple[Any, ...] | None = None
) -> tuple[list[PeriodRow], int]:
    """The months closed at least once, the latest first (after the key `after` when given)."""
    total = int(await sql.scalar("SELECT count(*) FROM periods WHERE closings > 0"))
    condition, params = "p.closings > 0", ()
    if after is not None:
        keyset, params = PERIODS_KEYSET.after_positional(after)
        condition = f"{condition} AND {keyset}"
    rows = await sql.all(
        f"SELECT {PERIOD} FROM periods p WHERE {condition} ORDER BY {PERIODS_KEYSET.order_by()} LIMIT %s OFFSET %s",
        (*params, limit, offset),
    )
    return [PeriodRow(*values) for values in rows], total


async def lock_month(sql: Sql, lock_class: int, key: int) -> None:
    """The month's advisory lock, alone (every write of an entry of the month holds it shared: migration 0014)."""
    await sql.run("SELECT pg_advisory_xact_lock(%s::int, %s::int)", (lock_class, key))


async def waiting_on_decisions(sql: Sql, month: date, following: date) -> tuple[int, int]:
    """What dated in the month waits on a decision: entries pending or returned for changes, and invoices (not
    templates) pending approval, whose approval would book them in the month."""
    row = await sql.one(
        "SELECT (SELECT count(*) FROM entries WHERE kind IN ('expense', 'revenue') "
        "AND status IN ('pending', 'changes_requested') AND entry_date >= %s AND entry_date < %s), "
        "(SELECT count(*) FROM invoices WHERE status = 'pending_approval' AND NOT is_template "
        "AND issue_date >= %s AND issue_date < %s)",
        (month, following, month, following),
    )
    assert row is not None
    return int(row[0]), int(row[1])


# --- journals ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalRow:
    id: int
    month: date
    closing: int
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


@dataclass(frozen=True)
class JournalLineRow:
    journal_id: int
    line_no: int
    account_code: str
    account_name: str
    debit: Decimal
    credit: Decimal
    currency: str
    original_amount: Decimal
    rate: Decimal
    tax_code: str
    cost_center: str
    description: str

    @property
    def is_debit(self) -> bool:
        return self.debit > 0

    @property
    def base_amount(self) -> Decimal:
        """The line's amount in the base currency, whichever side it is on (the other side is zero)."""
        return self.debit if self.debit > 0 else self.credit


@dataclass(frozen=True)
class FrozenJournal(JournalRow):
    """A journal a closing wrote, with its lines in line order: what the journal pages and every export read."""

    lines: tuple[JournalLineRow, ...] = ()

    @classmethod
    def of(cls, head: Sequence[Any], lines: Sequence[JournalLineRow]) -> FrozenJournal:
        """From a row of `JOURNAL`'s columns and its lines."""
        return cls(**dict(zip(_JOURNAL_FIELDS, head, strict=True)), lines=tuple(lines))


JOURNAL = columns(JournalRow, "j")
_JOURNAL_FIELDS = columns(JournalRow).split(", ")
LINE = columns(JournalLineRow, "l")
# The journal columns an insert sets (all but the id), in order.
_JOURNAL_INSERTED = [name for name in columns(JournalRow).split(", ") if name != "id"]
_LINE_INSERTED = columns(JournalLineRow).split(", ")
# Postgres array types of those columns, for unnest.
_JOURNAL_TYPES = (
    "date",
    "int",
    "text",
    "date",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "text",
)
_LINE_TYPES = (
    "bigint",
    "int",
    "text",
    "text",
    "numeric",
    "numeric",
    "text",
    "numeric",
    "numeric",
    "text",
    "text",
    "text",
)


async def insert_journals(
    sql: Sql, journals: Sequence[tuple[Any, ...]], lines: Sequence[Sequence[tuple[Any, ...]]]
) -> int:
    """Insert the journals (values in `JournalRow` order, without the id) and each one's lines (values in
    `JournalLineRow` order, without the journal id), in their order (their ids ascend with it): three statements
    whatever their number. The number of lines written."""
    if not journals:
        return 0
    ids = [int(row[0]) for row in await sql.all("SELECT nextval('journals_id_seq') FROM generate_series(1, %s)",
                                                     (len(journals),))]  # fmt: skip
    ids.sort()
    await sql.run(
        f"INSERT INTO journals (id, {', '.join(_JOURNAL_INSERTED)}) SELECT * FROM unnest(%s::bigint[], "
        + ", ".join(f"%s::{kind}[]" for kind in _JOURNAL_TYPES)
        + ")",
        (ids, *(list(column) for column in zip(*journals, strict=True))),
    )
    flat = [(journal_id, *line) for journal_id, journal_lines in zip(ids, lines, strict=True) for line in journal_lines]
    if flat:
        await sql.run(
            f"INSERT INTO journal_lines ({', '.join(_LINE_INSERTED)}) SELECT * FROM unnest("
            + ", ".join(f"%s::{kind}[]" for kind in _LINE_TYPES)
            + ")",
            tuple(list(column) for column in zip(*flat, strict=True)),
        )
    return len(flat)


async def frozen_page(
    sql: Sql, month: date, closing: int, limit: int, offset: int, after_id: int | None = None
) -> tuple[list[FrozenJournal], int, Decimal, Decimal]:
    """A page of the journals one closing of the month wrote (in the order it wrote them, after the journal
    `after_id` when given) with their lines, how many it wrote, and its debit and credit totals."""
    totals = await sql.one(
        "SELECT count(DISTINCT j.id), coalesce(sum(l.debit), 0), coalesce(sum(l.credit), 0) FROM journals j "
        "LEFT JOIN journal_lines l ON l.journal_id = j.id WHERE j.month = %s AND j.closing = %s",
        (month, closing),
    )
    assert totals is not None
    heads = await sql.all(
        f"SELECT {JOURNAL} FROM journals j WHERE j.month = %s AND j.closing = %s AND j.id > %s "
        "ORDER BY j.id LIMIT %s OFFSET %s",
        (month, closing, after_id or 0, limit, offset),
    )
    lines: dict[int, list[JournalLineRow]] = {int(head[0]): [] for head in heads}
    if heads:
        for values in await sql.all(
            f"SELECT {LINE} FROM journal_lines l WHERE l.journal_id = ANY(%s) ORDER BY l.journal_id, l.line_no",
            (list(lines),),
        ):
            line = JournalLineRow(*values)
            lines[line.journal_id].append(line)
    frozen = [FrozenJournal.of(head, lines[int(head[0])]) for head in heads]
    return frozen, int(totals[0]), totals[1], totals[2]


# --- a closing, as the exports read it -------------------------------------------------------------------------
# A month's export reads the journals of its latest closing, and a batch keeps which closing that was: a month
# reopened and closed again gets new journals under a new closing number, so a batch's bytes stay those of the
# closing it was made from.


async def closed_period(sql: Sql, month: date, *, hold: bool = False) -> PeriodRow | None:
    """The month's row while it is closed, else None. `hold` reads it FOR SHARE: a reopening (an UPDATE of the row)
    then waits until the reader commits, so an export is never recorded for, or made from, a closing that was
    reopened meanwhile."""
    query = f"SELECT {PERIOD} FROM periods p WHERE p.month = %s AND p.status = 'closed'" + (
        " FOR SHARE" if hold else ""
    )
    return await sql.row(PeriodRow, query, (month,))


async def closing_size(sql: Sql, month: date, closing: int) -> tuple[int, int]:
    """How many journals with lines (the ones exported) and lines a closing holds."""
    row = await sql.one(
        "SELECT count(DISTINCT j.id), count(*) FROM journals j JOIN journal_lines l ON l.journal_id = j.id "
        "WHERE j.month = %s AND j.closing = %s",
        (month, closing),
    )
    assert row is not None
    return int(row[0]), int(row[1])


# The order is part of an export's file (two batches of one closing are byte-identical): journal date, then number
# (compared byte by byte, `COLLATE "C"`, so no database's locale changes it), then id, then line number.
_CLOSING_JOURNALS = (
    f"SELECT {JOURNAL}, {LINE} FROM journals j JOIN journal_lines l ON l.journal_id = j.id "
    'WHERE j.month = %s AND j.closing = %s ORDER BY j.journal_date, j.number COLLATE "C", j.id, l.line_no'
)


async def closing_journals(
    sql: Sql, month: date, closing: int, batch_size: int = 1000
) -> AsyncIterator[list[FrozenJournal]]:
    """A closing's journals in export order, a batch at a time, from a server-side cursor (memory stays flat however
    large the month). A journal without lines has nothing to export and is left out. Read it in a transaction: a
    server-side cursor lives in one."""
    split = width(JournalRow)
    head: tuple[Any, ...] | None = None
    lines: list[JournalLineRow] = []
    batch: list[FrozenJournal] = []
    async with sql.connection.cursor(name="closing_journals") as cursor:
        await cursor.execute(_CLOSING_JOURNALS, (month, closing))
        while rows := await cursor.fetchmany(batch_size):
            for row in rows:
                if head is not None and row[0] != head[0]:
                    batch.append(FrozenJournal.of(head, lines))
                    lines = []
                head = tuple(row[:split])
                lines.append(JournalLineRow(*row[split:]))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if head is not None:
        batch.append(FrozenJournal.of(head, lines))
    if batch:
        yield batch
