"""Backup activities: dump + checksum + upload as ONE heartbeating activity (the dump file lives on the worker
that made it), the manifest row, retention, and the restore drill (restore into a scratch database and verify).

Resuming after a worker crash: the heartbeat carries the dump's SHA-256, its manifest and the multipart upload's
id and uploaded parts. The retry finds the dump again under a path keyed by the workflow id; when it is there and
hashes the same, the upload continues after the last recorded part. Otherwise (another machine, or the file is
gone) the old upload is aborted and the dump taken afresh, so parts of two different dumps never mix.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from core.settings import to_psycopg_url
from core.storage import S3Storage, sha256_of
from domain.attachments import repository as attachments
from domain.audit.service import AuditContext, verify_chain
from domain.backups import pg_tools as pg
from domain.backups import receipt_files, service
from domain.backups.manifest import audit_head_problem, table_differences, take_manifest
from domain.backups.restore import one_off_transaction
from domain.errors import DomainError
from domain.models import Role
from domain.notifications.service import notify_operators
from workflows.contracts import (
    BackupActivity,
    BackupArtifact,
    BackupFailure,
    BackupJob,
    BackupProgress,
    DrillJob,
    DrillOutcome,
    DrillResult,
    DrillTarget,
    OperatorAlert,
    PruneJob,
    PruneResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PART_SIZE = 64 * 1024 * 1024  # S3 allows at most 10,000 parts: 64 MiB parts carry dumps up to 640 GB
PartHook = Callable[[int], Awaitable[None]]


def _context(workflow_id: str) -> AuditContext:
    return AuditContext(workflow_id=workflow_id)


def _heartbeat(progress: BackupProgress | None = None) -> None:
    if progress is None:
        activity.heartbeat()
    else:
        activity.heartbeat(progress.model_dump(mode="json"))


async def _beating(work: Awaitable[T], progress: BackupProgress | None = None) -> T:
    """Await `work`, heartbeating (with the current progress) often enough for the heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    every = max(0.5, timeout.total_seconds() / 3) if timeout else 10.0
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            _heartbeat(progress)
    finally:
        if not task.done():
            task.cancel()


def _file_name(workflow_id: str) -> str:
    return workflow_id.replace(":", "") + ".dump"


def _files_list(dump: Path) -> Path:
    """Beside the dump: the receipts' files of its snapshot, to copy into the backup set once the dump is stored."""
    return dump.with_name(dump.name + ".attachments.json")


class BackupActivities:
    def __init__(self, deps: ActivityDeps, work_dir: Path | None = None, after_part: PartHook | None = None) -> None:
        self.deps = deps
        self.work_dir = work_dir or Path(tempfile.gettempdir()) / "finance-ops-backups"
        self.after_part = after_part  # tests: awaited after each uploaded (and heartbeated) part
        self._tools: dict[int, pg.PgTools] = {}

    @property
    def server(self) -> pg.Connection:
        return pg.connection_for(self.deps.settings.db.session_url)  # pg_dump needs a session (DATABASE_DIRECT_URL)

    async def pg_tools(self) -> pg.PgTools:
        """pg_dump/pg_restore of the server's major version (non-retryable failure when none is installed)."""
        major = await pg.server_major_of(self.server)
        if major not in self._tools:
            try:
                self._tools[major] = await asyncio.to_thread(
                    pg.find_pg_tools, major, self.deps.settings.backups.pg_bin_dir
                )
            except pg.PgToolsNotFound as error:
                raise ApplicationError(str(error), type="PgToolsNotFound", non_retryable=True) from error
        return self._tools[major]

    # --- backup -------------------------------------------------------------------------------------------

    @activity.defn(name=BackupActivity.CREATE)
    async def create_backup(self, job: BackupJob) -> BackupArtifact:
        """pg_dump -Fc, SHA-256, upload (S3 multipart resuming from the heartbeat, or the local folder)."""
        started = time.monotonic()
        async with self.deps.db.transaction() as tx:
            await service.start_backup(tx, job.workflow_id)
        key = service.storage_key_for(self.deps.settings.backups.prefix, job.workflow_id)
        path = self.work_dir / _file_name(job.workflow_id)
        part_size = job.part_size_bytes or DEFAULT_PART_SIZE
        progress = await self._resumable(path, key)
        if progress is None:
            progress = await self._dump(path, part_size)
            _heartbeat(progress)
        storage = self.deps.storage
        resumed_from: int | None = None
        parts = 1
        if isinstance(storage, S3Storage):
            resumed_from, parts = await self._upload_multipart(storage, key, path, progress)
        else:
            await _beating(asyncio.to_thread(storage.put_file, key, path), progress)
        # The receipts' files of the dump's snapshot join the backup set (domain/backups/receipt_files.py).
        files = await asyncio.to_thread(receipt_files.read_list, _files_list(path))
        copied = await _beating(asyncio.to_thread(receipt_files.copy_into_backup, storage, files, key), progress)
        if copied["missing_count"]:
            log.error("backup %s: %d receipt files are missing from the storage", key, copied["missing_count"])
        path.unlink(missing_ok=True)
        _files_list(path).unlink(missing_ok=True)
        return BackupArtifact(
            workflow_id=job.workflow_id,
            storage_key=key,
            sha256=progress.sha256,
            size_bytes=progress.size_bytes,
            manifest={**progress.manifest, "attachments": copied},
            duration_seconds=round(time.monotonic() - started + progress.dump_seconds, 3),
            parts=parts,
            resumed_from_part=resumed_from,
        )

    async def _resumable(self, path: Path, key: str) -> BackupProgress | None:
        """The previous attempt's progress when its dump is still here, intact; else None (after cleaning up)."""
        details = activity.info().heartbeat_details
        if not details:
            return None
        try:
            progress = BackupProgress.model_validate(details[0])
        except ValueError:
            return None
        size = await asyncio.to_thread(lambda: path.stat().st_size if path.is_file() else -1)
        listed = await asyncio.to_thread(_files_list(path).is_file)
        if size == progress.size_bytes and listed:
            if await _beating(asyncio.to_thread(sha256_of, path), progress) == progress.sha256:
                log.info("backup %s: resuming with the dump of the previous attempt", key)
                return progress
        storage = self.deps.storage
        if progress.upload_id and isinstance(storage, S3Storage):
            await asyncio.to_thread(storage.abort_multipart, key, progress.upload_id)
        log.info("backup %s: the previous attempt's dump is not here; dumping again", key)
        return None

    async def _dump(self, path: Path, part_size: int) -> BackupProgress:
        """Dump at an exported snapshot and take the manifest in the same snapshot, so both agree exactly."""
        tools = await self.pg_tools()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        began = time.monotonic()
        async with self.deps.db.transaction() as tx:
            # One snapshot for the manifest and the dump: set before the transaction's first query.
            await tx.sql.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = await tx.sql.scalar("SELECT pg_export_snapshot()")
            manifest = await take_manifest(tx)
            files = await attachments.stored_files(tx.sql)
            await asyncio.to_thread(receipt_files.write_list, files, _files_list(path))
            try:
                await _beating(pg.pg_dump(tools, self.server, partial, snapshot=str(snapshot)))
            except pg.PgCommandFailed as error:
                partial.unlink(missing_ok=True)
                raise ApplicationError(str(error), type="DumpFailed") from error
        partial.replace(path)
        digest = await _beating(asyncio.to_thread(sha256_of, path))
        return BackupProgress(
            sha256=digest,
            size_bytes=(await asyncio.to_thread(path.stat)).st_size,
            manifest=manifest,
            dump_seconds=round(time.monotonic() - began, 3),
            part_size=part_size,
        )

    async def _upload_multipart(
        self, storage: S3Storage, key: str, path: Path, progress: BackupProgress
    ) -> tuple[int | None, int]:
        """Upload the parts not yet recorded in `progress`; returns (the first part this attempt sent when it
        resumed an earlier upload, the number of parts)."""
        stored = progress.upload_id is not None and await asyncio.to_thread(
            self._already_stored, storage, key, progress
        )
        if stored:
            return len(progress.parts) + 1, len(progress.parts)  # completed just before a crash
        resumed_from: int | None = None
        if progress.upload_id is None:
            progress.upload_id = await asyncio.to_thread(
                storage.start_multipart, key, {"sha256": progress.sha256, "size": str(progress.size_bytes)}
            )
            progress.parts = []
            _heartbeat(progress)
        else:
            resumed_from = len(progress.parts) + 1
            log.info("backup %s: resuming the upload at part %d", key, resumed_from)
        number = len(progress.parts) + 1
        with path.open("rb") as handle:
            handle.seek((number - 1) * progress.part_size)
            while True:
                data = await asyncio.to_thread(handle.read, progress.part_size)
                if not data and number > 1:
                    break
                part = await _beating(
                    asyncio.to_thread(storage.upload_part, key, progress.upload_id, number, data), progress
                )
                progress.parts.append(part)
                _heartbeat(progress)
                if self.after_part is not None:
                    await self.after_part(number)
                number += 1
                if len(data) < progress.part_size:
                    break
        await _beating(asyncio.to_thread(storage.complete_multipart, key, progress.upload_id, progress.parts), progress)
        stored_size = await asyncio.to_thread(storage.client.head_object, Bucket=storage.bucket, Key=key)
        if int(stored_size["ContentLength"]) != progress.size_bytes:
            raise ApplicationError(
                f"the stored object has {stored_size['ContentLength']} bytes, the dump {progress.size_bytes}",
                type="UploadIncomplete",
            )
        return resumed_from, len(progress.parts)

    @staticmethod
    def _already_stored(storage: S3Storage, key: str, progress: BackupProgress) -> bool:
        if not storage.exists(key):
            return False
        return storage.metadata(key).get("sha256") == progress.sha256

    @activity.defn(name=BackupActivity.RECORD)
    async def record_backup(self, artifact: BackupArtifact) -> int:
        async with self.deps.db.transaction() as tx:
            backup = await service.complete_backup(
                tx,
                _context(artifact.workflow_id),
                workflow_id=artifact.workflow_id,
                storage_key=artifact.storage_key,
                size_bytes=artifact.size_bytes,
                sha256=artifact.sha256,
                duration_seconds=artifact.duration_seconds,
                manifest=dict(artifact.manifest),
            )
            return backup.id

    @activity.defn(name=BackupActivity.FAIL)
    async def fail_backup(self, failure: BackupFailure) -> int:
        async with self.deps.db.transaction() as tx:
            backup = await service.fail_backup(tx, _context(failure.workflow_id), failure.workflow_id, failure.error)
            return backup.id

    @activity.defn(name=BackupActivity.PRUNE)
    async def prune_backups(self, job: PruneJob) -> PruneResult:
        """Delete the objects retention no longer keeps, then mark their rows pruned (a retry finds them gone)."""
        settings = self.deps.settings.backups
        result = PruneResult()
        async with self.deps.db.transaction() as tx:
            doomed = await service.backups_to_prune(tx, settings.keep_daily, settings.keep_monthly, settings.timezone)
            for backup in doomed:
                if backup.storage_key:
                    await asyncio.to_thread(self.deps.storage.delete, backup.storage_key)
                    await asyncio.to_thread(receipt_files.delete_backup_files, self.deps.storage, backup.storage_key)
                    result.pruned_keys.append(backup.storage_key)
                await service.mark_pruned(tx, _context(job.workflow_id), backup)
                result.pruned_ids.append(backup.id)
        return result

    @activity.defn(name=BackupActivity.ALERT_SUPERADMINS)
    async def alert_superadmins(self, alert: OperatorAlert) -> list[int]:
        async with self.deps.db.transaction() as tx:
            return await notify_operators(tx.sql, (Role.SUPERADMIN.value,), **alert.model_dump())

    # --- restore drill ------------------------------------------------------------------------------------

    @activity.defn(name=BackupActivity.PREPARE_DRILL)
    async def prepare_restore_drill(self, job: DrillJob) -> DrillTarget:
        async with self.deps.db.transaction() as tx:
            try:
                backup = await service.get_backup(tx, job.backup_id) if job.backup_id else None
            except DomainError:
                backup = None
            if job.backup_id is None:
                backup = await service.latest_completed(tx)
            drill = await service.start_drill(tx, job.workflow_id, backup.id if backup else None)
            target = DrillTarget(drill_id=drill.id, workflow_id=job.workflow_id)
            if backup is None:
                target.problem = (
                    f"backup {job.backup_id} does not exist" if job.backup_id else "there is no completed backup"
                )
                return target
            target.backup_id = backup.id
            target.storage_key = backup.storage_key
            target.sha256 = backup.sha256
            target.manifest = dict(backup.manifest)
            if backup.status != service.BackupStatus.COMPLETED or not backup.storage_key:
                target.problem = f"backup {backup.id} is {backup.status}, not completed"
            return target

    @activity.defn(name=BackupActivity.RESTORE_AND_VERIFY)
    async def restore_and_verify(self, target: DrillTarget) -> DrillOutcome:
        """Fetch, check the SHA-256, pg_restore into a scratch database, verify the audit chain and that it ends at
        the manifest's head, compare with the manifest, drop the scratch database. A failed check is an outcome
        (with its reason), not an error."""
        outcome = DrillOutcome(drill_id=target.drill_id, backup_id=target.backup_id, passed=False)
        if target.problem or not target.storage_key:
            outcome.reason = target.problem or "the backup has no stored file"
            return outcome
        self.work_dir.mkdir(parents=True, exist_ok=True)
        archive = self.work_dir / ("drill-" + _file_name(target.workflow_id))
        scratch = "restore_drill_" + hashlib.sha256(target.workflow_id.encode()).hexdigest()[:16]
        try:
            await _beating(asyncio.to_thread(self.deps.storage.download, target.storage_key, archive))
            digest = await _beating(asyncio.to_thread(sha256_of, archive))
            outcome.checks["checksum"] = {"expected": target.sha256, "actual": digest, "ok": digest == target.sha256}
            if digest != target.sha256:
                outcome.reason = (
                    f"checksum mismatch: the stored file hashes to {digest}, the backup recorded {target.sha256}"
                )
                return outcome
            tools = await self.pg_tools()
            await pg.drop_database(self.server, scratch)  # a crashed earlier attempt's leftover
            await pg.create_database(self.server, scratch)
            try:
                await self._verify_restore(tools, archive, scratch, target, outcome)
            finally:
                await pg.drop_database(self.server, scratch)
        finally:
            archive.unlink(missing_ok=True)
        outcome.passed = outcome.reason is None
        return outcome

    async def _verify_restore(
        self, tools: pg.PgTools, archive: Path, scratch: str, target: DrillTarget, outcome: DrillOutcome
    ) -> None:
        copy = self.server.with_database(scratch)
        try:
            await _beating(pg.pg_restore(tools, archive, copy))
        except pg.PgCommandFailed as error:
            outcome.checks["restore"] = {"ok": False}
            outcome.reason = f"pg_restore failed: {error}"
            return
        outcome.checks["restore"] = {"ok": True, "database": scratch}
        async with one_off_transaction(to_psycopg_url(copy.conninfo())) as tx:
            restored = await take_manifest(tx)
            verdict = await _beating(verify_chain(tx))
            has_files = await attachments.table_exists(tx.sql)  # a backup from before migration 0014 has none
            files = await attachments.stored_files(tx.sql) if has_files else []
        assert target.storage_key is not None
        files_check = await _beating(
            asyncio.to_thread(receipt_files.verify_backup_files, self.deps.storage, files, target.storage_key)
        )
        outcome.checks["attachments"] = files_check.as_dict()
        expected = dict(target.manifest)
        differences = table_differences(expected, restored)
        head_problem = audit_head_problem(expected, restored)
        outcome.checks["manifest"] = {"ok": not differences, "differences": differences, "restored": restored}
        outcome.checks["audit_chain"] = {
            "ok": verdict.ok,
            "rows_checked": verdict.rows_checked,
            "first_broken_id": verdict.first_broken_id,
            "reason": verdict.reason,
        }
        outcome.checks["audit_head"] = {
            "ok": head_problem is None,
            "backup": {"id": expected.get("audit_head_id"), "hash": expected.get("audit_head_hash")},
            "restored": {"id": restored["audit_head_id"], "hash": restored["audit_head_hash"]},
            "reason": head_problem,
        }
        # The first failure names the drill's reason, the audit trail's first: a broken or cut chain says more
        # about the backup than the row counts that differ because of it.
        if not verdict.ok:
            outcome.reason = (
                f"audit chain broken in the restored copy at row {verdict.first_broken_id}: {verdict.reason}"
            )
        elif head_problem:
            outcome.reason = head_problem
        elif differences:
            outcome.reason = "the restored copy differs from the manifest: " + "; ".join(differences)
        elif not files_check.ok:
            outcome.reason = files_check.reason

    @activity.defn(name=BackupActivity.RECORD_DRILL)
    async def record_restore_drill(self, outcome: DrillOutcome) -> DrillResult:
        async with self.deps.db.transaction() as tx:
            drill = await service.finish_drill(
                tx,
                AuditContext(),
                outcome.drill_id,
                passed=outcome.passed,
                reason=outcome.reason,
                details=_jsonable(outcome.checks),
            )
            return DrillResult(drill_id=drill.id, backup_id=drill.backup_id, status=drill.status, reason=drill.error)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.create_backup,
            self.record_backup,
            self.fail_backup,
            self.prune_backups,
            self.alert_superadmins,
            self.prepare_restore_drill,
            self.restore_and_verify,
            self.record_restore_drill,
        ]


def _jsonable(value: dict[str, object]) -> dict[str, Any]:
    from domain.audit.service import jsonable

    result: dict[str, Any] = jsonable(value)
    return result
