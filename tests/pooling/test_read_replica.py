"""DATABASE_READ_URL: the dashboard, analytics and the report datasets read there; writes never go there; when it
does not answer, reads go to the primary at once (one connect timeout), with a warning.

The "replica" is a database of its own holding other rows than the primary (reached, like the primary, through
PgBouncer in transaction mode), so what a page or a report shows tells where it was read."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import httpx
import psycopg
import pytest
from temporalio.client import Client

from core.db import Database, ReadDatabase
from core.settings import DatabaseSettings, Settings
from domain.models import Entry
from tests.approvals.conftest import expense_body
from tests.conftest import MakeUser, TestUser
from tests.pooling.conftest import api_on, pooled, worker_on
from tests.pooling.pgbouncer import PgBouncer
from tests.reports.readback import csv_table
from tests.services import admin_database_url, migrate, scratch_database, truncate_all

REPLICA_APP = "finance-replica"


@pytest.fixture(scope="module")
def replica_url() -> Iterator[str]:
    with scratch_database(admin_database_url(), "finance_replica") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def replica_settings(settings: Settings, database_url: str, pgbouncer: PgBouncer, replica_url: str) -> Settings:
    return pooled(settings, database_url, pgbouncer, read_url=pgbouncer.url_for(replica_url, REPLICA_APP))


@pytest.fixture(scope="module")
async def replica_api(replica_settings: Settings, temporal_client: Client) -> AsyncIterator[str]:
    """The API and a worker for the reports queue, both with DATABASE_READ_URL set."""
    async with (
        worker_on(replica_settings, temporal_client, ("reports",)),
        api_on(replica_settings, temporal_client) as url,
    ):
        yield url


@pytest.fixture(autouse=True)
def _empty_replica(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "replica_url" in request.fixturenames:
        truncate_all(request.getfixturevalue("replica_url"))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that completes the TCP handshake (the kernel's backlog) and then never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def _copy_user(primary_url: str, replica_url: str, user: TestUser) -> None:
    """The user's row as replication would bring it (the replica's reads scope and name by it)."""
    with psycopg.connect(primary_url) as source, psycopg.connect(replica_url) as target:
        query = f"COPY (SELECT * FROM users WHERE id = {int(user.id)}) TO STDOUT"
        with source.cursor().copy(query) as out, target.cursor().copy("COPY users FROM STDIN") as into:
            for data in out:
                into.write(data)


async def _approved_expense_on(url: str, owner: TestUser, amount: str, vendor: str) -> None:
    db = Database.connect(DatabaseSettings(url=url, pool_size=1))
    try:
        async with db.transaction() as tx:
            tx.session.add(
                Entry(
                    kind="expense", amount=Decimal(amount), currency="USD", base_currency="USD", fx_rate=Decimal(1),
                    rate_date=date.today(), rate_source="base", base_amount=Decimal(amount), category="travel",
                    description=f"to {vendor}", entry_date=date.today(), vendor=vendor, owner_id=owner.id,
                    status="approved",
                )
            )  # fmt: skip
    finally:
        await db.dispose()


def _amounts(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [f"{row[0]:.2f}" for row in conn.execute("SELECT amount FROM entries ORDER BY amount")]


async def _ledger_csv(http: httpx.AsyncClient, user: TestUser) -> list[list[str]]:
    today = date.today().isoformat()
    body = {"type": "ledger", "format": "csv", "period": {"from": today, "to": today}}
    accepted = await http.post("/api/v1/reports", json=body, headers=user.headers)
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["id"]
    for _ in range(300):
        report = (await http.get(f"/api/v1/reports/{report_id}", headers=user.headers)).json()
        if report["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.1)
    assert report["status"] == "completed", report
    download = await http.post(f"/api/v1/reports/{report_id}/download", headers=user.headers)
    assert download.status_code == 200, download.text
    _, rows = csv_table(download.content)
    return [row for row in rows if row[0].isdigit()]  # the entries, not the totals after them


async def test_the_dashboard_and_a_report_read_the_replica_and_writes_stay_on_the_primary(
    replica_api: str, make_user: MakeUser, database_url: str, replica_url: str
) -> None:
    owner = await make_user("employee")
    _copy_user(database_url, replica_url, owner)
    await _approved_expense_on(replica_url, owner, "777.00", "Only on the replica")
    async with httpx.AsyncClient(base_url=replica_api, timeout=30) as http:
        created = await http.post("/api/v1/expenses/", json=expense_body("55.00"), headers=owner.headers)
        assert created.status_code == 201, created.text
        assert _amounts(database_url) == ["55.00"] and _amounts(replica_url) == ["777.00"]  # the write: primary only

        overview = await http.get("/api/v1/dashboard/overview", headers=owner.headers)
        assert overview.status_code == 200, overview.text
        assert [row["amount"] for row in overview.json()["recent_entries"]] == ["777.00"]
        trends = await http.get("/api/v1/analytics/trends", params={"months": 1}, headers=owner.headers)
        assert trends.status_code == 200, trends.text
        assert trends.json()["series"][-1]["expenses"] == "777.00", trends.json()["series"]

        ledger = await _ledger_csv(http, owner)  # the report row is the primary's; its rows, the replica's
    assert [(row[4], row[8]) for row in ledger] == [("Only on the replica", "777.00")]


async def test_reads_go_to_the_primary_when_the_replica_does_not_answer(
    silent_server: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = DatabaseSettings(
        url=database_url, read_url=f"postgresql://u@{silent_server}/finance", read_connect_timeout_seconds=2
    )
    primary = Database.connect(settings)
    reads = ReadDatabase.connect(settings, primary)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="core.db"):
            async with reads.transaction() as tx:
                assert await tx.sql.scalar("SELECT current_database()") == database_url.rsplit("/", 1)[-1]
        assert time.monotonic() - started < 4  # one connect timeout, then the primary
        assert any("read replica unreachable" in record.getMessage() for record in caplog.records)

        started = time.monotonic()
        async with reads.transaction() as tx:  # within DATABASE_READ_RETRY_SECONDS: not tried again
            await tx.sql.scalar("SELECT 1")
        assert time.monotonic() - started < 1

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            async with reads.transaction() as tx:  # READ ONLY on the primary too: a stray write fails loudly
                await tx.sql.run("CREATE TEMPORARY TABLE stray (id int)")
    finally:
        await reads.dispose()
        await primary.dispose()


async def test_the_dashboard_answers_from_the_primary_while_the_replica_is_silent(
    silent_server: str, settings: Settings, database_url: str, pgbouncer: PgBouncer, temporal_client: Client,
    make_user: MakeUser,
) -> None:  # fmt: skip
    owner = await make_user("employee")
    silent = pooled(settings, database_url, pgbouncer, read_url=f"postgresql://u@{silent_server}/finance")
    async with api_on(silent, temporal_client) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        created = await http.post("/api/v1/expenses/", json=expense_body("12.34"), headers=owner.headers)
        assert created.status_code == 201, created.text
        started = time.monotonic()
        overview = await http.get("/api/v1/dashboard/overview", headers=owner.headers)
        assert overview.status_code == 200, overview.text
        assert time.monotonic() - started < 5
        assert [row["amount"] for row in overview.json()["recent_entries"]] == ["12.34"]
