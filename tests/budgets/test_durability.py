"""The saga where approvals are hard: an SLA expiry on durable timers, and real worker processes SIGKILLed with
commitments held and approvals in flight (a worker that dies after the approval committed, in-process:
tests/approvals/test_worker_restart.py). Afterwards every budget's sums equal its ledger's and no charge is written
twice."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from core.engine import search_attributes
from domain.approvals.outbox import search_attributes as approval_attributes
from tests.approvals.conftest import EmailOutbox, settle_workflows, skipping, started_with, submit_directly  # noqa: F401 - fixture
from tests.bench.stack import Stack, running_stack, stack_user, start_worker
from tests.budgets.conftest import books, ledger_rows, team_budget, this_month
from tests.conftest import MakeUser
from tests.services import admin_database_url, scratch_database
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import ApprovalTimers

D = Decimal


async def test_an_expiry_gives_the_commitment_back(
    skipping: WorkflowEnvironment,  # noqa: F811 - the fixture
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    manager = await make_user("manager")  # nobody above: the step waits until it expires
    employee = await make_user("employee", manager=manager)
    accountant = await make_user("accountant")
    budget_id = await team_budget(activity_deps, accountant.id, manager.id)
    queue = f"budget-expiry-{uuid.uuid4().hex[:8]}"
    outbox = EmailOutbox()
    activities = [*ApprovalActivities(replace(activity_deps, mail=outbox)).all(), outbox.send_email]
    async with Worker(skipping.client, task_queue=queue, workflows=[EntryApprovalWorkflow], activities=activities):
        submission = await submit_directly(activity_deps, employee.id, "400.00")
        assert await books(activity_deps, budget_id) == (D("400"), D("0"), 1)
        request = started_with(submission, ApprovalTimers(expiry_seconds=3 * 24 * 3600))
        handle = await skipping.client.start_workflow(
            EntryApprovalWorkflow.run,
            request,
            id=submission.request.workflow_id,
            task_queue=queue,
            search_attributes=search_attributes(approval_attributes(request, submission.request.status)),
        )
        assert (await handle.result()).status == "expired"
    assert await books(activity_deps, budget_id) == (D("0"), D("0"), 2)
    assert submission.request.entry_id is not None
    assert [row[0] for row in await ledger_rows(activity_deps, submission.request.entry_id)] == [
        "committed",
        "released",
    ]


# --- real processes -------------------------------------------------------------------------------------------


@pytest.fixture
async def stack(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Stack]:
    address = temporal_client.service_client.config.target_host
    quick = {
        "APPROVAL_OUTBOX_GRACE_SECONDS": "2",
        "APPROVAL_OUTBOX_RELAY_SECONDS": "1",
        "BUDGET_UPKEEP_ENABLED": "false",
    }
    with scratch_database(admin_database_url()) as url, running_stack(url, address, tmp_path, quick) as running:
        yield running
    # Workflows left waiting (`approval-expense-<id>`, ids that restart with each database) would hold their ids on
    # the shared Temporal server, and a later test's submit of that id would find one of them running.
    queue = f"{running.env['TEMPORAL_TASK_QUEUE_PREFIX']}-approvals"
    await settle_workflows(temporal_client, queue, seconds=1)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        yield client


def _kill_worker(stack: Stack) -> None:
    stack.worker.send_signal(signal.SIGKILL)
    stack.worker.wait()


async def _until(http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], seconds: float = 90):  # type: ignore[no-untyped-def]
    """Repeat an action with one Idempotency-Key until it is answered (a repeat never applies it twice)."""
    keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await http.request(method, path, json={}, headers=keyed)
        if response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.5)


async def _first_booked(database_url: str, seconds: float = 60) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while asyncio.get_running_loop().time() < deadline:
            found = await (await conn.execute("SELECT 1 FROM budget_ledger WHERE kind = 'actual' LIMIT 1")).fetchone()
            if found:
                return True
            await asyncio.sleep(0.01)
    return False


async def test_workers_sigkilled_with_commitments_held_and_approvals_in_flight(
    stack: Stack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin_id, _ = stack_user(stack, "admin", None)
    manager_id, manager = stack_user(stack, "manager", admin_id)
    _, employee = stack_user(stack, "employee", manager_id)
    _, accountant = stack_user(stack, "accountant", admin_id)
    body = {"name": "Team travel", "team_manager_id": manager_id, "period": "month",
            "starts_on": this_month().isoformat(), "amounts": ["5000.00"], "policy": "block"}  # fmt: skip
    budget = (await http.post("/api/v1/budgets", json=body, headers=accountant)).json()

    _kill_worker(stack)  # submissions commit and start their workflows; no worker has run a step of any
    entries = []
    for amount in ("100.00", "200.00", "300.00", "400.00", "500.00", "600.00"):
        draft = {"amount": amount, "category": "travel", "entry_date": date.today().isoformat(), "vendor": "Rail"}
        created = (await http.post("/api/v1/expenses/", json=draft, headers=employee)).json()
        submitted = await http.post(f"/api/v1/expenses/{created['id']}/submit", headers=employee)
        assert submitted.status_code == 200, submitted.text
        entries.append(created["id"])

    stack.worker = start_worker(stack.env, tmp_path)
    approvals = [
        asyncio.create_task(_until(http, "POST", f"/api/v1/expenses/{entry_id}/approve", manager))
        for entry_id in entries[:4]
    ]
    # SIGKILL the moment the first approval has booked its spend: the others are in flight or not yet started.
    assert await _first_booked(stack.database_url), "no approval was booked"
    _kill_worker(stack)
    stack.worker = start_worker(stack.env, tmp_path)
    answers = await asyncio.gather(*approvals)
    assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]

    shown = (await http.get(f"/api/v1/budgets/{budget['id']}", headers=accountant)).json()["periods"][0]
    assert (shown["committed"], shown["actual"], shown["available"]) == ("1100.00", "1000.00", "2900.00")

    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT entry_id, array_agg(kind ORDER BY id) FROM budget_ledger GROUP BY entry_id ORDER BY entry_id"
        ).fetchall()
        sums = conn.execute(
            "SELECT p.committed, p.actual, "
            "sum(l.amount) FILTER (WHERE l.kind = 'committed') - coalesce(sum(l.amount) FILTER (WHERE l.kind = "
            "'released'), 0), coalesce(sum(l.amount) FILTER (WHERE l.kind = 'actual'), 0) "
            "FROM budget_periods p JOIN budget_ledger l USING (budget_id) GROUP BY p.committed, p.actual"
        ).fetchone()
    assert rows == [(entry_id, ["committed", "released", "actual"]) for entry_id in entries[:4]] + [
        (entry_id, ["committed"]) for entry_id in entries[4:]
    ]
    assert sums is not None and sums[0] == sums[2] == D("1100") and sums[1] == sums[3] == D("1000")
