"""The audit log: append-only in the database, hash-chained, verifiable, searchable and exportable."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from activities.deps import ActivityDeps
from core.db import Database, create_engine
from core.settings import PROJECT_ROOT, DatabaseSettings
from domain.audit.service import GENESIS_HASH, AuditContext, record, verify_chain
from domain.models import AuditLog

pytestmark = pytest.mark.usefixtures("database_url")


async def _record_many(db: Database, count: int, **context: object) -> list[int]:
    ids = []
    async with db.transaction() as tx:
        for n in range(count):
            row = await record(
                tx.sql,
                AuditContext(**context),  # type: ignore[arg-type]
                "entry.update",
                "entry",
                n,
                {"amount": [f"{n}.00", f"{n + 1}.00"]},
            )
            ids.append(row.id)
    return ids


async def _verify_audit_cli(database_url: str) -> subprocess.CompletedProcess[str]:
    """`python cli.py verify-audit` as an operator runs it, with DATABASE_URL pointing at the test database."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "cli.py", "verify-audit"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _owner_connection(database_url: str) -> psycopg.Connection:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute("SET session_replication_role = replica")  # the owner can bypass triggers; an attacker might too
    return conn


async def test_the_database_refuses_update_delete_and_truncate(activity_deps: ActivityDeps) -> None:
    (row_id,) = await _record_many(activity_deps.db, 1)
    statements = [
        "UPDATE audit_log SET action = 'nothing.happened' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
        "TRUNCATE audit_log",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with activity_deps.db.transaction() as tx:
                await tx.session.execute(text(statement), {"id": row_id})
    async with activity_deps.db.transaction() as tx:
        assert (
            await tx.session.scalar(text("SELECT action FROM audit_log WHERE id = :id"), {"id": row_id})
            == "entry.update"
        )


async def test_tampering_with_one_row_is_found_at_that_row(
    activity_deps: ActivityDeps, database_url: str, client, make_user
) -> None:
    superadmin = await make_user("superadmin")
    admin = await make_user("admin")
    ids = await _record_many(activity_deps.db, 6, actor_id=admin.id)
    verdict = (await client.get("/api/v1/admin/audit/verify", headers=superadmin.headers)).json()
    assert verdict == {"ok": True, "rows_checked": 6, "first_broken_id": None, "reason": None}

    tampered = ids[3]
    with _owner_connection(database_url) as conn:
        conn.execute("""UPDATE audit_log SET changes = '{"amount": ["3.00", "3000.00"]}' WHERE id = %s""", (tampered,))

    response = await client.get("/api/v1/admin/audit/verify", headers=superadmin.headers)
    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "rows_checked": 4,
        "first_broken_id": tampered,
        "reason": "content does not match its hash",
    }

    cli = await _verify_audit_cli(database_url)
    assert cli.returncode == 1, cli.stderr
    assert f"BROKEN at row {tampered}" in cli.stdout

    # Only superadmins may verify; admins read the log but get 403 here.
    assert (await client.get("/api/v1/admin/audit/verify", headers=admin.headers)).status_code == 403


async def test_a_removed_row_breaks_the_link_of_the_next_one(activity_deps: ActivityDeps, database_url: str) -> None:
    ids = await _record_many(activity_deps.db, 4)
    with _owner_connection(database_url) as conn:
        conn.execute("DELETE FROM audit_log WHERE id = %s", (ids[1],))
    async with activity_deps.db.transaction() as tx:
        verdict = await verify_chain(tx)
    assert (verdict.ok, verdict.first_broken_id) == (False, ids[2])
    assert "prev_hash" in (verdict.reason or "")


async def test_cli_says_intact_on_a_clean_chain(activity_deps: ActivityDeps, database_url: str) -> None:
    await _record_many(activity_deps.db, 3)
    cli = await _verify_audit_cli(database_url)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "intact: 3 rows" in cli.stdout


async def test_fifty_concurrent_audited_actions_leave_one_unbroken_chain(database_url: str) -> None:
    # Fifty transactions of their own (fifty connections), each recording and committing at the same time.
    engine = create_engine(DatabaseSettings(url=database_url, pool_size=25))
    db = Database(engine)

    async def action(n: int) -> None:
        async with db.transaction() as tx:
            await tx.sql.run("SELECT 1")  # the transaction is open before it asks for the chain head
            await asyncio.sleep(random.random() / 50)
            await record(tx.sql, AuditContext(actor_id=None, request_id=f"r{n}"), "entry.create", "entry", n)
            await asyncio.sleep(random.random() / 50)  # hold the chain head a while before committing

    try:
        await asyncio.gather(*(action(n) for n in range(50)))
        async with db.transaction() as tx:
            verdict = await verify_chain(tx)
            links = (await tx.session.execute(text("SELECT prev_hash, hash FROM audit_log ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert verdict.ok and verdict.rows_checked == 50
    assert links[0].prev_hash == GENESIS_HASH
    assert len({row.prev_hash for row in links}) == 50  # no two rows claim the same predecessor: no fork


def _expense(n: int) -> dict[str, str]:
    return {
        "amount": f"{10 + n}.25",
        "currency": "USD",
        "category": "travel",
        "description": f"audited action {n}",
        "entry_date": "2026-03-04",
        "vendor": "Rail Co",
    }


async def test_fifty_concurrent_api_actions_by_several_users_leave_one_unbroken_chain(client, make_user) -> None:
    """Real requests (creates and If-Match edits by five people at once), each writing its audit row in its own
    request transaction; the verifier then walks an intact chain holding exactly those rows."""
    superadmin = await make_user("superadmin")
    people = [await make_user("employee") for _ in range(5)]
    drafts = []  # one draft per (person, slot), made one at a time: ten audit rows before the burst
    for n in range(10):
        owner = people[n % 5]
        created = await client.post("/api/v1/expenses/", json=_expense(n), headers=owner.headers)
        assert created.status_code == 201, created.text
        drafts.append((owner, created.json()["id"], created.headers["etag"]))

    async def create(n: int):
        owner = people[n % 5]
        return owner, await client.post("/api/v1/expenses/", json=_expense(100 + n), headers=owner.headers)

    async def edit(owner, entry_id: int, etag: str):
        headers = {**owner.headers, "If-Match": etag}
        return owner, await client.patch(f"/api/v1/expenses/{entry_id}", json={"amount": "999.99"}, headers=headers)

    burst = [create(n) for n in range(40)] + [edit(*draft) for draft in drafts]
    random.shuffle(burst)
    answers = await asyncio.gather(*burst)
    assert sorted(response.status_code for _, response in answers) == [200] * 10 + [201] * 40, [
        response.text for _, response in answers if response.status_code not in (200, 201)
    ]

    verdict = await client.get("/api/v1/admin/audit/verify", headers=superadmin.headers)
    assert verdict.status_code == 200
    assert verdict.json() == {"ok": True, "rows_checked": 60, "first_broken_id": None, "reason": None}
    # Every action left its own row, under the person who did it.
    log = "/api/v1/admin/audit"
    for person in people:
        mine = (await client.get(log, params={"actor_id": person.id, "limit": 100}, headers=superadmin.headers)).json()
        actions = sorted(item["action"] for item in mine["items"])
        assert actions == ["entry.created"] * 10 + ["entry.updated"] * 2, person.id
    edits = (await client.get(log, params={"action": "entry.updated", "limit": 100}, headers=superadmin.headers)).json()
    assert sorted(item["resource_id"] for item in edits["items"]) == sorted(str(d[1]) for d in drafts)


async def test_writing_under_repeatable_read_is_refused(activity_deps: ActivityDeps) -> None:
    with pytest.raises(RuntimeError, match="READ COMMITTED"):
        async with activity_deps.db.transaction() as tx:
            await tx.sql.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await record(tx.sql, AuditContext(), "entry.create", "entry", 1)


async def test_writing_outside_a_transaction_is_refused(activity_deps: ActivityDeps) -> None:
    """An autocommit Tx (a read-only route's, a keyless decision's) would release the chain's lock between the lock
    and the insert."""
    with pytest.raises(RuntimeError, match="inside a transaction"):
        async with activity_deps.db.transaction(autocommit=True) as tx:
            await record(tx.sql, AuditContext(), "entry.create", "entry", 1)
    async with activity_deps.db.transaction() as tx:
        assert (await verify_chain(tx)).rows_checked == 0


async def test_awkward_values_still_verify(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        await record(
            tx.sql,
            AuditContext(user_agent="x" * 1000, request_id="r" * 100, policy_rule="p" * 500),
            "backup.run",
            "backup",
            "b" * 200,
            {"duration_seconds": 1e20, "ratio": float("nan"), "name": "Zoë ✓", "nested": {"b": 1, "a": [1.5, None]}},
        )
    async with activity_deps.db.transaction() as tx:
        assert (await verify_chain(tx)).ok


async def test_search_filters_paginates_and_exports_csv(client, make_user, activity_deps: ActivityDeps) -> None:
    admin = await make_user("admin")
    employee = await make_user("employee")
    async with activity_deps.db.transaction() as tx:
        for n in range(3):
            await record(tx.sql, AuditContext(actor_id=employee.id), "entry.create", "entry", n)
        await record(tx.sql, AuditContext(actor_id=employee.id), "entry.delete", "entry", 1)
        await record(
            tx.sql, AuditContext(actor_id=admin.id, user_agent='=HYPERLINK("http://evil")'), "user.update", "user", 7
        )
    url = "/api/v1/admin/audit"
    headers = admin.headers

    everything = (await client.get(url, headers=headers)).json()
    assert everything["total"] == 5
    assert [item["action"] for item in everything["items"]][0] == "user.update"  # newest first
    by_actor = (await client.get(url, params={"actor_id": employee.id}, headers=headers)).json()
    assert by_actor["total"] == 4
    entry_actions = (await client.get(url, params={"action": "entry.*", "limit": 2}, headers=headers)).json()
    assert entry_actions["total"] == 4 and len(entry_actions["items"]) == 2
    exact = (await client.get(url, params={"action": "entry.delete"}, headers=headers)).json()
    assert [item["resource_id"] for item in exact["items"]] == ["1"]
    resource = (await client.get(url, params={"resource_type": "entry", "resource_id": "1"}, headers=headers)).json()
    assert {item["action"] for item in resource["items"]} == {"entry.create", "entry.delete"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get(url, params={"since": future}, headers=headers)).json()["total"] == 0
    assert (await client.get(url, params={"until": future}, headers=headers)).json()["total"] == 5
    backwards = await client.get(url, params={"since": future, "until": "2020-01-01T00:00:00Z"}, headers=headers)
    assert backwards.status_code == 422
    assert (await client.get(url, params={"limit": 500}, headers=headers)).status_code == 422

    export = await client.get(url, params={"format": "csv", "actor_id": admin.id}, headers=headers)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 1 and rows[0]["action"] == "user.update" and rows[0]["resource_id"] == "7"
    assert rows[0]["user_agent"].startswith("'=HYPERLINK")  # a spreadsheet will not run it
    full = list(csv.DictReader(io.StringIO((await client.get(url, params={"format": "csv"}, headers=headers)).text)))
    assert [int(row["id"]) for row in full] == sorted(int(row["id"]) for row in full)  # chain order
    assert len(full) == 5

    assert (await client.get(url, headers=employee.headers)).status_code == 403
    manager = await make_user("manager")
    assert (await client.get(url, params={"format": "csv"}, headers=manager.headers)).status_code == 403


class _ActionFailed(Exception):
    pass


async def test_rows_rolled_back_leave_no_gap_in_the_chain(activity_deps: ActivityDeps) -> None:
    await _record_many(activity_deps.db, 2)
    with pytest.raises(_ActionFailed):
        async with activity_deps.db.transaction() as tx:
            await record(tx.sql, AuditContext(), "entry.create", "entry", 99)
            raise _ActionFailed  # its transaction rolls back: the audit row goes with it, and its id is skipped
    await _record_many(activity_deps.db, 2)
    async with activity_deps.db.transaction() as tx:
        verdict = await verify_chain(tx)
        count = await tx.session.scalar(text("SELECT count(*) FROM audit_log"))
    assert verdict.ok and verdict.rows_checked == 4 == count
    assert AuditLog.__tablename__ == "audit_log"
