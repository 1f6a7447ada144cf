"""The audit chain keyed: HMAC-SHA-256 under AUDIT_HMAC_KEY, a key the database never holds. Someone who can write
the database but lacks the key can edit a row, but cannot make the chain verify again; rows from before the switch
keep their plain SHA-256 and still verify."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import select

from activities.deps import ActivityDeps
from core.db import Database
from core.settings import PROJECT_ROOT, DatabaseSettings, audit_key
from domain.audit.service import GENESIS_HASH, AuditContext, keyed_hash, plain_hash, record, verify_chain
from domain.models import AuditLog
from tests.services import admin_database_url, alembic_config, migrate, scratch_database

pytestmark = pytest.mark.usefixtures("database_url")

BEFORE_THE_KEY = "0008_approval_controls"
ANOTHER_KEY = b"k" * 48


async def _record_many(db: Database, count: int) -> list[int]:
    async with db.transaction() as tx:
        return [
            (await record(tx.sql, AuditContext(actor_id=None), "entry.update", "entry", n, {"amount": [n, n + 1]})).id
            for n in range(count)
        ]


async def _rows(db: Database) -> list[AuditLog]:
    async with db.transaction() as tx:
        rows = list(await tx.session.scalars(select(AuditLog).order_by(AuditLog.id)))
        tx.session.expunge_all()
    return rows


def _rewrite(database_url: str, rows: list[AuditLog]) -> None:
    """Write these rows' content and hashes over the stored ones, as the tables' owner would (triggers bypassed)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for row in rows:
            conn.execute(
                "UPDATE audit_log SET changes = %s, prev_hash = %s, hash = %s WHERE id = %s",
                (Jsonb(row.changes), row.prev_hash, row.hash, row.id),
            )


def _forge(rows: list[AuditLog], start: int, rehash: Any) -> list[AuditLog]:
    """Change the row at `start` and re-chain it and every row after it with `rehash` (what someone without the key
    can compute: plain SHA-256, or an HMAC under a key of their own)."""
    rows[start].changes = {"amount": ["3", "3000"]}
    previous = rows[start - 1].hash if start else GENESIS_HASH
    for row in rows[start:]:
        row.prev_hash = previous
        row.hash = previous = rehash(row)
    return rows[start:]


async def _verdict(db: Database, key: bytes | None = None):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await verify_chain(tx, key)


async def test_rows_are_hmacs_under_the_key_not_plain_hashes(activity_deps: ActivityDeps) -> None:
    await _record_many(activity_deps.db, 3)
    rows = await _rows(activity_deps.db)
    assert [row.hash for row in rows] == [keyed_hash(row, audit_key()) for row in rows]
    assert all(plain_hash(row) != row.hash for row in rows)
    assert (await _verdict(activity_deps.db)).ok
    # The key is the process's, never the database's: no row, function or setting there holds it.
    with psycopg.connect(activity_deps.settings.db.url) as conn:
        dump = conn.execute(
            "SELECT string_agg(t::text, '') FROM (SELECT * FROM audit_log) t "
            "UNION ALL SELECT string_agg(prosrc, '') FROM pg_proc "
            "UNION ALL SELECT string_agg(setting, '') FROM pg_settings"
        ).fetchall()
    assert not any(audit_key().decode() in (text or "") for (text,) in dump)


@pytest.mark.parametrize("how", ["that row only", "that row and every row after it"])
async def test_a_row_edited_and_rehashed_without_the_key_is_named(
    activity_deps: ActivityDeps, database_url: str, client, make_user, how: str
) -> None:
    superadmin = await make_user("superadmin")
    await _record_many(activity_deps.db, 6)
    rows = await _rows(activity_deps.db)
    forged = _forge(rows, 3, plain_hash)
    _rewrite(database_url, forged[:1] if how == "that row only" else forged)

    verdict = (await client.get("/api/v1/admin/audit/verify", headers=superadmin.headers)).json()
    assert (verdict["ok"], verdict["first_broken_id"], verdict["rows_checked"]) == (False, rows[3].id, 4)
    assert "hashed without the key (plain SHA-256) though the chain is keyed from row" in verdict["reason"]
    cli = await _verify_audit_cli(database_url)
    assert cli.returncode == 1 and f"BROKEN at row {rows[3].id}: hashed without the key" in cli.stdout


async def test_a_whole_chain_rehashed_without_the_key_does_not_pass_for_old_rows(
    activity_deps: ActivityDeps, database_url: str
) -> None:
    """Plain SHA-256 rows are accepted only before the first keyed row; a chain of nothing but plain rows cannot be
    the rows before the switch, since migration 0009 seals those with a keyed row."""
    await _record_many(activity_deps.db, 4)
    rows = await _rows(activity_deps.db)
    _rewrite(database_url, _forge(rows, 0, plain_hash))

    verdict = await _verdict(activity_deps.db)
    assert (verdict.ok, verdict.first_broken_id) == (False, rows[0].id)
    assert "no keyed row follows them" in (verdict.reason or "")


async def test_a_row_rehashed_under_another_key_is_named(activity_deps: ActivityDeps, database_url: str) -> None:
    await _record_many(activity_deps.db, 5)
    rows = await _rows(activity_deps.db)
    _rewrite(database_url, _forge(rows, 2, lambda row: keyed_hash(row, ANOTHER_KEY)))
    verdict = await _verdict(activity_deps.db)
    assert (verdict.ok, verdict.first_broken_id, verdict.reason) == (
        False,
        rows[2].id,
        "content does not match its hash",
    )


async def test_checking_with_the_wrong_key_says_so(activity_deps: ActivityDeps, database_url: str) -> None:
    ids = await _record_many(activity_deps.db, 2)
    verdict = await _verdict(activity_deps.db, ANOTHER_KEY)
    assert (verdict.ok, verdict.first_broken_id) == (False, ids[0])
    assert "AUDIT_HMAC_KEY is not the key the chain was written with" in (verdict.reason or "")

    cli = await _verify_audit_cli(database_url, AUDIT_HMAC_KEY=ANOTHER_KEY.decode())
    assert cli.returncode == 1 and f"BROKEN at row {ids[0]}" in cli.stdout
    assert "AUDIT_HMAC_KEY is not the key" in cli.stdout
    refused = await _verify_audit_cli(database_url, APP_ENV="production", SECRET_KEY="s" * 48, AUDIT_HMAC_KEY="")
    assert refused.returncode == 2 and "AUDIT_HMAC_KEY is not set; with APP_ENV=production" in refused.stderr


async def _verify_audit_cli(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "cli.py", "verify-audit"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- rows from before the switch ----------------------------------------------------------------------------------


def _legacy_rows(url: str, count: int) -> list[int]:
    """Rows as the code before migration 0009 wrote them: chained with plain SHA-256."""
    previous, ids = GENESIS_HASH, []
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(count):
            row = AuditLog(
                id=n + 1,
                occurred_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(minutes=n),
                actor_id=None,
                action="entry.created",
                resource_type="entry",
                resource_id=str(n),
                changes={"amount": [None, f"{n}.00"]},
                request_id=None,
                client_ip=None,
                user_agent=None,
                workflow_id=None,
                policy_rule=None,
                prev_hash=previous,
            )
            row.hash = previous = plain_hash(row)
            conn.execute(
                "INSERT INTO audit_log (id, occurred_at, action, resource_type, resource_id, changes, prev_hash, hash)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (row.id, row.occurred_at, row.action, row.resource_type, row.resource_id, Jsonb(row.changes))
                + (row.prev_hash, row.hash),
            )
            ids.append(row.id)
        conn.execute("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), %s)", (count,))
    return ids


async def test_rows_from_before_the_switch_keep_verifying_and_are_sealed() -> None:
    with scratch_database(admin_database_url(), "finance_audit_key") as url:
        await asyncio.to_thread(migrate, url, BEFORE_THE_KEY)
        legacy = await asyncio.to_thread(_legacy_rows, url, 3)
        await asyncio.to_thread(migrate, url)  # 0009 seals them with a keyed row
        db = Database.connect(DatabaseSettings(url=url, pool_size=1))
        try:
            await _record_many(db, 2)
            rows = await _rows(db)
            seal = rows[3]
            assert (seal.action, seal.resource_id, seal.prev_hash) == (
                "audit.chain_keyed",
                str(legacy[-1]),
                rows[2].hash,
            )
            assert seal.changes == {"legacy_rows": 3, "legacy_head_id": 3, "legacy_head": rows[2].hash}
            assert [row.hash == keyed_hash(row, audit_key()) for row in rows] == [False] * 3 + [True] * 3
            verdict = await _verdict(db)
            assert (verdict.ok, verdict.rows_checked, verdict.legacy_rows) == (True, 6, 3)
            cli = await _verify_audit_cli(url)
            assert "audit chain intact: 6 rows (3 from before the chain was keyed)" in cli.stdout, cli.stderr

            # An old row edited and rehashed (plain, as it was) breaks the link of the next: still caught.
            rows[1].changes = {"amount": [None, "999.00"]}
            rows[1].hash = plain_hash(rows[1])
            await asyncio.to_thread(_rewrite, url, [rows[1]])
            verdict = await _verdict(db)
            assert (verdict.ok, verdict.first_broken_id) == (False, rows[2].id)

            # The seal and everything after it rewritten as if from before the switch: refused.
            fresh = await _rows(db)
            await asyncio.to_thread(_rewrite, url, _forge(fresh, 1, plain_hash))
            verdict = await _verdict(db)
            assert (verdict.ok, verdict.first_broken_id) == (False, fresh[0].id)
            assert "no keyed row follows them" in (verdict.reason or "")
        finally:
            await db.dispose()
        # Going back would leave keyed rows the old code calls broken.
        from alembic import command

        with pytest.raises(RuntimeError, match="restore a backup taken before the upgrade"):
            await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE_THE_KEY)
