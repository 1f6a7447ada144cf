"""Dashboard aggregates, maintained in the same transaction that changes an entry's status.

The entries service calls `entry_status_changed` after every status change (submit, decision, withdraw,
expiry, delete of a draft), so the dashboard never shows stale numbers.

Concurrency: each call is ONE `INSERT ... ON CONFLICT DO UPDATE` that adds relative deltas (`count = count + d`), so
concurrent transactions never lose an update (the second waits for the first's row lock, then adds to the committed
value). The (at most two) rows of one call are written in a fixed order (sorted by key), so two transactions that
each move one entry lock rows in the same order and cannot deadlock on this table. Contention is per owner, kind,
month, category and status: two approvals only wait for each other when all five match.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import DashboardEntryTotal, Entry, EntryStatus
from domain.models.dashboard import DashboardCategoryTotal, DashboardOwnerTotal

DashboardTotalRow = DashboardEntryTotal | DashboardOwnerTotal | DashboardCategoryTotal

# Drafts and entries returned for changes are edited (amount, category, date) without a status change, so they are
# not counted: the totals only hold entries whose amount, category and date can no longer change.
AGGREGATED_STATUSES = frozenset(
    {EntryStatus.PENDING, EntryStatus.APPROVED, EntryStatus.REJECTED, EntryStatus.WITHDRAWN, EntryStatus.EXPIRED}
)


def month_of(day: date) -> date:
    return day.replace(day=1)


async def entry_status_changed(session: AsyncSession, entry: Entry, old_status: str | None) -> None:
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
    month = month_of(entry.entry_date)
    keys: list[tuple[type[DashboardTotalRow], str, dict[str, object]]] = [
        (
            DashboardEntryTotal,
            "pk_dashboard_entry_totals",
            {"owner_id": entry.owner_id, "kind": entry.kind, "month": month, "category": entry.category},
        ),
        (
            DashboardOwnerTotal,
            "pk_dashboard_owner_totals",
            {"owner_id": entry.owner_id, "month": month, "kind": entry.kind},
        ),
        (
            DashboardCategoryTotal,
            "pk_dashboard_category_totals",
            {"month": month, "kind": entry.kind, "category": entry.category},
        ),
    ]
    for model, constraint, key in keys:
        rows = [{**key, "status": status, "entry_count": n, "amount_total": a} for status, n, a in changes]
        statement = insert(model).values(rows)
        table = model.__table__
        await session.execute(
            statement.on_conflict_do_update(
                constraint=constraint,
                set_={
                    "entry_count": table.c.entry_count + statement.excluded.entry_count,
                    "amount_total": table.c.amount_total + statement.excluded.amount_total,
                },
            )
        )


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
