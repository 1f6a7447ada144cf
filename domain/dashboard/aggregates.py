"""Dashboard aggregates, maintained in the same transaction that changes an entry's status.

The entries service calls `entry_status_changed` after every status change (submit, decision, withdraw,
expiry, delete of a draft), so the dashboard never shows stale numbers.

Concurrency: each call is ONE statement, per table an `INSERT ... ON CONFLICT DO UPDATE` that adds relative deltas
(`count = count + d`), so concurrent transactions never lose an update (the second waits for the first's row lock,
then adds to the committed value). The tables are written in one fixed order and the (at most two) rows of each in
a fixed order (sorted by key), so two transactions that each move one entry lock rows in the same order and cannot
deadlock on these tables. Contention is per owner, kind,
month, category and status: two approvals only wait for each other when all five match.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.sql import Db, sql_of
from domain.models import Entry, EntryStatus
from domain.models.rows import EntryRow

# Drafts and entries returned for changes are edited (amount, category, date) without a status change, so they are
# not counted: the totals only hold entries whose amount, category and date can no longer change.
AGGREGATED_STATUSES = frozenset(
    {EntryStatus.PENDING, EntryStatus.APPROVED, EntryStatus.REJECTED, EntryStatus.WITHDRAWN, EntryStatus.EXPIRED}
)


def month_of(day: date) -> date:
    return day.replace(day=1)


async def entry_status_changed(session: Db, entry: Entry | EntryRow, old_status: str | None) -> None:
    """Move the entry's amount from its old status bucket to its new one (`old_status` None: a new entry), in
    `dashboard_entry_totals`, `dashboard_owner_totals` and `dashboard_category_totals` (always in that order)."""
    new_status = entry.status
    if old_status == new_status:
        return
    changes: list[tuple[str, int, Decimal]] = []
    amount = Decimal(entry.amount)
    if old_status is not None and old_status in AGGREGATED_STATUSES:
        changes.append((str(old_status), -1, -amount))
    if new_status in AGGREGATED_STATUSES:
        changes.append((str(new_status), 1, amount))
    if not changes:
        return
    changes.sort()  # one lock order for every transaction
    params: dict[str, object] = {
        "owner_id": entry.owner_id,
        "kind": str(entry.kind),
        "month": month_of(entry.entry_date),
        "category": entry.category,
    }
    for index, (status, count, total) in enumerate(changes):
        params |= {f"status_{index}": status, f"count_{index}": count, f"amount_{index}": total}
    await (await sql_of(session)).run(_upsert_statement(len(changes)), params)


# The three tables and their keys, in the order their rows are written.
_TOTALS = (
    ("dashboard_entry_totals", ("owner_id", "kind", "month", "category")),
    ("dashboard_owner_totals", ("owner_id", "month", "kind")),
    ("dashboard_category_totals", ("month", "kind", "category")),
)


@functools.cache
def _upsert_statement(rows: int) -> str:
    """The three tables' upserts as ONE statement (one round trip per status change). Every caller runs this same
    statement, whose plan writes the tables in one fixed order, so transactions still lock rows in one order."""
    upserts = []
    for table, keys in _TOTALS:
        values = ", ".join(
            "("
            + ", ".join([*(f"%({key})s" for key in keys), f"%(status_{i})s", f"%(count_{i})s", f"%(amount_{i})s"])
            + ")"
            for i in range(rows)
        )
        upserts.append(
            f"INSERT INTO {table} AS t ({', '.join(keys)}, status, entry_count, amount_total) VALUES {values} "
            f"ON CONFLICT ON CONSTRAINT pk_{table} DO UPDATE SET entry_count = t.entry_count + excluded.entry_count, "
            "amount_total = t.amount_total + excluded.amount_total"
        )
    *first, last = upserts
    return "WITH " + ", ".join(f"u{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last


def totals_by_group_sql() -> str:
    """What the totals must equal: a GROUP BY over the entries (used by the backfill and the consistency check)."""
    statuses = ", ".join(f"'{status.value}'" for status in sorted(AGGREGATED_STATUSES))
    return (
        "SELECT owner_id, kind, date_trunc('month', entry_date)::date AS month, category, status, "
        "count(*) AS entry_count, sum(amount) AS amount_total FROM entries "
        f"WHERE status IN ({statuses}) GROUP BY 1, 2, 3, 4, 5"
    )


# What every maintained table must equal: (table, key columns, value columns, a fresh computation from the base
# tables). The approval tables are kept by triggers (migration 0003_dashboard_kpi).
_DECIDED = "status IN ('approved', 'rejected') AND decided_at IS NOT NULL"


def expected_aggregates() -> list[tuple[str, str, str, str]]:
    statuses = ", ".join(f"'{status.value}'" for status in sorted(AGGREGATED_STATUSES))
    aggregated = f"FROM entries WHERE status IN ({statuses})"
    month = "date_trunc('month', entry_date)::date"
    return [
        ("dashboard_entry_totals", "owner_id, kind, month, category, status", "entry_count, amount_total",
         totals_by_group_sql()),
        ("dashboard_owner_totals", "owner_id, status, month, kind", "entry_count, amount_total",
         f"SELECT owner_id, status, {month} AS month, kind, count(*) AS entry_count, sum(amount) AS amount_total "
         f"{aggregated} GROUP BY 1, 2, 3, 4"),
        ("dashboard_category_totals", "status, month, kind, category", "entry_count, amount_total",
         f"SELECT status, {month} AS month, kind, category, count(*) AS entry_count, sum(amount) AS amount_total "
         f"{aggregated} GROUP BY 1, 2, 3, 4"),
        ("dashboard_approval_decisions", "month, status, bucket", "requests",
         "SELECT dashboard_month(decided_at) AS month, status, "
         "coalesce(dashboard_cycle_bucket(decided_at - submitted_at), -1) AS bucket, count(*) AS requests "
         f"FROM approval_requests WHERE {_DECIDED} GROUP BY 1, 2, 3"),
        ("dashboard_escalations", "requester_id, month", "escalations",
         "SELECT r.requester_id, dashboard_month(s.decided_at) AS month, count(*) AS escalations "
         "FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
         "WHERE s.status = 'escalated' AND s.decided_at IS NOT NULL GROUP BY 1, 2"),
    ]  # fmt: skip


async def totals_mismatches(session: AsyncSession) -> list[tuple[object, ...]]:
    """Rows where a maintained table differs from a fresh computation over the base tables (empty when consistent):
    (table, key..., expected values..., kept values...)."""
    found: list[tuple[object, ...]] = []
    for table, keys, values, expected_sql in expected_aggregates():
        key_list = [k.strip() for k in keys.split(",")]
        value_list = [v.strip() for v in values.split(",")]
        nonzero = " OR ".join(f"{v} <> 0" for v in value_list)
        query = text(
            f"WITH expected AS ({expected_sql}), kept AS (SELECT * FROM {table} WHERE {nonzero}) "
            f"SELECT {', '.join(f'coalesce(e.{k}, k.{k})' for k in key_list)}, "
            f"{', '.join(f'e.{v}' for v in value_list)}, {', '.join(f'k.{v}' for v in value_list)} "
            f"FROM expected e FULL JOIN kept k USING ({keys}) "
            f"WHERE {' OR '.join(f'e.{v} IS DISTINCT FROM k.{v}' for v in value_list)}"
        )
        found += [(table, *row) for row in (await session.execute(query)).all()]
    return found
