"""The dashboard's maintained totals, and how to check them.

The totals follow every change to the entries and approval tables by themselves: database triggers keep them in the
transaction that makes the change (migration 0003 for the approval counters, 0007 for the entry totals), whoever
writes. Each change is one relative delta per row (`count = count + d`), so concurrent transactions never lose an
update, and the (at most two) buckets a change moves are written in key order, so two transactions cannot deadlock
on them. This module holds what the totals must equal, for the backfill and the consistency check.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import EntryStatus

# Drafts and entries returned for changes are edited (amount, category, date) without a status change, so they are
# not counted: the totals only hold entries whose amount, category and date can no longer change.
AGGREGATED_STATUSES = frozenset(
    {EntryStatus.PENDING, EntryStatus.APPROVED, EntryStatus.REJECTED, EntryStatus.WITHDRAWN, EntryStatus.EXPIRED}
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


async def totals_mismatches(
    session: AsyncSession, aggregates: list[tuple[str, str, str, str]] | None = None
) -> list[tuple[object, ...]]:
    """Rows where a maintained table differs from a fresh computation over the base tables (empty when consistent):
    (table, key..., expected values..., kept values...). `aggregates`: the dashboard's by default."""
    found: list[tuple[object, ...]] = []
    for table, keys, values, expected_sql in expected_aggregates() if aggregates is None else aggregates:
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
