"""The budget upkeep's activities: release the commitments of approval workflows the engine says are closed, and
hand the workflow the threshold alerts still to email (and mark each sent)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.deps import ActivityDeps
from domain.budgets import upkeep
from workflows.contracts import (
    BudgetActivity,
    BudgetAlertEmail,
    BudgetReconcileSummary,
    BudgetReleased,
    BudgetUpkeepInput,
)

# The engine's closed states; RUNNING (and CONTINUED_AS_NEW, whose next run the description follows) are not.
CLOSED = frozenset({"COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"})


class BudgetActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name=BudgetActivity.RECONCILE)
    async def release_closed(self, job: BudgetUpkeepInput) -> BudgetReconcileSummary:
        engine = self.deps.engine
        assert engine is not None, "the worker hands the budget activities its engine"
        summary = BudgetReconcileSummary()
        after_id, now, grace = 0, datetime.now(UTC), timedelta(seconds=job.grace_seconds)
        while True:  # page by page through every pending request holding a commitment
            async with self.deps.db.transaction() as tx:
                held = await upkeep.held_commitments(tx.sql, now, grace, job.batch, after_id)
            for request_id, workflow_id in held:
                summary.checked += 1
                status = await engine.run_status(workflow_id)  # EngineUnavailable: the attempt fails, is retried
                if status is None or status in CLOSED:
                    said = status or "NOT_FOUND"
                    async with self.deps.db.transaction() as tx:
                        if await upkeep.release_closed(tx.sql, request_id, said):
                            summary.released.append(
                                BudgetReleased(request_id=request_id, workflow_id=workflow_id, workflow_status=said)
                            )
                activity.heartbeat(request_id)
            if len(held) < job.batch:
                break
            after_id = held[-1][0]
        return summary

    @activity.defn(name=BudgetActivity.ALERTS)
    async def unsent_alerts(self, job: BudgetUpkeepInput) -> list[BudgetAlertEmail]:
        async with self.deps.db.transaction() as tx:
            return await upkeep.unsent_alerts(tx.sql, job.batch)

    @activity.defn(name=BudgetActivity.ALERT_SENT)
    async def alert_sent(self, alert_id: int) -> None:
        async with self.deps.db.transaction() as tx:
            await upkeep.alert_sent(tx.sql, alert_id)

    def all(self) -> list[Callable[..., object]]:
        return [self.release_closed, self.unsent_alerts, self.alert_sent]
