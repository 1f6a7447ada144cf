"""Rule 7: no submission is lost between commit and start. The API process is SIGKILLed right after it committed
a submission and before it started the workflow; the worker's outbox relay starts it, and the request is decided
as if nothing had happened, within a minute."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from core.settings import PROJECT_ROOT
from tests.bench.stack import Stack, running_stack, stack_user
from tests.services import admin_database_url, free_port, scratch_database


@pytest.fixture
def stack(temporal_client: Client, tmp_path: Path) -> Iterator[Stack]:
    address = temporal_client.service_client.config.target_host
    quick = {"APPROVAL_OUTBOX_GRACE_SECONDS": "2", "APPROVAL_OUTBOX_RELAY_SECONDS": "1", "LOG_LEVEL": "INFO"}
    with scratch_database(admin_database_url()) as url, running_stack(url, address, tmp_path, quick) as running:
        yield running


@pytest.fixture
def doomed(stack: Stack) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A second API on the same database and Temporal, which dies at the start of any workflow."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.approvals.killed_api", str(port)], cwd=PROJECT_ROOT, env=stack.env
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()


async def test_a_submission_committed_by_an_api_killed_before_the_start_is_started_within_a_minute(
    stack: Stack, doomed: tuple[str, subprocess.Popen[bytes]], temporal_client: Client
) -> None:
    admin_id, _ = stack_user(stack, "admin", None)
    manager_id, manager = stack_user(stack, "manager", admin_id)
    _, employee = stack_user(stack, "employee", manager_id)
    doomed_url, process = doomed
    async with httpx.AsyncClient(base_url=doomed_url, timeout=10) as http:
        for _ in range(100):
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        body = {"amount": "250.00", "category": "travel", "entry_date": date.today().isoformat(), "vendor": "Rail"}
        created = await http.post("/api/v1/expenses/", json=body, headers=employee)
        assert created.status_code == 201, created.text
        entry_id = created.json()["id"]
        with pytest.raises(httpx.HTTPError):  # the process dies mid-request: no answer at all
            await http.post(f"/api/v1/expenses/{entry_id}/submit", headers=employee)
    for _ in range(50):
        if process.poll() is not None:
            break
        await asyncio.sleep(0.2)
    assert process.returncode == -9  # killed, not a clean exit

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        read = await http.get(f"/api/v1/expenses/{entry_id}", headers=employee)
        assert read.json()["status"] == "pending"  # committed: the submission is not lost ...
        workflow_id = f"approval-expense-{entry_id}"
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:  # ... and its workflow is started by the relay, not left without one
            with contextlib.suppress(RPCError):  # (the shared dev server may hold an earlier test's closed run)
                status = (await temporal_client.get_workflow_handle(workflow_id).describe()).status
                if status == WorkflowExecutionStatus.RUNNING:
                    break
            await asyncio.sleep(0.5)
        assert status == WorkflowExecutionStatus.RUNNING, "no workflow for the committed submission within 60 s"
        approved = await http.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=manager)
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text


async def test_a_start_the_api_delivered_is_confirmed_by_its_run_and_never_sent_again(stack: Stack) -> None:
    """The API does not mark its own start delivered: the run does, in its first activity. The relay (grace 2 s)
    must find nothing to send again."""
    admin_id, _ = stack_user(stack, "admin", None)
    manager_id, manager = stack_user(stack, "manager", admin_id)
    _, employee = stack_user(stack, "employee", manager_id)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        body = {"amount": "250.00", "category": "travel", "entry_date": date.today().isoformat(), "vendor": "Rail"}
        entry_id = (await http.post("/api/v1/expenses/", json=body, headers=employee)).json()["id"]
        submitted = await http.post(f"/api/v1/expenses/{entry_id}/submit", headers=employee)
        assert submitted.status_code == 200, submitted.text
        await asyncio.sleep(5)  # past the grace and a few relay rounds
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT o.delivered_at IS NOT NULL, o.attempts, o.last_error FROM approval_outbox o "
                "JOIN approval_requests r ON r.id = o.request_id WHERE r.entry_id = %s AND o.kind = 'start'",
                (entry_id,),
            ).fetchall()
        # Delivered once, by the API, and confirmed by the run: a second delivery would count an attempt and note
        # "already running".
        assert rows == [(True, 1, None)]
        approved = await http.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=manager)
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
