"""What the analytics tables (migration 0017, kept by triggers) must equal: a GROUP BY over the base tables each, in
the shape `domain.dashboard.aggregates.totals_mismatches` checks."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.dashboard.aggregates import totals_mismatches

CLOSED_STEP = "('approved', 'rejected', 'changes_requested', 'escalated', 'expired')"

# The step facts straight from the approval tables (what `analytics_step_cycles` must hold, row for row).
STEP_FACTS = (
    "SELECT s.id AS step_id, r.requester_id, s.level, s.approver_id, s.status, s.opened_at, "
    "s.decided_at AS closed_at, greatest(date_part('epoch', s.decided_at - s.opened_at), 0) AS cycle_seconds, "
    "dashboard_cycle_bucket(s.decided_at - s.opened_at) AS bucket, "
    "(s.remind_at IS NOT NULL AND s.decided_at > s.remind_at) AS breached "
    "FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
    f"WHERE s.status IN {CLOSED_STEP} AND s.decided_at IS NOT NULL"
)


def expected_aggregates() -> list[tuple[str, str, str, str]]:
    """(table, key columns, value columns, the computation from the base tables), for the counted tables (the
    facts are compared row for row, `analytics_mismatches`)."""
    return [
        ("analytics_counterparty_totals", "owner_id, kind, month, counterparty", "entry_count, amount_total",
         "SELECT owner_id, kind, date_trunc('month', entry_date)::date AS month, "
         "CASE WHEN kind = 'expense' THEN coalesce(vendor, '') ELSE coalesce(source, '') END AS counterparty, "
         "count(*) AS entry_count, sum(coalesce(base_amount, amount)) AS amount_total "
         "FROM entries WHERE status = 'approved' GROUP BY 1, 2, 3, 4"),
        ("analytics_expense_weeks", "owner_id, week", "entry_count, amount_total",
         "SELECT owner_id, analytics_week(decided_at) AS week, count(*) AS entry_count, "
         "sum(coalesce(base_amount, amount)) AS amount_total FROM entries "
         "WHERE status = 'approved' AND kind = 'expense' AND decided_at IS NOT NULL GROUP BY 1, 2"),
        ("analytics_step_totals", "month, level, approver_id, status", "steps, breached",
         "SELECT dashboard_month(f.closed_at) AS month, f.level, f.approver_id, f.status, count(*) AS steps, "
         f"count(*) FILTER (WHERE f.breached) AS breached FROM ({STEP_FACTS}) f GROUP BY 1, 2, 3, 4"),
        ("analytics_step_histogram", "month, level, bucket", "steps",
         "SELECT dashboard_month(f.closed_at) AS month, f.level, f.bucket, count(*) AS steps "
         f"FROM ({STEP_FACTS}) f GROUP BY 1, 2, 3"),
        ("analytics_request_outcomes", "requester_id, month, status, auto_approved", "requests",
         "SELECT requester_id, dashboard_month(decided_at) AS month, status, "
         "status = 'approved' AND jsonb_array_length(chain) = 0 AS auto_approved, count(*) AS requests "
         "FROM approval_requests WHERE status IN ('approved', 'rejected') AND decided_at IS NOT NULL "
         "GROUP BY 1, 2, 3, 4"),
    ]  # fmt: skip


FACT_COLUMNS = "requester_id, level, approver_id, status, opened_at, closed_at, cycle_seconds, bucket, breached"


async def analytics_mismatches(session: AsyncSession) -> list[tuple[object, ...]]:
    """Rows where an analytics table differs from its computation over the base tables (empty when consistent)."""
    facts = await session.execute(
        text(
            f"WITH expected AS ({STEP_FACTS}) SELECT 'analytics_step_cycles', coalesce(e.step_id, k.step_id) "
            "FROM expected e FULL JOIN analytics_step_cycles k USING (step_id) "
            f"WHERE (SELECT ROW(e.{FACT_COLUMNS.replace(', ', ', e.')})) IS DISTINCT FROM "
            f"(SELECT ROW(k.{FACT_COLUMNS.replace(', ', ', k.')}))"
        )
    )
    return [tuple(row) for row in facts] + await totals_mismatches(session, expected_aggregates())
