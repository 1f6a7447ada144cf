"""Receipts' files in backups and restore drills (moto's S3): a backup copies every stored receipt's file into its
set with a manifest of keys and SHA-256s, taken in the dump's snapshot; the drill checks that every stored
attachment row of the restored database has its file there with the right SHA-256, and names any that has not."""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from pathlib import Path

import psycopg
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import Settings
from core.storage import S3Storage
from domain.attachments import repository as attachments
from domain.attachments.repository import STORED, NewAttachment
from domain.attachments.service import storage_key_for
from domain.backups import receipt_files
from domain.backups.restore import plan_restore, restore
from domain.models import Backup, RestoreDrill
from tests.attachments.conftest import JPEG, PDF
from tests.backups.conftest import BackupWorker, Seeded
from tests.backups.test_backup import _run_backup
from tests.backups.test_drill import _run_drill


async def _receipts(deps: ActivityDeps, storage: S3Storage, files: list[bytes]) -> list[attachments.AttachmentRow]:
    """Stored receipts on the seeded expenses (one file each), their objects in the bucket."""
    rows = []
    async with deps.db.transaction() as tx:
        entry_ids = [row[0] for row in await tx.sql.all("SELECT id FROM entries WHERE kind = 'expense' ORDER BY id")]
        owner = await tx.sql.scalar("SELECT owner_id FROM entries WHERE id = %s", (entry_ids[0],))
        for n, content in enumerate(files):
            entry_id = entry_ids[n % len(entry_ids)]
            key = storage_key_for(entry_id)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "file"
                path.write_bytes(content)
                storage.put_file(key, path)
            sha = hashlib.sha256(content).hexdigest()
            new = NewAttachment(entry_id, f"r{n}.pdf", "application/pdf", len(content), sha, key, STORED, owner)
            rows.append(await attachments.insert(tx.sql, new))
    return rows


async def _backup_row(deps: ActivityDeps, backup_id: int) -> Backup:
    async with deps.db.transaction() as tx:
        backup = await tx.session.get(Backup, backup_id)
    assert backup is not None
    return backup


async def _drill_details(deps: ActivityDeps, drill_id: int) -> dict:
    async with deps.db.transaction() as tx:
        drill = await tx.session.get(RestoreDrill, drill_id)
    assert drill is not None
    return dict(drill.details)


async def test_a_backup_keeps_every_receipt_file_and_the_drill_verifies_them(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3: S3Storage, s3_deps: ActivityDeps
) -> None:
    rows = await _receipts(s3_deps, s3, [PDF, JPEG, PDF])  # the same PDF on two expenses: kept once
    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker)

    prefix = receipt_files.files_prefix(result.storage_key)
    kept = {item.key: item.size for item in s3.list(prefix)}
    assert kept == {
        prefix + hashlib.sha256(PDF).hexdigest(): len(PDF),
        prefix + hashlib.sha256(JPEG).hexdigest(): len(JPEG),
    }
    manifest = json.loads(s3.open(receipt_files.manifest_key(result.storage_key)).read())
    assert sorted((item["key"], item["sha256"]) for item in manifest["files"]) == sorted(
        (row.storage_key, row.sha256) for row in rows
    )
    backup = await _backup_row(s3_deps, result.backup_id)
    assert backup.manifest["attachments"]["files"] == 3 and backup.manifest["attachments"]["missing_count"] == 0
    assert backup.manifest["tables"]["attachments"] == {"rows": 3, "stored_bytes": 2 * len(PDF) + len(JPEG)}

    drill = await _run_drill(temporal_client, backup_worker, result.backup_id)
    assert (drill.status, drill.reason) == ("passed", None)
    checked = (await _drill_details(s3_deps, drill.drill_id))["attachments"]
    assert checked["ok"] and checked["checked"] == 3

    # Pruning the backup takes its receipt files with it.
    assert receipt_files.delete_backup_files(s3, result.storage_key) == 2
    assert list(s3.list(prefix)) == [] and not s3.exists(receipt_files.manifest_key(result.storage_key))


async def test_the_drill_fails_on_a_damaged_receipt_copy_and_names_it(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3: S3Storage, s3_deps: ActivityDeps
) -> None:
    [pdf, jpeg] = await _receipts(s3_deps, s3, [PDF, JPEG])
    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker)
    copy = receipt_files.files_prefix(result.storage_key) + hashlib.sha256(JPEG).hexdigest()
    s3.client.put_object(Bucket=s3.bucket, Key=copy, Body=JPEG[:-1] + b"\x00")  # one byte changed

    drill = await _run_drill(temporal_client, backup_worker, result.backup_id)
    assert drill.status == "failed"
    assert drill.reason is not None and "SHA-256" in drill.reason and jpeg.storage_key in drill.reason
    checked = (await _drill_details(s3_deps, drill.drill_id))["attachments"]
    assert checked["mismatched"] == [jpeg.storage_key] and checked["missing"] == []
    assert pdf.storage_key not in drill.reason


async def test_a_receipt_missing_at_backup_time_fails_the_drill_not_the_backup(
    temporal_client: Client, backup_worker: BackupWorker, seeded: Seeded, s3: S3Storage, s3_deps: ActivityDeps
) -> None:
    [lost, _kept] = await _receipts(s3_deps, s3, [PDF, JPEG])
    s3.delete(lost.storage_key)
    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker)  # the database's dump is still worth keeping
    backup = await _backup_row(s3_deps, result.backup_id)
    assert backup.status == "completed"
    assert backup.manifest["attachments"]["missing"] == [lost.storage_key]

    drill = await _run_drill(temporal_client, backup_worker, result.backup_id)
    assert drill.status == "failed"
    assert drill.reason is not None and "missing" in drill.reason and lost.storage_key in drill.reason


async def test_a_restore_puts_back_a_receipt_file_lost_after_the_backup(
    temporal_client: Client,
    backup_worker: BackupWorker,
    seeded: Seeded,
    s3: S3Storage,
    s3_deps: ActivityDeps,
    s3_settings: Settings,
    database_url: str,
) -> None:
    [lost, kept] = await _receipts(s3_deps, s3, [PDF, JPEG])
    backup_worker.start()
    result = await _run_backup(temporal_client, backup_worker)
    s3.delete(lost.storage_key)
    database = f"restored_{uuid.uuid4().hex[:8]}"
    try:
        plan = await plan_restore(s3_settings, s3, backup_id=result.backup_id, key=None, sha256=None)
        report = await restore(s3_settings, s3, plan, database)
        assert report.ok, (report.differences, report.receipts_problem)
        assert (report.receipts_checked, report.receipts_put_back) == (2, 1)
        assert s3.open(lost.storage_key).read() == PDF
        assert s3.open(kept.storage_key).read() == JPEG
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
