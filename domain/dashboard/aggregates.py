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

# Drafts and entries returned for changes are edited (amount, category, date) without a status change, so they are
# not counted: the totals only hold entries whose amount, category and date can no longer change.
AGGREGATED_STATUSES = frozenset(
    {EntryStatus.PENDING, EntryStatus.APPROVED, EntryStatus.REJECTED, EntryStatus.WITHDRAWN, EntryStatus.EXPIRED}
)


def month_of(day: date) -> date:
    return day.replace(day=1)


async def entry_status_changed(session: AsyncSession, entry: Entry, old_status: str | None) -> None:
    """Move the entry's amount from its old status bucket to its new one (`old_status` None: a new entry)."""
    new_status = entry.status
    if old_status == new_status:
        return
    rows: list[dict[str, object]] = []
    key = {
        "owner_id": entry.owner_id,
        "kind": entry.kind,
        "month": month_of(entry.entry_date),
        "category": entry.category,
    }
    amount = Decimal(entry.amount)
    if old_status is not None and old_status in AGGREGATED_STATUSES:
        rows.append({**key, "status": str(old_status), "entry_count": -1, "amount_total": -amount})
    if new_status in AGGREGATED_STATUSES:
        rows.append({**key, "status": str(new_status), "entry_count": 1, "amount_total": amount})
    if not rows:
        return
    rows.sort(key=lambda row: str(row["status"]))  # one lock order for every transaction
    statement = insert(DashboardEntryTotal).values(rows)
    table = DashboardEntryTotal.__table__
    await session.execute(
        statement.on_conflict_do_update(
            constraint="pk_dashboard_entry_totals",
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


async def totals_mismatches(session: AsyncSession) -> list[tuple[object, ...]]:
    """Rows where the maintained totals differ from a fresh GROUP BY over the entries (empty when consistent)."""
    query = text(
        f"""
        WITH expected AS ({totals_by_group_sql()}),
        kept AS (SELECT * FROM dashboard_entry_totals WHERE entry_count <> 0 OR amount_total <> 0)
        SELECT coalesce(e.owner_id, k.owner_id), coalesce(e.kind, k.kind), coalesce(e.month, k.month),
               coalesce(e.category, k.category), coalesce(e.status, k.status),
               e.entry_count, k.entry_count, e.amount_total, k.amount_total
        FROM expected e FULL JOIN kept k USING (owner_id, kind, month, category, status)
        WHERE e.entry_count IS DISTINCT FROM k.entry_count OR e.amount_total IS DISTINCT FROM k.amount_total
        """
    )
    return [tuple(row) for row in (await session.execute(query)).all()]
