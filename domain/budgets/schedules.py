"""The standing budget upkeep: BudgetUpkeepWorkflow at BUDGET_UPKEEP_CRON (UTC); the worker makes the engine's
schedule match this at every start (worker.reconcile_schedules)."""

from __future__ import annotations

from datetime import timedelta

from core.engine import ScheduledStart, UserMetadata
from core.settings import BudgetSettings
from workflows.contracts import BUDGET_UPKEEP_SCHEDULE_ID, BudgetUpkeepInput


def budget_schedules(settings: BudgetSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Schedule id -> schedule; none when BUDGET_UPKEEP_ENABLED=false."""
    if not settings.upkeep_enabled:
        return {}
    return {
        BUDGET_UPKEEP_SCHEDULE_ID: ScheduledStart(
            workflow="BudgetUpkeepWorkflow",
            argument=BudgetUpkeepInput(grace_seconds=settings.upkeep_grace_seconds),
            workflow_id=BUDGET_UPKEEP_SCHEDULE_ID,
            task_queue=task_queue,
            cron=settings.upkeep_cron,
            timezone="UTC",
            execution_timeout=timedelta(minutes=30),
            catchup_window=timedelta(minutes=10),
            note="budget upkeep: release commitments of approvals closed without approval, email threshold alerts",
            metadata=UserMetadata(summary="Budget upkeep: release stale commitments, email threshold alerts"),
        )
    }
