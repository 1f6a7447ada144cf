"""Restore drills and the restore command: a good backup restores whole, a damaged one is caught and named."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import psycopg
from sqlalchemy import select, update
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import PROJECT_ROOT, Settings
from core.storage import S3Storage, sha256_of
from domain.backups import pg_tools as pg
from domain.models import Backup, Notification, RestoreDrill
from tests.backups.conftest import BackupWorker, Seeded
from tests.backups.test_backup import _run_backup
from tests.services import with_database
from workflows.contracts import DrillInput, DrillResult, restore_drill_workflow_id


async def _run_drill(client: Client, runner: BackupWorker, backup_id: int | None = None) -> DrillResult:
    return await client.execute_workflow(
        "RestoreDrillWorkflow",
        DrillInput(backup_id=backup_id, heartbeat_seconds=5),
        id=f"{restore_drill_workflow_id(datetime.now(UTC))}-{uuid.uuid4().hex[:6]}",
        task_queue=runner.task_queue,
        result_type=DrillResult,
        execution_timeout=timedelta(seconds=120),
    )


def _scratch_databases(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'restore_drill_%'").fetchall()
    return [row[0] for row in rows]


async def _drill_row(deps: ActivityDeps, drill_id: int) -> RestoreDrill:
    async with deps.db.transaction() as tx:
        drill = await tx.session.get(RestoreDrill, drill_id)
    assert drill is not None
    return drill


async def test_drill_passes_on_a_good_backup(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3_deps: ActivityDeps, database_url: str
) -> None:
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)
    result = await _run_drill(temporal_client, backup_worker)  # the latest backup

    assert (result.status, result.reason, result.backup_id) == ("passed", None, backup.backup_id)
    drill = await _drill_row(s3_deps, result.drill_id)
    assert drill.status == "passed" and drill.finished_at is not None
    assert drill.details["checksum"]["ok"] and drill.details["manifest"]["ok"]
    assert drill.details["audit_chain"] == {"ok": True, "rows_checked": 3, "first_broken_id": None, "reason": None}
    assert drill.details["audit_head"]["ok"] and drill.details["audit_head"]["restored"]["id"] == 3
    assert _scratch_databases(database_url) == []  # the scratch copy is dropped


async def test_drill_fails_on_a_corrupted_object_and_alerts_superadmins(
    temporal_client: Client,
    backup_worker: BackupWorker,
    seeded: Seeded,
    s3: S3Storage,
    s3_deps: ActivityDeps,
    settings: Settings,
    database_url: str,
) -> None:
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)
    body = bytearray(s3.client.get_object(Bucket=s3.bucket, Key=backup.storage_key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # flip one byte in the stored object
    s3.client.put_object(Bucket=s3.bucket, Key=backup.storage_key, Body=bytes(body))

    result = await _run_drill(temporal_client, backup_worker, backup.backup_id)

    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith("checksum mismatch")
    assert backup.sha256 in result.reason
    drill = await _drill_row(s3_deps, result.drill_id)
    assert drill.status == "failed" and drill.error == result.reason
    async with s3_deps.db.transaction() as tx:
        alerts = (await tx.session.scalars(select(Notification).where(Notification.user_id == seeded.admin.id))).all()
    assert [a.event_type for a in alerts] == ["restore_drill_failed"]
    assert "checksum mismatch" in alerts[0].body
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in settings.smtp.mail_dir.glob("*.eml")]
    assert any("Restore drill failed" in str(m["Subject"]) and seeded.admin.email in str(m["To"]) for m in mails)
    assert _scratch_databases(database_url) == []


async def test_drill_names_rows_that_differ_from_the_manifest(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3_deps: ActivityDeps
) -> None:
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)
    async with s3_deps.db.transaction() as tx:
        row = await tx.session.get(Backup, backup.backup_id)
        assert row is not None
        manifest = dict(row.manifest)
        manifest["tables"] = {**manifest["tables"], "entries.revenue": {"rows": 4, "amount_sum": "1400.50"}}
        await tx.session.execute(update(Backup).where(Backup.id == row.id).values(manifest=manifest))

    result = await _run_drill(temporal_client, backup_worker, backup.backup_id)

    assert result.status == "failed"
    assert result.reason is not None
    assert "entries.revenue rows: backup 4, restored 3" in result.reason
    assert f"entries.revenue amount_sum: backup 1400.50, restored {seeded.revenue_sum}" in result.reason


async def test_drill_finds_a_broken_audit_chain_in_the_copy(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3_deps: ActivityDeps, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:  # tamper as the owner, past the triggers
        conn.execute("SET session_replication_role = replica")
        victim = conn.execute("SELECT min(id) FROM audit_log").fetchone()[0]  # type: ignore[index]
        conn.execute("""UPDATE audit_log SET changes = '{"n": 99}' WHERE id = %s""", (victim,))
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)

    result = await _run_drill(temporal_client, backup_worker, backup.backup_id)

    assert result.status == "failed"
    # The first row: no row has verified under the worker's key yet, so the reason also names a wrong key.
    assert result.reason == (
        f"audit chain broken in the restored copy at row {victim}: content does not match its hash "
        "(or AUDIT_HMAC_KEY is not the key the chain was written with)"
    )


async def test_drill_catches_an_audit_chain_whose_tail_is_missing(
    temporal_client: Client,
    backup_worker: BackupWorker,
    seeded: Seeded,
    s3: S3Storage,
    s3_deps: ActivityDeps,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A dump whose audit log lost its last rows still verifies (every link it holds is intact): only the head
    recorded at dump time shows the tail is gone."""
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)
    async with s3_deps.db.transaction() as tx:
        row = await tx.session.get(Backup, backup.backup_id)
    assert row is not None
    head_id = row.manifest["audit_head_id"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT max(id) FROM audit_log WHERE hash = %s", (row.manifest["audit_head_hash"],)
        ).fetchone() == (head_id,)
    # A damaged copy of the database, dumped and stored in the backup's place with a checksum that matches.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # past the append-only triggers, as the owner
        conn.execute("DELETE FROM audit_log WHERE id >= %s", (head_id - 1,))
    server = pg.connection_for(database_url)
    tools = pg.find_pg_tools(await pg.server_major_of(server), s3_deps.settings.backups.pg_bin_dir)
    damaged = tmp_path / "damaged.dump"
    await pg.pg_dump(tools, server, damaged)
    s3.client.put_object(Bucket=s3.bucket, Key=backup.storage_key, Body=damaged.read_bytes())
    async with s3_deps.db.transaction() as tx:
        await tx.session.execute(update(Backup).where(Backup.id == row.id).values(sha256=sha256_of(damaged)))

    result = await _run_drill(temporal_client, backup_worker, backup.backup_id)

    assert result.status == "failed"
    assert result.reason == (
        f"audit chain tail missing in the restored copy: it ends at row {head_id - 2}, "
        f"the backup's head is row {head_id}"
    )
    drill = await _drill_row(s3_deps, result.drill_id)
    assert drill.details["checksum"]["ok"] and drill.details["audit_chain"]["ok"]  # each link it has holds
    assert drill.details["audit_head"]["ok"] is False


async def test_restore_command_gives_a_database_with_the_same_rows_and_sums(
    temporal_client: Client,
    backup_worker: BackupWorker,
    seeded: Seeded,
    s3_settings: Settings,
    database_url: str,
) -> None:
    # The source as the dump sees it (the backup itself then appends an audit row).
    queries = [
        "SELECT kind, count(*), sum(amount) FROM entries GROUP BY kind ORDER BY kind",
        "SELECT id, kind, amount, owner_id, status FROM entries ORDER BY id",
        "SELECT id, email, role FROM users ORDER BY id",
        "SELECT id, amount, title FROM approval_requests ORDER BY id",
        "SELECT id, hash, prev_hash FROM audit_log ORDER BY id",
    ]
    with psycopg.connect(database_url) as source:
        expected = [source.execute(q).fetchall() for q in queries]
    backup_worker.start()
    backup = await _run_backup(temporal_client, backup_worker)
    storage = s3_settings.storage
    env = {
        **os.environ,
        "APP_ENV": "test",
        "SECRET_KEY": s3_settings.auth.secret_key,  # outside dev the CLI refuses to start without one
        "DATABASE_URL": database_url,
        "S3_BUCKET": storage.bucket,
        "S3_ENDPOINT_URL": storage.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    by_id, by_key = f"restored_{uuid.uuid4().hex[:8]}", f"restored_{uuid.uuid4().hex[:8]}"
    elsewhere = f"restored_{uuid.uuid4().hex[:8]}"

    def cli(*args: str, database_url: str = database_url, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "cli.py", "restore", *args],
            cwd=PROJECT_ROOT,
            env={**env, "DATABASE_URL": database_url, **more},
            capture_output=True,
            text=True,
        )

    try:
        first = cli("--backup-id", str(backup.backup_id), "--database", by_id)
        assert first.returncode == 0, first.stderr
        assert "audit chain: intact (3 rows)" in first.stdout
        # Disaster: the application database is gone; the key and the object's recorded SHA-256 suffice.
        gone = with_database(database_url, f"gone_{uuid.uuid4().hex[:8]}")
        second = cli("--key", backup.storage_key, "--database", by_key, database_url=gone)
        assert second.returncode == 0, second.stderr
        assert f"sha256 {backup.sha256} (verified)" in second.stdout
        again = cli("--backup-id", str(backup.backup_id), "--database", by_id)
        assert again.returncode == 1 and "already has tables" in again.stderr
        # The audit key is not in the backup: restored under another key, the chain cannot be vouched for.
        foreign = cli("--backup-id", str(backup.backup_id), "--database", elsewhere, AUDIT_HMAC_KEY="f" * 48)
        assert foreign.returncode == 1 and "audit chain: BROKEN at row" in foreign.stdout
        assert "AUDIT_HMAC_KEY is not the key the chain was written with" in foreign.stdout

        for name in (by_id, by_key):
            with psycopg.connect(with_database(database_url, name)) as copy:
                assert [copy.execute(q).fetchall() for q in queries] == expected
        assert expected[0] == [("expense", 2, seeded.expense_sum), ("revenue", 3, seeded.revenue_sum)]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for name in (by_id, by_key, elsewhere):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
