"""The standing exchange-rate import: the ECB's daily file at FX_RATES_CRON in FX_RATES_TIMEZONE, and the one-off
backfill from the 90-day file that the worker starts when no recent ECB rate is stored.

The worker makes the engine's schedule match this at every start (worker.reconcile_schedules).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from core.engine import ScheduledStart, UserMetadata
from core.settings import FxSettings
from workflows.contracts import FX_RATES_SCHEDULE_ID, FxImportInput

_RUN_TIMEOUT = timedelta(hours=6)  # five attempts with back-off take well under an hour
_CATCH_UP = timedelta(hours=12)  # a run missed while the engine was down is made up the same evening


def import_input(settings: FxSettings, which: Literal["daily", "history"] = "daily") -> FxImportInput:
    """What a run of the import gets: the attempts and the fetch timeout from settings."""
    return FxImportInput(which=which, attempts=settings.fetch_attempts, timeout_seconds=settings.fetch_timeout_seconds)


def import_metadata(which: Literal["daily", "history"]) -> UserMetadata:
    """What the Temporal UI shows of an exchange-rate import: the daily file, or the 90-day backfill."""
    if which == "history":
        return UserMetadata(
            summary="ECB exchange rates: 90-day backfill",
            details="Started by the worker because no recent ECB rate was stored (FX_RATES_HISTORY_URL).",
        )
    return UserMetadata(
        summary="ECB exchange rates: daily import",
        details="Fetches FX_RATES_URL and stores the days it holds; gives up after FX_FETCH_ATTEMPTS and alerts.",
    )


def fx_schedules(settings: FxSettings, task_queue: str) -> dict[str, ScheduledStart]:
    """Schedule id -> schedule; none when FX_RATES_SCHEDULE_ENABLED=false."""
    if not settings.schedule_enabled:
        return {}
    return {
        FX_RATES_SCHEDULE_ID: ScheduledStart(
            workflow="FxRatesImportWorkflow",
            argument=import_input(settings),
            workflow_id=FX_RATES_SCHEDULE_ID,
            task_queue=task_queue,
            cron=settings.cron,
            timezone=settings.timezone,
            execution_timeout=_RUN_TIMEOUT,
            catchup_window=_CATCH_UP,
            note="daily ECB exchange-rate import (FX_RATES_CRON, FX_RATES_TIMEZONE, FX_RATES_URL)",
            metadata=import_metadata("daily"),
        )
    }
