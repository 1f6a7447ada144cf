"""A worker started before the database is migrated (as compose may start it) still sets up the schedules: it
keeps retrying in the background, serves its task queues meanwhile, and stops at once on SIGTERM. Once it can, it
backfills the exchange rates (here from the sample ECB file, never the network)."""

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

import psycopg
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from core.settings import PROJECT_ROOT
from domain.reports.schedules import RETENTION_SCHEDULE_ID
from tests.bench.stack import temporal_server
from tests.services import admin_database_url, free_port, migrate, scratch_database
from workflows.contracts import (
    ATTACHMENT_UPKEEP_SCHEDULE_ID,
    BACKUP_SCHEDULE_ID,
    BUDGET_UPKEEP_SCHEDULE_ID,
    FX_RATES_SCHEDULE_ID,
    RESTORE_DRILL_SCHEDULE_ID,
)

FAILURE = "could not set up the schedules"
FX_SAMPLE = (PROJECT_ROOT / "domain" / "fx" / "samples" / "eurofxref-hist-90d.xml").as_uri()


@pytest.fixture
def temporal_address(tmp_path: Path) -> Iterator[str]:
    """A server of its own: the schedules' ids are fixed, and other tests reconcile them on the session's."""
    with temporal_server(tmp_path) as address:
        yield address


def _start_worker(database_url: str, temporal_address: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SMTP_", "AWS_", "S3_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_TASK_QUEUE_PREFIX=prefix,
        WORKER_METRICS_PORT=str(free_port()),
        WORKER_BUSINESS_METRICS_PORT=str(free_port()),
        STORAGE_DIR=str(log.parent / "storage"),
        MAIL_DIR=str(log.parent / "mail"),
        FX_RATES_URL=FX_SAMPLE,
        FX_RATES_HISTORY_URL=FX_SAMPLE,
    )
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=handle)


def _wait_for(what: str, check, timeout: float, worker: subprocess.Popen[bytes], log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.returncode}) waiting for {what}:\n{log.read_text()}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-5000:]}")


async def _schedule_ids(address: str) -> set[str]:
    client = await Client.connect(address)
    return {schedule.id async for schedule in await client.list_schedules()}


def _ecb_rates(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM fx_rates WHERE source = 'ecb'").fetchone()
    return int(row[0]) if row else 0


async def _pollers(address: str, task_queue: str) -> int:
    client = await Client.connect(address)
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(answer.pollers)


def test_schedules_appear_once_the_database_is_migrated(temporal_address: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    prefix = f"sched-{secrets.token_hex(4)}"
    with scratch_database(admin_database_url(), "finance_late") as url:
        worker = _start_worker(url, temporal_address, prefix, log)
        try:
            # Not migrated: each attempt fails and says so, and the queues are served all the same.
            _wait_for("two failed attempts", lambda: log.read_text().count(FAILURE) >= 2, 60, worker, log)
            pollers = _wait_for(
                "pollers on the approvals queue",
                lambda: asyncio.run(_pollers(temporal_address, f"{prefix}-approvals")),
                30,
                worker,
                log,
            )
            assert pollers >= 1
            assert BACKUP_SCHEDULE_ID not in asyncio.run(_schedule_ids(temporal_address))

            migrate(url)
            expected = {
                BACKUP_SCHEDULE_ID,
                RESTORE_DRILL_SCHEDULE_ID,
                RETENTION_SCHEDULE_ID,
                "report-schedule-monthly-pnl",
                FX_RATES_SCHEDULE_ID,
                BUDGET_UPKEEP_SCHEDULE_ID,
                ATTACHMENT_UPKEEP_SCHEDULE_ID,
            }
            found = _wait_for(
                "the schedules",
                lambda: expected <= (ids := asyncio.run(_schedule_ids(temporal_address))) and ids,
                90,
                worker,
                log,
            )
            assert expected <= found
            # No recent ECB rate in the new database: the worker imported the history file once.
            _wait_for("the backfilled rates", lambda: _ecb_rates(url) == 70, 60, worker, log)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    assert worker.returncode == 0, log.read_text()[-5000:]


def test_sigterm_ends_the_retrying_at_once(temporal_address: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/finance"  # nothing listens there
    worker = _start_worker(unreachable, temporal_address, f"sigterm-{secrets.token_hex(4)}", log)
    try:
        _wait_for("a failed attempt", lambda: FAILURE in log.read_text(), 60, worker, log)
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        worker.wait(timeout=30)
        assert time.monotonic() - started < 10  # nothing in flight: the back-off sleep must not hold the exit
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, log.read_text()[-5000:]
