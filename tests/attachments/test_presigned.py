"""Presigned uploads on S3 (moto's server over HTTP): the browser sends the file straight to the store under a
policy that holds the exact key and a content-length range up to the limit; the completion reads the object back,
decides its type, hashes it, and keeps it, or deletes the object and the row. With the local folder storage the flow
answers 409: it needs S3.

moto's server does not evaluate POST policies (it stores a body twice the range's maximum), so the range is checked
in the signed policy itself, and the completion's own size check is what refuses an object the store let through."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import AttachmentSettings, Settings
from core.storage import S3Storage
from tests.approvals.conftest import Team, audit_count, create_expense
from tests.attachments.conftest import (
    PDF,
    PNG,
    attachment_rows,
    complete_upload,
    own_stack,
    path_of,
    receipts_bucket,
    send_upload,
    start_upload,
)

LIMIT = 1024


@pytest.fixture
async def s3_api(
    settings: Settings, temporal_client: Client, team: Team
) -> AsyncIterator[tuple[httpx.AsyncClient, S3Storage]]:
    with receipts_bucket() as storage:
        limits = AttachmentSettings(max_bytes=LIMIT, receipt_required_above=Decimal("100"))
        async with own_stack(settings, temporal_client, storage=storage, attachments=limits) as http:
            yield http, S3Storage(storage)


def _policy(ticket: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(ticket["fields"]["policy"]))  # type: ignore[no-any-return]


async def test_a_presigned_upload_is_checked_hashed_and_kept_at_completion(
    s3_api: tuple[httpx.AsyncClient, S3Storage], team: Team, activity_deps: ActivityDeps
) -> None:
    api, storage = s3_api
    entry = await create_expense(api, team.employee, "150.00")
    started = await start_upload(api, team.employee, entry["id"], "taxi.png", len(PNG))
    assert started.status_code == 201, started.text
    ticket = started.json()
    [row] = await attachment_rows(activity_deps, entry["id"])
    assert row["status"] == "pending" and row["sha256"] is None
    conditions = _policy(ticket)["conditions"]
    assert ["content-length-range", 1, LIMIT] in conditions
    assert {"key": row["storage_key"]} in conditions  # this key and no other
    assert ticket["fields"]["key"] == row["storage_key"]
    # Pending is not a receipt yet: neither downloadable nor enough for the submit.
    pending = await api.get(path_of(entry["id"], row["id"]), headers=team.employee.headers)
    assert pending.status_code == 409
    refused = await api.post(f"/api/v1/expenses/{entry['id']}/submit", headers=team.employee.headers)
    assert refused.status_code == 422
    early = await complete_upload(api, team.employee, ticket)
    assert early.status_code == 409  # nothing uploaded yet: the row waits
    assert (await send_upload(ticket, PNG)).status_code in (200, 201, 204)
    completed = await complete_upload(api, team.employee, ticket)
    assert completed.status_code == 200, completed.text
    stored = completed.json()
    assert stored["status"] == "stored"
    assert stored["content_type"] == "image/png"
    assert stored["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert stored["size_bytes"] == len(PNG)
    assert await audit_count(activity_deps, "attachment.added", entry["id"]) == 1
    again = await complete_upload(api, team.employee, ticket)
    assert again.status_code == 200 and again.json()["sha256"] == stored["sha256"]
    # A download is a redirect to a short-lived presigned URL, as a report's is.
    download = await api.get(stored["download_url"], headers=team.employee.headers)
    assert download.status_code == 307
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(download.headers["location"])).content == PNG
    submitted = await api.post(f"/api/v1/expenses/{entry['id']}/submit", headers=team.employee.headers)
    assert submitted.status_code == 200, submitted.text


async def test_a_mislabelled_object_is_refused_at_completion_and_deleted(
    s3_api: tuple[httpx.AsyncClient, S3Storage], team: Team, activity_deps: ActivityDeps
) -> None:
    api, storage = s3_api
    entry = await create_expense(api, team.employee)
    ticket = (await start_upload(api, team.employee, entry["id"], "receipt.png", len(PDF))).json()
    key = ticket["fields"]["key"]
    await send_upload(ticket, PDF)
    assert storage.exists(key)
    refused = await complete_upload(api, team.employee, ticket)
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "PDF" in message and ".png" in message
    assert await attachment_rows(activity_deps, entry["id"]) == []
    assert not storage.exists(key)
    assert await audit_count(activity_deps, "attachment.refused", entry["id"]) == 1


async def test_an_object_larger_than_the_limit_is_refused_and_deleted(
    s3_api: tuple[httpx.AsyncClient, S3Storage], team: Team, activity_deps: ActivityDeps
) -> None:
    api, storage = s3_api
    entry = await create_expense(api, team.employee)
    declared = await start_upload(api, team.employee, entry["id"], "big.pdf", LIMIT + 1)
    assert declared.status_code == 413
    assert await attachment_rows(activity_deps, entry["id"]) == []
    ticket = (await start_upload(api, team.employee, entry["id"], "big.pdf", 100)).json()
    key = ticket["fields"]["key"]
    await send_upload(ticket, PDF + b"\n" * (2 * LIMIT))  # real S3 refuses it under the policy; moto does not look
    refused = await complete_upload(api, team.employee, ticket)
    assert refused.status_code == 413, refused.text
    assert str(LIMIT) in refused.json()["error"]["message"]
    assert await attachment_rows(activity_deps, entry["id"]) == []
    assert not storage.exists(key)


async def test_the_presigned_flow_needs_s3(client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps) -> None:
    entry = await create_expense(client, team.employee)
    response = await start_upload(client, team.employee, entry["id"], "receipt.pdf", 100)
    assert response.status_code == 409
    assert "S3" in response.json()["error"]["message"]
    assert await attachment_rows(activity_deps) == []
