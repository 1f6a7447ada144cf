"""Exports on S3 (moto's server over HTTP): the batch's file lands in the bucket and its download redirects to a
presigned URL that gives the same bytes."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import boto3
import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.exports import ExportActivities
from api.deps import AppServices
from core.settings import StorageSettings
from core.storage import S3Storage
from domain.exports import repository
from tests.conftest import MakeUser
from tests.exports import month
from tests.exports.test_golden import golden
from tests.services import s3_server
from workflows.contracts import ExportJob


async def test_a_batch_on_s3_downloads_through_a_presigned_url(
    api: httpx.AsyncClient,
    exports_app: Any,
    make_user: MakeUser,
    exports_deps: ActivityDeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    with s3_server() as endpoint:
        bucket = f"exports-{secrets.token_hex(4)}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        ).create_bucket(Bucket=bucket)
        storage = S3Storage(
            StorageSettings(bucket=bucket, endpoint_url=endpoint, access_key_id="test", secret_access_key="test")
        )
        async with exports_deps.db.transaction() as tx:
            batch = await repository.insert(tx.sql, 1, month.MONTH, 1, "datev", "export-1", accountant.id)
        activities = ExportActivities(replace(exports_deps, storage=storage))
        result = await ActivityEnvironment().run(activities.render, ExportJob(batch_id=batch.id))
        assert result.status == "completed"
        key = f"exports/1/{result.filename}"
        stored = storage.client.get_object(Bucket=bucket, Key=key)
        assert stored["Body"].read() == golden("datev")
        assert stored["ContentType"] == "text/csv; charset=windows-1252"

        services: AppServices = exports_app.state.services
        monkeypatch.setattr(services, "storage", storage)
        download = await api.get(f"/api/v1/exports/{batch.id}/download", headers=accountant.headers)
        assert download.status_code == 307
        async with httpx.AsyncClient() as outside:
            fetched = await outside.get(download.headers["location"])
        assert fetched.status_code == 200 and fetched.content == golden("datev")
