"""BackupWorkflow against moto's S3 over HTTP: the object, its checksum, a crash mid-upload, retention."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowFailureError

from activities.deps import ActivityDeps
from core.settings import PROJECT_ROOT, Settings
from core.storage import S3Storage
from core.temporal import task_queues
from domain.metrics.gauges import DatabaseGauges
from domain.models import Backup, Notification
from tests.backups.conftest import BackupWorker, Seeded
from workflows.contracts import BackupInput, BackupResult, backup_workflow_id

PART = 8 * 1024


def _download(s3: S3Storage, key: str) -> bytes:
    return s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def _unique_id() -> str:
    # The real shape plus a suffix: tests start several backups within one second.
    return f"{backup_workflow_id(datetime.now(UTC))}-{uuid.uuid4().hex[:6]}"


def _gauge(gauges: DatabaseGauges, name: str) -> float:
    return next(sample.value for metric in gauges.collect() for sample in metric.samples if sample.name == name)


async def _run_backup(client: Client, runner: BackupWorker, part_size: int | None = PART) -> BackupResult:
    return await client.execute_workflow(
        "BackupWorkflow",
        BackupInput(part_size_bytes=part_size, heartbeat_seconds=2),
        id=_unique_id(),
        task_queue=runner.task_queue,
        result_type=BackupResult,
        execution_timeout=timedelta(seconds=90),
    )


async def test_backup_lands_in_s3_with_its_checksum_and_manifest(
    temporal_client: Client, backup_worker: BackupWorker, s3: S3Storage, seeded: Seeded, s3_deps: ActivityDeps
) -> None:
    gauges = DatabaseGauges(s3_deps.db, ttl=0)  # what GET /metrics serves: the alert's input
    await gauges.refresh()
    assert math.isinf(_gauge(gauges, "finance_backup_last_success_age_seconds"))  # none yet: the alert would fire
    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker)
    await gauges.refresh()
    assert 0 <= _gauge(gauges, "finance_backup_last_success_age_seconds") < 60

    body = _download(s3, result.storage_key)
    assert len(body) == result.size_bytes > 3 * PART  # a real multipart upload
    assert hashlib.sha256(body).hexdigest() == result.sha256
    assert body[:5] == b"PGDMP"  # pg_dump's custom format
    head = s3.client.head_object(Bucket=s3.bucket, Key=result.storage_key, ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == result.sha256
    assert head["ServerSideEncryption"] == "AES256"
    assert head.get("ChecksumSHA256")  # S3 verified every part's SHA-256 on receipt
    assert result.storage_key.startswith("backups/backup-")

    async with s3_deps.db.transaction() as tx:
        row = await tx.session.scalar(select(Backup).where(Backup.id == result.backup_id))
    assert row is not None and row.status == "completed"
    assert (row.sha256, row.size_bytes, row.storage_key) == (result.sha256, result.size_bytes, result.storage_key)
    tables = row.manifest["tables"]
    assert tables["entries.revenue"] == {"rows": 3, "amount_sum": str(seeded.revenue_sum)}
    assert tables["entries.expense"] == {"rows": 2, "amount_sum": str(seeded.expense_sum)}
    assert tables["approval_requests"] == {"rows": 1, "amount_sum": "1500.00"}
    assert tables["users"] == {"rows": 2}
    assert tables["audit_log"] == {"rows": 3}
    with psycopg.connect(s3_deps.settings.db.url) as conn:  # the head is the last audit row at dump time
        head = conn.execute("SELECT id, hash FROM audit_log WHERE action = 'test.seeded' ORDER BY id DESC").fetchone()
    assert head is not None
    assert (row.manifest["audit_head_id"], row.manifest["audit_head_hash"]) == head
    assert row.duration_seconds is not None and row.duration_seconds > 0


async def _worker_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.backups.upload_worker", cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE
    )
    await _line(process, "ready", 60)
    return process


async def _line(process: asyncio.subprocess.Process, wanted: str, seconds: float) -> str:
    """The first line of the process's output that starts with `wanted`."""
    assert process.stdout is not None
    async with asyncio.timeout(seconds):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the worker process ended early"
            if line.startswith(wanted):
                return line.strip()


async def _killed(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()  # SIGKILL: no shutdown, no last heartbeat, no cleanup
        await process.wait()


async def test_a_worker_killed_mid_upload_and_restarted_leaves_one_complete_object(
    temporal_client: Client, s3_settings: Settings, s3: S3Storage, seeded: Seeded, s3_deps: ActivityDeps, tmp_path: Path
) -> None:
    """SIGKILL of a worker process after three parts; a new process on the same machine continues the same
    multipart upload from part 4 (the dump and the heartbeat survive the crash) and completes it."""
    storage = s3_settings.storage
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": s3_settings.db.url,
        "SECRET_KEY": s3_settings.auth.secret_key,
        "TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE_PREFIX": s3_settings.temporal.task_queue_prefix,
        "S3_BUCKET": storage.bucket,
        "S3_ENDPOINT_URL": storage.endpoint_url,
        "AWS_REGION": storage.region,
        "AWS_ACCESS_KEY_ID": storage.access_key_id,
        "AWS_SECRET_ACCESS_KEY": storage.secret_access_key,
        "S3_SERVER_SIDE_ENCRYPTION": storage.server_side_encryption,
        "MAIL_DIR": str(tmp_path / "mail"),
        "BACKUP_WORK_DIR": str(tmp_path / "work"),
    }
    first = await _worker_process({**env, "HANG_AFTER_PART": "3"})
    try:
        handle = await temporal_client.start_workflow(
            "BackupWorkflow",
            BackupInput(part_size_bytes=PART, heartbeat_seconds=4),
            id=_unique_id(),
            task_queue=task_queues(s3_settings.temporal).backups,
            result_type=BackupResult,
            execution_timeout=timedelta(seconds=120),
        )
        await _line(first, "uploaded 3", 60)
        # Kill once the server holds the heartbeat that records the three parts (the SDK batches heartbeats).
        async with asyncio.timeout(10):
            while (await _heartbeat_parts(temporal_client, handle.id)) != 3:
                await asyncio.sleep(0.05)
        await _killed(first)
    finally:
        await _killed(first)
    assert len(s3.pending_uploads("backups/")) == 1  # half done, as the crash left it
    assert list(s3.list("backups/")) == []

    second = await _worker_process(env)  # "restarted"
    try:
        resumed_at = await _line(second, "uploaded", 60)
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        await _killed(second)

    assert resumed_at == "uploaded 4" and result.resumed_from_part == 4  # parts 1-3 were not sent again
    objects = list(s3.list("backups/"))
    assert [(o.key, o.size) for o in objects] == [(result.storage_key, result.size_bytes)]  # exactly one, whole
    assert s3.pending_uploads("backups/") == []  # and no dangling multipart upload
    body = _download(s3, result.storage_key)
    assert hashlib.sha256(body).hexdigest() == result.sha256 and body[:5] == b"PGDMP"
    assert len(body) > 4 * PART  # parts after the resume point were really uploaded by the new process
    async with s3_deps.db.transaction() as tx:
        row = await tx.session.scalar(select(Backup).where(Backup.id == result.backup_id))
    assert row is not None and (row.status, row.sha256, row.size_bytes) == ("completed", result.sha256, len(body))


async def _heartbeat_parts(client: Client, workflow_id: str) -> int:
    """How many uploaded parts the create_backup activity's last heartbeat (as the server holds it) records."""
    pending = (await client.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities
    if not pending or not pending[0].heartbeat_details.payloads:
        return 0
    details = await client.data_converter.decode(pending[0].heartbeat_details.payloads)
    return len(details[0]["parts"])


async def test_retention_prunes_old_backups_and_their_objects(
    temporal_client: Client, backup_worker: BackupWorker, s3: S3Storage, seeded: Seeded, s3_deps: ActivityDeps
) -> None:
    s3_deps.settings.backups.keep_daily = 2
    s3_deps.settings.backups.keep_monthly = 0
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday_noon, yesterday_morning = today - timedelta(days=1), today - timedelta(days=1, hours=4)
    three_days_ago = today - timedelta(days=3)
    rows: dict[str, Backup] = {}
    async with s3_deps.db.transaction() as tx:
        for name, started in (("noon", yesterday_noon), ("morning", yesterday_morning), ("old", three_days_ago)):
            key = f"backups/{name}.dump"
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"PGDMP old")
            rows[name] = Backup(
                workflow_id=f"backup-{name}", status="completed", storage_key=key, started_at=started, manifest={}
            )
        rows["failed"] = Backup(workflow_id="backup-failed", status="failed", started_at=three_days_ago, manifest={})
        tx.session.add_all(rows.values())

    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker, part_size=None)

    assert sorted(result.pruned_ids) == sorted([rows["morning"].id, rows["old"].id])
    keys = {o.key for o in s3.list("backups/")}
    assert keys == {result.storage_key, "backups/noon.dump"}
    async with s3_deps.db.transaction() as tx:
        status = dict((await tx.session.execute(select(Backup.workflow_id, Backup.status))).tuples().all())
    assert status["backup-morning"] == status["backup-old"] == "pruned"
    assert status["backup-noon"] == "completed"
    assert status["backup-failed"] == "failed"
    assert status[result.workflow_id] == "completed"


async def test_a_backup_without_matching_pg_tools_fails_clearly_and_alerts_superadmins(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3_deps: ActivityDeps, tmp_path: Path
) -> None:
    wrong = tmp_path / "pg9" / "bin"
    wrong.mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore"):
        (wrong / tool).write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) 9.6.24'\n")
        (wrong / tool).chmod(0o755)
    s3_deps.settings.backups.pg_bin_dir = str(wrong)
    backup_worker.start()

    with pytest.raises(WorkflowFailureError):
        await _run_backup(temporal_client, backup_worker)

    async with s3_deps.db.transaction() as tx:
        row = await tx.session.scalar(select(Backup))
        alerts = (await tx.session.scalars(select(Notification).where(Notification.user_id == seeded.admin.id))).all()
    assert row is not None and row.status == "failed" and row.error is not None
    assert "no pg_dump/pg_restore for PostgreSQL 15" in row.error and "pg_dump 9" in row.error
    assert [a.event_type for a in alerts] == ["backup_failed"]
