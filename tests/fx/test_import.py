"""The ECB import end to end: FxRatesImportWorkflow on a worker, fetching from a local HTTP server, storing into
PostgreSQL; what a submit then finds (domain.fx.rates.rate_on), what admins are told, and what the trail says."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.deps import ActivityDeps
from core.engine import ScheduledStart
from core.settings import PROJECT_ROOT, FxSettings
from domain.fx.rates import rate_on
from domain.fx.schedules import fx_schedules
from tests.conftest import MakeUser
from tests.fx.conftest import RateServer, sample_bytes
from worker import start_fx_backfill
from workflows.contracts import (
    FX_IMPORT_FAILED,
    FX_RATES_BACKFILL_WORKFLOW_ID,
    FX_RATES_SCHEDULE_ID,
    FxImportInput,
    FxImportSummary,
)

HISTORIES = Path(__file__).parent / "histories"
SAMPLE_DAYS = [date(2025, 4, d) for d in (10, 11, 14, 15, 16, 17, 22, 23, 24, 25)]
CURRENCIES = 7


async def run_import(
    client: Client, task_queue: str, url: str, attempts: int = 3, record: str | None = None
) -> FxImportSummary:
    """Run one import; with `record`, its history is kept for the replay test (RECORD_HISTORIES=1 refreshes them)."""
    workflow_id = f"fx-test-{uuid.uuid4().hex[:8]}"
    try:
        return await client.execute_workflow(
            "FxRatesImportWorkflow",
            FxImportInput(url=url, attempts=attempts, timeout_seconds=5, retry_initial_seconds=0.1),
            id=workflow_id,
            task_queue=task_queue,
            result_type=FxImportSummary,
        )
    finally:
        if record and os.environ.get("RECORD_HISTORIES"):
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            (HISTORIES / f"{record}.json").write_text(history.to_json())


async def rows(deps: ActivityDeps, where: str = "true", params: Any = None) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all(
            f"SELECT id, currency, rate_date, rate, source, created_at FROM fx_rates WHERE {where} "
            "ORDER BY rate_date, currency, source",
            params,
        )


async def audit_rows(deps: ActivityDeps) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all(
            "SELECT action, workflow_id, changes FROM audit_log WHERE action = 'fx_rate.imported' ORDER BY id"
        )


async def notifications(deps: ActivityDeps) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all("SELECT user_id, event_type, title, body FROM notifications ORDER BY id")


async def test_a_holiday_gap_resolves_to_the_previous_working_day(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer
) -> None:
    url = rate_server.serve("/hist.xml", (200, sample_bytes()))
    summary = await run_import(temporal_client, fx_queue, url, record="import_completed")

    assert summary.stored == SAMPLE_DAYS and not summary.refused and summary.attempt == 1
    assert summary.rates_inserted == len(SAMPLE_DAYS) * CURRENCIES
    assert len(await rows(fx_deps, "source = 'ecb'")) == len(SAMPLE_DAYS) * CURRENCIES
    async with fx_deps.db.transaction() as tx:
        for day in (date(2025, 4, 18), date(2025, 4, 19), date(2025, 4, 21)):  # Good Friday, Saturday, Easter Monday
            rate = await rate_on(tx.sql, "USD", "EUR", day, 7)
            assert rate is not None
            assert rate.day == date(2025, 4, 17) and rate.legs[0].rate == Decimal("1.1355")
        assert (await rate_on(tx.sql, "USD", "EUR", date(2025, 4, 22), 7)).legs[0].rate == Decimal("1.1497")  # type: ignore[union-attr]
    [(action, workflow_id, changes)] = await audit_rows(fx_deps)
    assert workflow_id.startswith("fx-test-")
    assert changes["rates_inserted"] == len(SAMPLE_DAYS) * CURRENCIES and changes["days_refused"] == {}


async def test_a_day_with_a_malformed_rate_is_refused_whole_and_reported(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer, make_user: MakeUser
) -> None:
    admin = await make_user("admin")
    broken = sample_bytes().replace(b'<Cube currency="USD" rate="1.1330"/>', b'<Cube currency="USD" rate="1,1330"/>')
    assert broken != sample_bytes()
    url = rate_server.serve("/hist.xml", (200, broken))
    summary = await run_import(temporal_client, fx_queue, url, record="import_refused_day_alerted")

    assert list(summary.refused) == ["2025-04-16"] and "1,1330" in summary.refused["2025-04-16"]
    assert summary.stored == [day for day in SAMPLE_DAYS if day != date(2025, 4, 16)]
    assert await rows(fx_deps, "rate_date = %s", (date(2025, 4, 16),)) == []  # not even the other currencies
    assert len(await rows(fx_deps)) == (len(SAMPLE_DAYS) - 1) * CURRENCIES
    [(_, _, changes)] = await audit_rows(fx_deps)
    assert list(changes["days_refused"]) == ["2025-04-16"]
    [(user_id, event_type, title, body)] = await notifications(fx_deps)
    assert (user_id, event_type) == (admin.id, "fx_import_failed")
    assert "refused" in title and "2025-04-16" in body


async def test_a_fetch_failing_twice_then_working_completes(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer, make_user: MakeUser
) -> None:
    await make_user("superadmin")
    url = rate_server.serve("/daily.xml", (500, b"oops"), (500, b"oops"), (200, sample_bytes()))
    summary = await run_import(temporal_client, fx_queue, url, attempts=3)

    assert summary.attempt == 3 and rate_server.hits["/daily.xml"] == 3
    assert summary.stored == SAMPLE_DAYS
    assert len(await rows(fx_deps)) == len(SAMPLE_DAYS) * CURRENCIES
    assert await notifications(fx_deps) == []  # it worked in the end: nobody is alerted


async def test_all_attempts_failing_alerts_the_admins_and_stores_nothing(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer, make_user: MakeUser
) -> None:
    admin, superadmin = await make_user("admin"), await make_user("superadmin")
    await make_user("accountant")
    url = rate_server.serve("/daily.xml", (500, b"down"))
    with pytest.raises(WorkflowFailureError) as failure:
        await run_import(temporal_client, fx_queue, url, attempts=2, record="import_failed_alerted")

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == FX_IMPORT_FAILED
    assert "HTTP 500" in cause.message  # what the Temporal UI shows as the failure
    assert rate_server.hits["/daily.xml"] == 2
    assert await rows(fx_deps) == [] and await audit_rows(fx_deps) == []
    alerted = await notifications(fx_deps)
    assert sorted(user_id for user_id, *_ in alerted) == [admin.id, superadmin.id]
    assert all(event == "fx_import_failed" and "HTTP 500" in body for _, event, _, body in alerted)


async def test_a_document_that_is_not_an_ecb_file_is_not_retried(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer
) -> None:
    url = rate_server.serve("/daily.xml", (200, b"<html><body>maintenance</body></html>"))
    with pytest.raises(WorkflowFailureError) as failure:
        await run_import(temporal_client, fx_queue, url, attempts=5)

    assert rate_server.hits["/daily.xml"] == 1
    assert "not an ECB reference rates file" in str(failure.value.cause)
    assert await rows(fx_deps) == []


async def test_a_reimport_changes_nothing_and_a_correction_updates_the_rate(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer
) -> None:
    url = rate_server.serve("/hist.xml", (200, sample_bytes()))
    await run_import(temporal_client, fx_queue, url)
    first = await rows(fx_deps)

    again = await run_import(temporal_client, fx_queue, url)
    assert again.stored == [] and again.already_there == SAMPLE_DAYS
    assert again.rates_inserted == again.rates_corrected == 0
    assert await rows(fx_deps) == first  # same ids, rates and created_at
    assert len(await audit_rows(fx_deps)) == 1  # nothing changed, nothing to audit

    corrected = sample_bytes().replace(
        b'<Cube currency="GBP" rate="0.85200"/>', b'<Cube currency="GBP" rate="0.85210"/>'
    )
    url = rate_server.serve("/corrected.xml", (200, corrected))
    summary = await run_import(temporal_client, fx_queue, url)
    assert summary.stored == [date(2025, 4, 25)] and summary.rates_corrected == 1 and summary.rates_inserted == 0
    [gbp] = await rows(fx_deps, "currency = 'GBP' AND rate_date = %s", (date(2025, 4, 25),))
    assert gbp[3] == Decimal("0.85210")
    *_, (_, _, changes) = await audit_rows(fx_deps)
    assert changes["corrections"] == {"2025-04-25": {"GBP": ["0.852", "0.8521"]}}


async def test_a_manual_rate_of_the_same_day_stays_in_effect_after_an_import(
    temporal_client: Client,
    fx_queue: str,
    fx_deps: ActivityDeps,
    rate_server: RateServer,
    make_user: MakeUser,
    client: httpx.AsyncClient,
) -> None:
    accountant = await make_user("accountant")
    answer = await client.post(
        "/api/v1/fx/rates",
        json={"currency": "USD", "rate_date": "2025-04-15", "rate": "1.2", "note": "bank quote"},
        headers=accountant.headers,
    )
    assert answer.status_code == 201, answer.text
    url = rate_server.serve("/hist.xml", (200, sample_bytes()))
    await run_import(temporal_client, fx_queue, url)
    await run_import(temporal_client, fx_queue, url)

    both = await rows(fx_deps, "currency = 'USD' AND rate_date = %s", (date(2025, 4, 15),))
    assert [(row[3], row[4]) for row in both] == [(Decimal("1.1297"), "ecb"), (Decimal("1.2"), "manual")]
    async with fx_deps.db.transaction() as tx:
        rate = await rate_on(tx.sql, "USD", "EUR", date(2025, 4, 15), 7)
    assert rate is not None and rate.source == "manual" and rate.legs[0].rate == Decimal("1.2")


async def test_the_backfill_starts_once_when_no_recent_rate_is_stored(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer
) -> None:
    rate_server.serve("/hist.xml", (200, sample_bytes()))
    fx = fx_deps.settings.fx
    with contextlib.suppress(RPCError):  # a worker another test started on this server may have begun one
        await temporal_client.get_workflow_handle(FX_RATES_BACKFILL_WORKFLOW_ID).terminate("a test starts its own")
    assert await start_fx_backfill(temporal_client, fx_deps, today=date(2025, 4, 28))
    handle = temporal_client.get_workflow_handle(FX_RATES_BACKFILL_WORKFLOW_ID, result_type=FxImportSummary)
    summary = await handle.result()
    assert summary.url == fx.history_url and summary.stored == SAMPLE_DAYS
    # Now the rates are recent for that day: no second backfill.
    assert not await start_fx_backfill(temporal_client, fx_deps, today=date(2025, 4, 28))


def test_the_daily_schedule_follows_the_settings() -> None:
    settings = FxSettings(cron="0 17 * * 1-5", timezone="Europe/Berlin", fetch_attempts=4, fetch_timeout_seconds=12)
    schedules = fx_schedules(settings, "q-reports")
    schedule = schedules[FX_RATES_SCHEDULE_ID]
    assert isinstance(schedule, ScheduledStart)
    assert (schedule.workflow, schedule.cron, schedule.timezone) == (
        "FxRatesImportWorkflow",
        "0 17 * * 1-5",
        "Europe/Berlin",
    )
    assert schedule.task_queue == "q-reports"
    assert schedule.argument == FxImportInput(which="daily", attempts=4, timeout_seconds=12)
    assert fx_schedules(FxSettings(schedule_enabled=False), "q-reports") == {}


async def test_the_cli_imports_through_the_worker(
    temporal_client: Client, fx_queue: str, fx_deps: ActivityDeps, rate_server: RateServer
) -> None:
    rate_server.serve("/hist.xml", (200, sample_bytes()))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FX_", "TEMPORAL_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=fx_deps.settings.db.url,
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE_PREFIX=fx_deps.settings.temporal.task_queue_prefix,
        FX_RATES_HISTORY_URL=fx_deps.settings.fx.history_url,
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "cli.py", "fx-import", "--history"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "days stored:        2025-04-10, 2025-04-11" in done.stdout
    assert len(await rows(fx_deps)) == len(SAMPLE_DAYS) * CURRENCIES
