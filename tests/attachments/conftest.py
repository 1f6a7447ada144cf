"""Receipts over the whole stack: the approval tests' organisation (admin <- manager <- employee, a peer manager,
an accountant) served over real HTTP, and tiny files of each kind: valid signatures, not whole documents, which is
all the type check reads."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import httpx
from temporalio.client import Client

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from core.engine import WorkflowEngine
from core.settings import Settings, StorageSettings, TemporalSettings
from core.temporal import task_queues
from tests.approvals.conftest import (  # noqa: F401 - fixtures, used by name
    client,
    create_expense,
    eventually,
    settle_workflows,
    team,
)
from tests.backups.conftest import (  # noqa: F401 - fixtures of the backup tests (moto's S3, a backup worker)
    backup_worker,
    s3,
    s3_deps,
    s3_endpoint,
    s3_settings,
    seeded,
)
from tests.conftest import TestUser
from tests.services import s3_server
from worker import build_deps, build_workers, worker_plan


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + _png_chunk(b"IEND", b"")
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8 " + struct.pack("<I", 18) + b"\x00" * 18
HEIC = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"  # an ISO-BMFF ftyp box, brand heic
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 44  # a Linux executable's header
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48  # a Windows one's
TEXT = b"Taxi 12.50 EUR, thank you for riding with us\n"

VALID = {"pdf": (PDF, "application/pdf"), "png": (PNG, "image/png"), "jpg": (JPEG, "image/jpeg"),
         "webp": (WEBP, "image/webp"), "heic": (HEIC, "image/heic")}  # fmt: skip


def path_of(entry_id: int, attachment_id: int | None = None) -> str:
    base = f"/api/v1/expenses/{entry_id}/attachments"
    return base if attachment_id is None else f"{base}/{attachment_id}"


async def upload(
    http: httpx.AsyncClient, user: TestUser, entry_id: int, filename: str, content: bytes
) -> httpx.Response:
    files = {"file": (filename, content, "application/octet-stream")}
    return await http.post(path_of(entry_id), files=files, headers=user.headers)


async def attachment_rows(deps: ActivityDeps, entry_id: int | None = None) -> list[dict[str, Any]]:
    async with deps.db.transaction() as tx:
        rows = await tx.sql.all(
            "SELECT id, entry_id, filename, content_type, size_bytes, sha256, storage_key, status FROM attachments "
            "WHERE %s::bigint IS NULL OR entry_id = %s ORDER BY id",
            (entry_id, entry_id),
        )
    names = ("id", "entry_id", "filename", "content_type", "size_bytes", "sha256", "storage_key", "status")
    return [dict(zip(names, row, strict=True)) for row in rows]


async def start_upload(
    api: httpx.AsyncClient, user: TestUser, entry_id: int, filename: str, size: int
) -> httpx.Response:
    """Ask for a presigned upload (S3 storage): a pending attachment and where to send its file."""
    body = {"filename": filename, "size_bytes": size}
    return await api.post(f"{path_of(entry_id)}/uploads", json=body, headers=user.headers)


async def send_upload(ticket: dict[str, Any], content: bytes) -> httpx.Response:
    """What the browser does: the fields, then the file as the last part, straight to the store."""
    async with httpx.AsyncClient() as browser:
        return await browser.post(ticket["url"], data=ticket["fields"], files={"file": ("x", content)})


async def complete_upload(api: httpx.AsyncClient, user: TestUser, ticket: dict[str, Any]) -> httpx.Response:
    return await api.post(ticket["complete_url"], headers=user.headers)


def receipt_files(root: Path) -> set[Path]:
    """Every file under the storage folder's receipts (partial copies included: a refusal leaves nothing at all).
    The folder outlives each test's tables, so a test compares the set before and after."""
    folder = root / "attachments"
    return {path for path in folder.rglob("*") if path.is_file()} if folder.exists() else set()


@contextlib.asynccontextmanager
async def own_stack(settings: Settings, temporal_client: Client, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An API and the project's workers (on task queues of their own) on these settings with `changes`: a
    threshold or a storage the session's app does not have. The workers' settings are the API's, as deployed."""
    changed = settings.model_copy(
        update={"temporal": TemporalSettings(task_queue_prefix=f"att-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
                **changes}
    )  # fmt: skip
    engine = WorkflowEngine(changed.temporal, temporal_client)
    deps = replace(build_deps(changed), engine=engine)
    workers = build_workers(temporal_client, worker_plan(deps))
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    services = build_services(changed, engine)
    app = create_app(services=services)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:
                yield http
    finally:
        await settle_workflows(temporal_client, task_queues(changed.temporal).approvals)
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*tasks, return_exceptions=True)
        await services.db.dispose()
        await deps.db.dispose()


@contextlib.contextmanager
def receipts_bucket() -> Iterator[StorageSettings]:
    """Moto's S3 over HTTP with an empty bucket of its own: the storage settings that reach it."""
    with s3_server() as endpoint:
        bucket = f"receipts-{secrets.token_hex(4)}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        ).create_bucket(Bucket=bucket)
        yield StorageSettings(bucket=bucket, endpoint_url=endpoint, access_key_id="test", secret_access_key="test")
