"""`worker.py --queues`: a process serves only the task queues it is given, with the schedules that start work on
them, so each queue's workers scale apart. Here the process also reaches PostgreSQL through PgBouncer, configured
as an operator would (DATABASE_POOLER=transaction, DATABASE_DIRECT_URL)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from core.settings import PROJECT_ROOT
from domain.reports.schedules import RETENTION_SCHEDULE_ID
from tests.bench.stack import temporal_server
from tests.pooling.conftest import DIRECT_APP, POOLED_APP
from tests.pooling.pgbouncer import PgBouncer, direct_url
from tests.services import free_port
from worker import parse_args
from workflows.contracts import (
    ATTACHMENT_UPKEEP_SCHEDULE_ID,
    BACKUP_SCHEDULE_ID,
    BUDGET_UPKEEP_SCHEDULE_ID,
    FX_RATES_SCHEDULE_ID,
    RESTORE_DRILL_SCHEDULE_ID,
)


def test_an_unknown_queue_name_exits_2_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--queues", "approvals,invoices"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "unknown task queue 'invoices'" in error and "approvals, reports, backups" in error
    assert parse_args([]).queues == ("approvals", "reports", "backups")  # no flag: every queue, as before
    assert parse_args(["--queues", " reports,approvals,reports"]).queues == ("reports", "approvals")


@pytest.fixture
def temporal_address(tmp_path: Path) -> Iterator[str]:
    """A server of its own: the schedules' ids are fixed, and other tests reconcile them on the session's."""
    with temporal_server(tmp_path) as address:
        yield address


async def _pollers(address: str, task_queue: str, kind: TaskQueueType.ValueType) -> int:
    client = await Client.connect(address)
    request = DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind)
    return len((await client.workflow_service.describe_task_queue(request)).pollers)


async def _schedule_ids(address: str) -> set[str]:
    client = await Client.connect(address)
    return {schedule.id async for schedule in await client.list_schedules()}


def test_a_reports_worker_polls_only_the_reports_queue_and_sets_up_only_its_schedules(
    temporal_address: str, pgbouncer: PgBouncer, database_url: str, tmp_path: Path
) -> None:
    prefix = f"queues-{secrets.token_hex(4)}"
    log = tmp_path / "worker.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SMTP_", "AWS_", "S3_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=pgbouncer.url_for(database_url, POOLED_APP),
        DATABASE_POOLER="transaction",
        DATABASE_DIRECT_URL=direct_url(database_url, DIRECT_APP),
        SECRET_KEY=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_TASK_QUEUE_PREFIX=prefix,
        WORKER_METRICS_PORT=str(free_port()),
        WORKER_BUSINESS_METRICS_PORT=str(free_port()),
        STORAGE_DIR=str(tmp_path / "storage"),
        MAIL_DIR=str(tmp_path / "mail"),
    )
    with log.open("ab") as handle:
        worker = subprocess.Popen(
            [sys.executable, "worker.py", "--queues", "reports"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=handle,
            stderr=handle,
        )
    try:
        deadline = time.monotonic() + 90
        while "schedules set up" not in log.read_text():
            assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no schedules set up:\n{log.read_text()[-5000:]}"
            time.sleep(0.3)
        workflow, activity = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        while not asyncio.run(_pollers(temporal_address, f"{prefix}-reports", workflow)):
            assert time.monotonic() < deadline, f"nobody polls the reports queue:\n{log.read_text()[-5000:]}"
            time.sleep(0.3)
        assert asyncio.run(_pollers(temporal_address, f"{prefix}-reports", activity)) >= 1
        for other in ("approvals", "backups"):
            for kind in (workflow, activity):
                assert asyncio.run(_pollers(temporal_address, f"{prefix}-{other}", kind)) == 0, other

        schedules = asyncio.run(_schedule_ids(temporal_address))
        reports = {
            RETENTION_SCHEDULE_ID,
            FX_RATES_SCHEDULE_ID,
            BUDGET_UPKEEP_SCHEDULE_ID,
            ATTACHMENT_UPKEEP_SCHEDULE_ID,
        }
        assert reports <= schedules  # the reports queue's: this process owns them
        assert not {BACKUP_SCHEDULE_ID, RESTORE_DRILL_SCHEDULE_ID} & schedules  # left to a backups process
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert worker.returncode == 0, log.read_text()[-5000:]
    assert f"worker started on ['{prefix}-reports']" in log.read_text()
