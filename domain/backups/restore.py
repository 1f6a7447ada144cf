"""Disaster recovery: restore a chosen backup into a named database and check it (the CLI's `restore`)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import Database, Tx
from core.settings import Settings, to_psycopg_url
from core.storage import ObjectStorage, S3Storage, sha256_of
from domain.attachments import repository as attachments
from domain.audit.service import verify_chain
from domain.backups import pg_tools as pg
from domain.backups import receipt_files
from domain.backups.manifest import manifest_differences, take_manifest
from domain.models import Backup


class RestoreRefused(RuntimeError):
    """The restore cannot start (unknown backup, checksum mismatch, target not empty, no matching tools)."""


@dataclass
class RestorePlan:
    storage_key: str
    sha256: str | None
    manifest: dict[str, Any] = field(default_factory=dict)
    backup_id: int | None = None


@dataclass
class RestoreReport:
    database: str
    storage_key: str
    sha256: str
    checksum_verified: bool
    manifest: dict[str, Any]
    differences: list[str]
    audit_ok: bool
    audit_rows: int
    audit_problem: str | None
    receipts_checked: int = 0  # stored attachment rows whose file the backup set holds with the right SHA-256
    receipts_put_back: int = 0  # of those, the files copied back to their keys (missing from the storage)
    receipts_problem: str | None = None

    @property
    def ok(self) -> bool:
        return not self.differences and self.audit_ok and self.receipts_problem is None


@asynccontextmanager
async def one_off_transaction(url: str) -> AsyncIterator[Tx]:
    """A transaction on a database reached once (a restored copy, or the server before a restore), on a connection of
    its own that is closed afterwards: no pool is kept for it."""
    database = Database(create_async_engine(url, poolclass=NullPool))
    try:
        async with database.transaction() as tx:
            yield tx
    finally:
        await database.dispose()


async def plan_restore(
    settings: Settings, storage: ObjectStorage, *, backup_id: int | None, key: str | None, sha256: str | None
) -> RestorePlan:
    """What to restore: from the backups table when it is reachable, else from the storage key alone."""
    row: Backup | None = None
    if backup_id is not None or key:
        try:
            async with one_off_transaction(settings.db.session_async_url) as tx:
                query = select(Backup).where(Backup.id == backup_id if backup_id else Backup.storage_key == key)
                row = await tx.session.scalar(query)
        except Exception as error:
            if backup_id is not None:
                raise RestoreRefused(f"cannot read backup {backup_id} from the database: {error}") from error
    if backup_id is not None:
        if row is None or not row.storage_key:
            raise RestoreRefused(f"backup {backup_id} does not exist or has no stored file")
    if row is not None and row.storage_key:
        return RestorePlan(row.storage_key, sha256 or row.sha256, dict(row.manifest or {}), row.id)
    assert key
    if not sha256 and isinstance(storage, S3Storage):
        sha256 = (await asyncio.to_thread(storage.metadata, key)).get("sha256")
    return RestorePlan(key, sha256)


async def restore(settings: Settings, storage: ObjectStorage, plan: RestorePlan, database: str) -> RestoreReport:
    """Download, verify the checksum, pg_restore into `database` (created when missing, refused when it has
    tables) on the DATABASE_URL server, then compare with the manifest and verify the audit chain; check the
    receipts' files in the backup set and put back those missing from the storage."""
    pg.check_database_name(database)
    server = pg.connection_for(settings.db.session_url)  # pg_restore needs a session: never a transaction pooler
    admin = server.with_database("postgres")
    tools = await asyncio.to_thread(pg.find_pg_tools, await pg.server_major_of(admin), settings.backups.pg_bin_dir)
    target = server.with_database(database)
    if await pg.database_exists(admin, database):
        if await pg.database_has_tables(target):
            raise RestoreRefused(f"database {database} already has tables; restore into a new name or drop it first")
    else:
        await pg.create_database(admin, database)
    with tempfile.TemporaryDirectory(prefix="finance-restore-") as folder:
        archive = Path(folder) / "backup.dump"
        await asyncio.to_thread(storage.download, plan.storage_key, archive)
        digest = await asyncio.to_thread(sha256_of, archive)
        if plan.sha256 and digest != plan.sha256:
            raise RestoreRefused(f"checksum mismatch: the stored file hashes to {digest}, expected {plan.sha256}")
        await pg.pg_restore(tools, archive, target)
    async with one_off_transaction(to_psycopg_url(target.conninfo())) as tx:
        restored = await take_manifest(tx)
        verdict = await verify_chain(tx)
        files = await attachments.stored_files(tx.sql) if await attachments.table_exists(tx.sql) else []
    files_check = await asyncio.to_thread(receipt_files.verify_backup_files, storage, files, plan.storage_key)
    put_back = await asyncio.to_thread(receipt_files.put_back, storage, files, plan.storage_key, files_check)
    differences = manifest_differences(plan.manifest, restored) if plan.manifest else []
    return RestoreReport(
        database=database,
        storage_key=plan.storage_key,
        sha256=digest,
        checksum_verified=bool(plan.sha256),
        manifest=restored,
        differences=differences,
        audit_ok=verdict.ok,
        audit_rows=verdict.rows_checked,
        audit_problem=None if verdict.ok else f"row {verdict.first_broken_id}: {verdict.reason}",
        receipts_checked=files_check.checked,
        receipts_put_back=put_back,
        receipts_problem=files_check.reason,
    )
