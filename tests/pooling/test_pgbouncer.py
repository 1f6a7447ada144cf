"""The API and the worker's activities with DATABASE_URL through PgBouncer in transaction pooling mode: approvals end
to end, many requests at once on fewer server connections, a report's CSV streamed from a server-side cursor, and
the live notification stream, whose LISTEN takes DATABASE_DIRECT_URL."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from core.db import Database
from core.settings import DatabasePooler, DatabaseSettings, Settings
from tests.approvals.conftest import ended_status, expense_body
from tests.conftest import MakeUser
from tests.notifications.test_stream import open_stream
from tests.pooling.conftest import DIRECT_APP, POOLED_APP, Team
from tests.pooling.pgbouncer import DEFAULT_POOL_SIZE, PgBouncer
from tests.reports.readback import csv_table


async def _submitted(http: httpx.AsyncClient, team: Team, amount: str = "120.00") -> dict[str, Any]:
    created = await http.post("/api/v1/expenses/", json=expense_body(amount), headers=team.employee.headers)
    assert created.status_code == 201, created.text
    submitted = await http.post(f"/api/v1/expenses/{created.json()['id']}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text
    return submitted.json()  # type: ignore[no-any-return]


async def test_an_expense_is_created_submitted_and_approved_through_the_pooler(
    pooled_api: str, team: Team, temporal_client: Client, pooled_deps: ActivityDeps
) -> None:
    async with httpx.AsyncClient(base_url=pooled_api, timeout=30) as http:
        entry = await _submitted(http, team)
        assert entry["status"] == "pending"
        inbox = (await http.get("/api/v1/approvals/", headers=team.manager.headers)).json()
        assert [item["entry_id"] for item in inbox["items"]] == [entry["id"]]  # the worker's activity opened it

        approved = await http.post(
            f"/api/v1/expenses/{entry['id']}/approve", json={"comment": "ok"}, headers=team.manager.headers
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert await ended_status(temporal_client, entry["workflow_id"]) == WorkflowExecutionStatus.COMPLETED
        shown = (await http.get(f"/api/v1/expenses/{entry['id']}", headers=team.employee.headers)).json()
        assert shown["status"] == "approved"
    async with pooled_deps.db.transaction() as tx:
        actions = await tx.sql.all(
            "SELECT action FROM audit_log WHERE resource_id = %s ORDER BY id", (str(entry["id"]),), prepare=False
        )
    assert actions == [("entry.created",), ("entry.submitted",), ("approval.approved",)]  # one row per step


async def test_many_requests_at_once_share_fewer_server_connections(
    pooled_api: str, pooled_settings: Settings, team: Team, pgbouncer: PgBouncer
) -> None:
    """Each API connection's transactions land on whichever of PgBouncer's few server connections is free: a
    statement prepared on one is unknown on the next. Without DATABASE_POOLER=transaction these fail with
    'prepared statement "_pg3_0" does not exist' (or 'already exists')."""
    assert pooled_settings.db.pool_size + pooled_settings.db.max_overflow > 4 * DEFAULT_POOL_SIZE
    async with httpx.AsyncClient(base_url=pooled_api, timeout=60) as http:

        async def create(n: int) -> httpx.Response:
            body = expense_body(f"{10 + n}.00")
            return await http.post("/api/v1/expenses/", json=body, headers=team.employee.headers)

        async def listing() -> httpx.Response:
            return await http.get("/api/v1/expenses/", headers=team.employee.headers)

        answers = await asyncio.gather(*(create(n) for n in range(15)), *(listing() for _ in range(15)))
        assert [a.status_code for a in answers] == [201] * 15 + [200] * 15, [a.text for a in answers if a.is_error]
        listed = (await http.get("/api/v1/expenses/?limit=100", headers=team.employee.headers)).json()
    assert listed["total"] == 15
    # The app's connections (kept in its pool) outnumber the server connections PgBouncer gave them turns on.
    database = conninfo_to_dict(pooled_settings.db.url)["dbname"]
    (pool,) = [pool for pool in pgbouncer.show("POOLS") if pool["database"] == database]
    servers = sum(int(str(pool[state])) for state in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    assert int(str(pool["cl_active"])) > DEFAULT_POOL_SIZE >= servers, pool


async def test_prepared_statements_break_through_the_pooler_unless_turned_off(pooled_settings: Settings) -> None:
    """Why the setting exists (PgBouncer 1.18 keeps no prepared statements of its own): an app connection's next
    transaction may run on another server connection, which never saw the statement it prepared."""
    query = "SELECT count(*) FROM users WHERE id > %s"

    async def moved_to_another_server(db_settings: DatabaseSettings) -> None:
        db = Database.connect(db_settings, pre_ping=False)
        try:
            async with db.transaction(autocommit=True) as first:
                await first.sql.scalar(query, (0,))  # prepared on the server connection PgBouncer lent it
                async with db.transaction() as second:
                    await second.sql.scalar("SELECT 1")  # holds that server connection (LIFO) until it ends
                    await first.sql.scalar(query, (0,))  # so this runs on another one
        finally:
            await db.dispose()

    preparing = pooled_settings.db.model_copy(update={"prepared_statements": True})
    assert preparing.prepares_statements
    with pytest.raises(psycopg.errors.InvalidSqlStatementName, match=r'prepared statement "_pg3_\d+" does not exist'):
        await moved_to_another_server(preparing)
    assert pooled_settings.db.pooler == DatabasePooler.TRANSACTION and not pooled_settings.db.prepares_statements
    await moved_to_another_server(pooled_settings.db)  # the rule in force: nothing prepared, nothing to lose


async def test_a_report_csv_and_the_audit_export_stream_through_the_pooler(
    pooled_api: str, team: Team, pooled_deps: ActivityDeps
) -> None:
    """Both read from a server-side cursor (DECLARE ... FETCH), which lives inside one transaction: PgBouncer keeps
    the transaction on one server connection, so the batches come from where the cursor is."""
    async with httpx.AsyncClient(base_url=pooled_api, timeout=30) as http:
        for n in range(3):
            created = await http.post(
                "/api/v1/expenses/", json=expense_body(f"{n + 1}0.00"), headers=team.employee.headers
            )
            assert created.status_code == 201, created.text
        today = date.today().isoformat()
        body = {"type": "ledger", "format": "csv", "period": {"from": today, "to": today}}
        accepted = await http.post("/api/v1/reports", json=body, headers=team.admin.headers)
        assert accepted.status_code == 202, accepted.text
        report_id = accepted.json()["id"]
        for _ in range(300):
            report = (await http.get(f"/api/v1/reports/{report_id}", headers=team.admin.headers)).json()
            if report["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert report["status"] == "completed", report
        download = await http.post(f"/api/v1/reports/{report_id}/download", headers=team.admin.headers)
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        _, rows = csv_table(download.content)
        entries = [row for row in rows if row[0].isdigit()]  # the totals rows follow
        assert sorted(row[8] for row in entries) == ["10.00", "20.00", "30.00"]  # each entry once

        export = await http.get("/api/v1/admin/audit", params={"format": "csv"}, headers=team.admin.headers)
        assert export.status_code == 200, export.text
        audit = list(csv.DictReader(io.StringIO(export.text)))
        assert sum(row["action"] == "entry.created" for row in audit) == 3


async def test_the_live_stream_listens_on_the_direct_connection(
    pooled_api: str, make_user: MakeUser, pooled_deps: ActivityDeps, database_url: str
) -> None:
    """LISTEN waits on one session between transactions, which a transaction-mode pooler does not keep: the feed
    connects to DATABASE_DIRECT_URL, while the notification itself is written through the pooler."""
    from domain.notifications.service import notify

    alice = await make_user("employee")
    async with open_stream(pooled_api, alice.headers) as events:
        async with pooled_deps.db.transaction() as tx:  # written through PgBouncer, as a worker's activity does
            created = await notify(tx.sql, user_id=alice.id, event_type="entry_submitted", title="Through the pooler")
        event_id, payload = await events.next_notification()
        assert event_id == created and payload["title"] == "Through the pooler"

        with psycopg.connect(database_url) as conn:
            listeners = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %%'"
            ).fetchall()
    assert (DIRECT_APP,) in listeners and (POOLED_APP,) not in listeners, listeners
