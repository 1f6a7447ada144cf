"""Backup fixtures: moto's S3 over HTTP with a fresh bucket per test, activity deps on it, a worker of the backup
workflows on their own task queue, and a small database with known rows and sums.

moto's server runs in this process, so the small part size below holds for worker processes a test starts too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import moto.s3.models
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.backups import BackupActivities
from activities.deps import ActivityDeps
from activities.notifications import NotificationActivities
from core.settings import BackupSettings, Settings, StorageSettings, TemporalSettings
from core.storage import S3Storage
from core.temporal import task_queues
from domain.audit.service import AuditContext, record
from domain.models import ApprovalRequest, Entry
from tests.conftest import MakeUser, TestUser
from tests.services import s3_server
from workflows.backup import BackupWorkflow, RestoreDrillWorkflow

# Real S3 refuses parts under 5 MiB (but the last); the tests use small parts on a small dump.
moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str) -> Settings:
    bucket = f"backups-{uuid.uuid4().hex[:12]}"
    storage = StorageSettings(
        bucket=bucket,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        server_side_encryption="AES256",
    )
    boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket=bucket)
    return settings.model_copy(
        update={
            "storage": storage,
            "temporal": TemporalSettings(task_queue_prefix=f"backup-test-{uuid.uuid4().hex[:8]}"),
            "backups": BackupSettings(keep_daily=7, keep_monthly=12, schedules_enabled=False),
        }
    )


@pytest.fixture
def s3_deps(activity_deps: ActivityDeps, s3_settings: Settings) -> ActivityDeps:
    return ActivityDeps(
        settings=s3_settings,
        db=activity_deps.db,
        authorizer=activity_deps.authorizer,
        storage=S3Storage(s3_settings.storage),
        mail=activity_deps.mail,
    )


@pytest.fixture
def s3(s3_deps: ActivityDeps) -> S3Storage:
    assert isinstance(s3_deps.storage, S3Storage)
    return s3_deps.storage


@dataclass
class BackupWorker:
    """Runs the backup workflows in this process for one test (a crash is a separate process: test_backup.py)."""

    client: Client
    deps: ActivityDeps
    work_dir: Path
    worker: Worker | None = None
    task: asyncio.Task[None] | None = None

    @property
    def task_queue(self) -> str:
        return task_queues(self.deps.settings.temporal).backups

    def start(self) -> None:
        activities = BackupActivities(self.deps, work_dir=self.work_dir)
        self.worker = Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[BackupWorkflow, RestoreDrillWorkflow],
            activities=[*activities.all(), NotificationActivities(self.deps).send_email],
            graceful_shutdown_timeout=timedelta(0),
        )
        self.task = asyncio.create_task(self.worker.run())

    async def stop(self) -> None:
        if self.worker is not None and self.task is not None:
            await self.worker.shutdown()
            await asyncio.gather(self.task, return_exceptions=True)
            self.worker = self.task = None


@pytest.fixture
async def backup_worker(temporal_client: Client, s3_deps: ActivityDeps, tmp_path: Path) -> AsyncIterator[BackupWorker]:
    runner = BackupWorker(temporal_client, s3_deps, tmp_path / "work")
    yield runner
    await runner.stop()


@dataclass
class Seeded:
    admin: TestUser
    revenue_sum: Decimal
    expense_sum: Decimal


@pytest.fixture
async def seeded(make_user: MakeUser, activity_deps: ActivityDeps) -> Seeded:
    """A superadmin, an employee, 3 revenues, 2 expenses, one approval request and a few audit rows."""
    admin = await make_user("superadmin")
    employee = await make_user("employee")
    revenues = [Decimal("1200.50"), Decimal("99.99"), Decimal("0.01")]
    expenses = [Decimal("450.00"), Decimal("12.34")]
    async with activity_deps.db.transaction() as tx:
        for kind, amounts in (("revenue", revenues), ("expense", expenses)):
            for amount in amounts:
                tx.session.add(
                    Entry(
                        kind=kind,
                        amount=amount,
                        currency="USD",
                        category="ops",
                        entry_date=date(2026, 3, 1),
                        owner_id=employee.id,
                        source="client" if kind == "revenue" else None,
                        vendor="vendor" if kind == "expense" else None,
                    )
                )
        tx.session.add(
            ApprovalRequest(
                subject_kind="generic",
                title="laptop",
                amount=Decimal("1500.00"),
                requester_id=employee.id,
                workflow_id=f"approval-request-{uuid.uuid4().hex[:6]}",
                policy_version="test",
            )
        )
        await tx.session.flush()
        for n in range(3):
            await record(tx.sql, AuditContext(actor_id=admin.id), "test.seeded", "entry", n, {"n": n})
    return Seeded(admin, sum(revenues, Decimal(0)), sum(expenses, Decimal(0)))
