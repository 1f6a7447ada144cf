"""Reports on S3 (moto's server over HTTP): the file lands in the bucket and downloads redirect to a presigned URL."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import date

import boto3
import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from api.app import build_services, create_app
from core.authz import Authorizer
from core.db import Database
from core.engine import WorkflowEngine
from core.mail import FileTransport
from core.settings import Settings, StorageSettings, TemporalSettings
from core.storage import S3Storage
from domain.models import Report
from tests.reports.conftest import PERIOD, KnownData
from tests.services import s3_server
from worker import build_workers, worker_plan


@pytest.fixture
async def s3_api(settings: Settings, temporal_client: Client) -> AsyncIterator[tuple[httpx.AsyncClient, S3Storage]]:
    """A worker and an app whose object storage is an S3 bucket on moto's server."""
    with s3_server() as endpoint:
        bucket = f"reports-{secrets.token_hex(4)}"
        storage_settings = StorageSettings(
            bucket=bucket, endpoint_url=endpoint, access_key_id="test", secret_access_key="test"
        )
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        ).create_bucket(Bucket=bucket)
        s3_settings = settings.model_copy(
            update={
                "storage": storage_settings,
                "temporal": TemporalSettings(task_queue_prefix=f"s3-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
            }
        )
        storage = S3Storage(storage_settings)
        deps = ActivityDeps(
            settings=s3_settings,
            db=Database.connect(s3_settings.db),
            authorizer=Authorizer(s3_settings.policy_dir),
            storage=storage,
            mail=FileTransport(s3_settings.smtp.mail_dir, s3_settings.smtp.sender),
        )
        workers = build_workers(temporal_client, worker_plan(deps))
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        services = build_services(s3_settings, WorkflowEngine(s3_settings.temporal, temporal_client))
        app = create_app(services=services)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                    yield http, storage
        finally:
            await asyncio.gather(*(worker.shutdown() for worker in workers))
            await asyncio.gather(*tasks, return_exceptions=True)
            await deps.db.dispose()


async def test_a_report_on_s3_downloads_through_a_presigned_url(
    s3_api: tuple[httpx.AsyncClient, S3Storage], known: KnownData
) -> None:
    api, storage = s3_api
    body = {"type": "pnl", "format": "json", "period": PERIOD}
    accepted = await api.post("/api/v1/reports", json=body, headers=known.alice.headers)
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["id"]
    for _ in range(300):
        status = (await api.get(f"/api/v1/reports/{report_id}", headers=known.alice.headers)).json()
        if status["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.2)
    assert status["status"] == "completed", status

    stored = [item.key for item in storage.list("reports/")]
    assert len(stored) == 1 and stored[0].startswith(f"reports/{report_id}/")

    download = await api.get(f"/api/v1/reports/{report_id}/download", headers=known.alice.headers)
    assert download.status_code in (302, 303, 307), download.text
    link = download.headers["location"]
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=" in link
    async with httpx.AsyncClient() as outside:
        fetched = await outside.get(link)
    assert fetched.status_code == 200
    document = json.loads(fetched.content)
    assert document["totals"] == [{"month": "Total", "revenue": "1000.00", "expenses": "300.49", "net": "699.51"}]

    others = await api.get(f"/api/v1/reports/{report_id}/download", headers=known.bob.headers)
    assert others.status_code == 404


async def test_a_mailed_link_works_for_a_day_not_a_week(s3_api: tuple[httpx.AsyncClient, S3Storage]) -> None:
    """A presigned link is a bearer credential to the file for as long as it lives: the one mailed with a report
    lives REPORT_MAIL_LINK_HOURS (24 by default), not the week SigV4 would allow."""
    _, storage = s3_api
    settings = Settings()
    deps = ActivityDeps(settings=settings, db=None, authorizer=None, storage=storage, mail=None)  # type: ignore[arg-type]
    report = Report(
        id=uuid.uuid4(),
        type="pnl",
        format="csv",
        period_from=date(2026, 1, 1),
        period_to=date(2026, 1, 31),
        status="completed",
        storage_key="reports/x/pnl.csv",
        filename="pnl.csv",
    )
    link = ReportActivities(deps)._result(report).link
    assert link is not None and "X-Amz-Expires=86400" in link
