"""A worker killed (SIGKILL) while rendering: another worker finishes the report, and there is one report, not two."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.authz import Authorizer
from core.db import Database
from core.mail import FileTransport
from core.settings import PROJECT_ROOT, Settings, TemporalSettings
from core.storage import LocalStorage
from core.temporal import task_queues
from domain.audit.service import AuditContext
from domain.models import AuditLog, Entry, Report, User
from domain.reports import service
from domain.reports.schemas import ReportRequest
from domain.users.visibility import visibility_for
from tests.conftest import MakeUser
from tests.reports.readback import csv_table
from worker import build_workers, worker_plan
from workflows.contracts import GeneratedReport, ReportJob

ROWS = 1000


async def _insert_entries(deps: ActivityDeps, owner_id: int) -> None:
    async with deps.db.transaction() as tx:
        tx.session.add_all(
            Entry(
                kind="expense" if n % 3 else "revenue",
                amount=Decimal("10.01") + n,
                currency="USD",
                category=f"cat-{n % 7}",
                description=f"entry {n}",
                entry_date=date(2024, 1, 1) + timedelta(days=n % 90),
                owner_id=owner_id,
                status="approved",
                base_currency="USD",  # as a submit locks a USD entry in USD books
                fx_rate=Decimal(1),
                rate_date=date(2024, 1, 1) + timedelta(days=n % 90),
                rate_source="base",
                base_amount=Decimal("10.01") + n,
            )
            for n in range(ROWS)
        )


async def _line(process: asyncio.subprocess.Process, wanted: str, seconds: float) -> None:
    assert process.stdout is not None
    async with asyncio.timeout(seconds):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the worker process ended early"
            if line.startswith(wanted):
                return


async def test_a_worker_killed_while_rendering_leaves_one_report(
    make_user: MakeUser,
    reports_settings: Settings,
    reports_deps: ActivityDeps,
    temporal_client: Client,
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    admin = await make_user("admin")
    await _insert_entries(reports_deps, admin.id)
    settings = reports_settings.model_copy(
        update={"temporal": TemporalSettings(task_queue_prefix=f"kill-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5)}
    )
    async with reports_deps.db.transaction() as tx:
        user = await tx.session.get(User, admin.id)
        assert user is not None
        visibility = await visibility_for(tx.sql, reports_deps.authorizer, user)
        request = ReportRequest.model_validate(
            {"type": "ledger", "format": "csv", "period": {"from": "2024-01-01", "to": "2024-03-31"}}
        )
        report = await service.request_report(tx, settings.reports, user, visibility, request, AuditContext())

    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.db.url,
        "TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE_PREFIX": settings.temporal.task_queue_prefix,
        "STORAGE_DIR": str(settings.storage.local_dir),
        "MAIL_DIR": str(tmp_path / "mail"),
        "SMTP_HOST": "",
        "S3_BUCKET": "",
        "AWS_BUCKET_NAME": "",
        "SECRET_KEY": settings.auth.secret_key,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.reports.slow_worker", cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        await _line(process, "ready", 60)
        handle = await temporal_client.start_workflow(
            "ReportWorkflow",
            ReportJob(report_id=str(report.id), requested_by_id=admin.id, heartbeat_seconds=2),
            id=report.workflow_id,
            task_queue=task_queues(settings.temporal).reports,
            result_type=GeneratedReport,
        )
        await _line(process, "rendered 300", 60)
        # Mid-render the API shows the report running with the rows processed so far: the workflow's progress
        # query, which the activity in the (slow) worker keeps informed by signals.
        status = (await api.get(f"/api/v1/reports/{report.id}", headers=admin.headers)).json()
        assert status["status"] == "running"
        assert 0 < status["progress_rows"] < ROWS
        process.kill()
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert not list(reports_deps.storage.list(f"reports/{report.id}/")), "nothing is stored before the render ends"

    # A fresh worker (normal speed) picks the report up once the dead one's heartbeat times out.
    deps = ActivityDeps(
        settings=settings,
        db=Database.connect(settings.db),
        authorizer=Authorizer(settings.policy_dir),
        storage=LocalStorage(settings.storage.local_dir),
        mail=FileTransport(tmp_path / "mail", settings.smtp.sender),
    )
    queue = task_queues(settings.temporal).reports
    workers = build_workers(temporal_client, [p for p in worker_plan(deps) if p.task_queue == queue])
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(90):
            result = await handle.result()
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*tasks, return_exceptions=True)

    assert result.status == "completed" and result.rows == ROWS
    async with reports_deps.db.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Report)) == 1
        stored = await tx.session.get(Report, report.id)
        completions = list(
            await tx.session.scalars(
                select(AuditLog).where(AuditLog.action == "report.completed", AuditLog.resource_id == str(report.id))
            )
        )
    assert stored is not None and stored.status == "completed" and stored.rows == ROWS
    assert len(completions) == 1 and completions[0].changes["attempt"] >= 2  # the second attempt finished it
    files = list(reports_deps.storage.list(f"reports/{report.id}/"))
    assert [f.key for f in files] == [stored.storage_key]
    _, rows = csv_table((Path(settings.storage.local_dir) / str(stored.storage_key)).read_bytes())
    assert len(rows) == ROWS + 3
    assert len({row[0] for row in rows[:-3]}) == ROWS  # each entry once


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
