"""The books stay in one currency: a BASE_CURRENCY changed under a database with entries stops the API and the worker
at start, saying what to do; with no entries the new currency is simply taken."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import PROJECT_ROOT, Settings
from domain.fx.books import BooksMismatch, check_base_currency
from tests.approvals.conftest import Team, client, expense_body, team  # noqa: F401
from tests.conftest import own_api
from tests.services import free_port


def rebased(settings: Settings, currency: str) -> Settings:
    return settings.model_copy(update={"approvals": settings.approvals.model_copy(update={"base_currency": currency})})


async def kept(deps: ActivityDeps) -> str | None:
    async with deps.db.transaction() as tx:
        return await tx.sql.scalar("SELECT value FROM app_state WHERE key = 'base_currency'")  # type: ignore[no-any-return]


async def test_without_entries_a_new_base_currency_is_taken(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        assert await check_base_currency(tx.sql, "USD")
        assert await check_base_currency(tx.sql, "EUR")
        await tx.commit()
    assert await kept(activity_deps) == "EUR"
    async with activity_deps.db.transaction() as tx:
        with pytest.raises(BooksMismatch, match="XAU"):
            await check_base_currency(tx.sql, "XAU")  # gold has no minor units: no books are kept in it


async def test_with_entries_a_changed_base_currency_stops_the_api_and_the_worker(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    settings: Settings,
    activity_deps: ActivityDeps,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    async with activity_deps.db.transaction() as tx:
        await check_base_currency(tx.sql, "USD")
        await tx.commit()
    created = await client.post("/api/v1/expenses/", json=expense_body(), headers=team.employee.headers)
    assert created.status_code == 201, created.text

    with pytest.raises(BooksMismatch, match="BASE_CURRENCY=EUR but the books are kept in USD"):
        async with own_api(rebased(settings, "EUR"), temporal_client):
            pass

    log = tmp_path / "worker.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SMTP_", "AWS_", "S3_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=settings.db.url,
        SECRET_KEY=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE_PREFIX=f"books-{secrets.token_hex(4)}",  # nothing of the session's queues
        WORKER_METRICS_PORT=str(free_port()),
        WORKER_BUSINESS_METRICS_PORT=str(free_port()),
        STORAGE_DIR=str(tmp_path / "storage"),
        MAIL_DIR=str(tmp_path / "mail"),
        BASE_CURRENCY="EUR",
    )
    with log.open("ab") as handle:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=handle
        )
        try:
            await asyncio.wait_for(worker.wait(), 60)
        finally:
            if worker.returncode is None:
                worker.kill()
    assert worker.returncode == 1, log.read_text()[-3000:]
    assert "BASE_CURRENCY=EUR but the books are kept in USD" in log.read_text()

    assert await kept(activity_deps) == "USD"  # neither start changed the books
    same = await client.get("/api/v1/expenses/", headers=team.employee.headers)
    assert same.status_code == 200  # the running API, on the books' currency, goes on
