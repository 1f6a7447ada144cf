"""What keeps the budget ledger true when an approval does not end the usual way, and sends its alerts.

- A commitment is released by the transition that ends its request without approval. An approval workflow that
  never gets there (terminated by an operator, failed, timed out) leaves its request pending and its commitment
  held: the reconciler finds commitments older than a grace period whose workflow the engine says is closed, and
  releases them with an audit row saying so. A request whose workflow still runs is left alone, whatever its age.
- Threshold alerts (domain/budgets/thresholds.py) are emailed from their outbox, `budget_alerts`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.sql import Sql
from domain.approvals import repository as requests
from domain.audit.service import AuditContext, record
from domain.budgets import ledger
from domain.models import RequestStatus
from workflows.contracts import BudgetAlertEmail, EmailJob

# Commitments exist only while a request is pending (the transition that ends the wait releases them): look among
# the pending requests (ix_approval_requests_status_created), not through the whole ledger.
_HELD = (
    "SELECT r.id, r.workflow_id FROM approval_requests r WHERE r.status = 'pending' AND r.subject_kind = 'expense' "
    "AND r.id > %s AND r.submitted_at < %s "
    f"AND EXISTS (SELECT 1 FROM budget_ledger c WHERE c.request_id = r.id AND {ledger.HELD}) ORDER BY r.id LIMIT %s"
)


async def held_commitments(
    sql: Sql, now: datetime, grace: timedelta, limit: int, after_id: int = 0
) -> list[tuple[int, str]]:
    """(request id, workflow id) of pending requests submitted more than `grace` ago that hold a commitment, by id
    from `after_id` (a page: the caller goes on from the last one)."""
    return [(row[0], row[1]) for row in await sql.all(_HELD, (after_id, now - grace, limit))]


async def release_closed(sql: Sql, request_id: int, workflow_status: str) -> bool:
    """Release what the request holds: its workflow is closed (`workflow_status`, as the engine says) and did not
    approve it. True when something was released. An approved request is settled by its transition, never here."""
    request = await requests.request(sql, request_id, lock=True)
    if request.status == RequestStatus.APPROVED:
        return False
    held = await ledger.open_commitments(sql, request)
    if not held:
        return False
    resource = ("entry", request.entry_id) if request.entry_id is not None else ("approval_request", request.id)
    await record(
        sql,
        AuditContext(workflow_id=request.workflow_id),
        "budget.released",
        *resource,
        {
            "reason": f"the approval workflow closed ({workflow_status}) without approving the request",
            "request_status": request.status,
            "budgets_released": held,
        },
    )
    await ledger.release(sql, request, f"workflow closed: {workflow_status}")  # after the audit row (ledger.py)
    return True


async def unsent_alerts(sql: Sql, limit: int) -> list[BudgetAlertEmail]:
    rows = await sql.all("SELECT id, email FROM budget_alerts WHERE emailed_at IS NULL ORDER BY id LIMIT %s", (limit,))
    return [BudgetAlertEmail(alert_id=row[0], email=EmailJob.model_validate(row[1])) for row in rows]


async def alert_sent(sql: Sql, alert_id: int) -> None:
    await sql.run("UPDATE budget_alerts SET emailed_at = now() WHERE id = %s AND emailed_at IS NULL", (alert_id,))
