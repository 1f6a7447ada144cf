"""A small organisation for the approval tests: admin <- manager <- employee, plus bystanders."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from core.engine import WorkflowEngine
from core.mail import OutgoingMail
from core.settings import PROJECT_ROOT, Settings
from core.temporal import task_queues
from domain.approvals.commands import ApprovalCommands
from domain.approvals.transitions import Submission, open_request
from domain.audit.service import SYSTEM
from domain.entries import service as entries
from domain.entries.schemas import ExpenseCreate
from domain.fx import rates as fx_rates
from domain.fx.rates import terms_from
from domain.models import AuditLog, EntryKind, Notification, User
from tests.conftest import MakeUser, TestUser
from tests.services import TEMPORAL_TEST_SERVER
from workflows.contracts import SEARCH_ATTRIBUTES, ApprovalInput, ApprovalTimers, EmailJob, EmailResult

HISTORIES = Path(__file__).parent / "histories"


@dataclass
class Team:
    admin: TestUser
    manager: TestUser
    employee: TestUser
    peer: TestUser  # another manager under the admin, outside the employee's chain
    accountant: TestUser


@pytest.fixture
async def team(make_user: MakeUser, worker: None, temporal_client: Client, settings: Settings) -> AsyncIterator[Team]:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    peer = await make_user("manager", manager=admin)
    accountant = await make_user("accountant", manager=admin)
    yield Team(admin, manager, employee, peer, accountant)
    await settle_workflows(temporal_client, task_queues(settings.temporal).approvals)


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """End to end over HTTP: the approval tests talk to the API served by uvicorn on a real socket."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield http


async def settle_workflows(client: Client, task_queue: str, seconds: float = 10) -> None:
    """Let the test's workflows finish the activity they are in, then end them.

    The shared teardown empties the tables with a blocking TRUNCATE on the event loop that also runs the
    in-process worker: an activity caught mid-transaction would hold its locks forever and hang the suite.
    """
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    deadline = asyncio.get_running_loop().time() + seconds
    handles = [client.get_workflow_handle(w.id, run_id=w.run_id) async for w in client.list_workflows(query)]
    for handle in handles:
        while asyncio.get_running_loop().time() < deadline:
            described = await handle.describe()
            if described.status != WorkflowExecutionStatus.RUNNING or not described.raw_description.pending_activities:
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(RPCError):
            await handle.terminate("test finished")
    await asyncio.sleep(0.05)  # an activity that completed just now commits before the tables are emptied


def expense_body(amount: str = "120.00", **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "USD",
        "category": "travel",
        "description": "train to the client",
        "entry_date": date.today().isoformat(),
        "vendor": "Rail Co",
        **extra,
    }


async def create_expense(client: httpx.AsyncClient, user: TestUser, amount: str = "120.00") -> dict[str, Any]:
    response = await client.post("/api/v1/expenses/", json=expense_body(amount), headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def submitted_expense(client: httpx.AsyncClient, user: TestUser, amount: str = "120.00") -> dict[str, Any]:
    entry = await create_expense(client, user, amount)
    response = await client.post(f"/api/v1/expenses/{entry['id']}/submit", headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    return response.json()  # type: ignore[no-any-return]


async def audit_count(deps: ActivityDeps, action: str, resource_id: object | None = None) -> int:
    async with deps.db.transaction() as tx:
        statement = select(func.count()).select_from(AuditLog).where(AuditLog.action == action)
        if resource_id is not None:
            statement = statement.where(AuditLog.resource_id == str(resource_id))
        return int(await tx.session.scalar(statement) or 0)


async def ended_status(temporal_client: Client, workflow_id: str, seconds: float = 10) -> WorkflowExecutionStatus:
    """The workflow's status once it is no longer running, or RUNNING when it still is after `seconds`."""
    handle = temporal_client.get_workflow_handle(workflow_id)
    for _ in range(int(seconds * 10)):
        status = (await handle.describe()).status
        if status is not None and status != WorkflowExecutionStatus.RUNNING:
            return status
        await asyncio.sleep(0.1)
    return WorkflowExecutionStatus.RUNNING


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> bool:
    """Poll `check` until it holds (for effects a workflow produces after answering)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def submit_directly(deps: ActivityDeps, owner_id: int, amount: str = "120.00", **fields: Any) -> Submission:
    """Create and submit an expense through the domain (for tests that start the workflow themselves)."""
    async with deps.db.transaction() as tx:
        owner = await tx.session.get(User, owner_id)
        assert owner is not None
        body = ExpenseCreate.model_validate(expense_body(amount, **fields))
        entry = await entries.create_entry(tx, terms_from(deps.settings), owner, EntryKind.EXPENSE, body, SYSTEM)
        commands = ApprovalCommands(deps.settings, deps.authorizer, WorkflowEngine(deps.settings.temporal))
        fx = await fx_rates.lock(tx.sql, entry.currency, entry.amount, entry.entry_date, terms_from(deps.settings))
        opening = commands.opening(owner, entry, entry.approval_title, entry.description, fx.base_amount, fx)
        return await open_request(tx.sql, replace(opening, timers=ApprovalTimers()), SYSTEM)


def started_with(submission: Submission, timers: ApprovalTimers, **changes: Any) -> ApprovalInput:
    """The submission's workflow input with these timers (and other changes) instead of the settings'."""
    return submission.input.model_copy(update={"timers": timers, **changes})


async def notifications_for(deps: ActivityDeps, user_id: int, event_type: str) -> list[Notification]:
    async with deps.db.transaction() as tx:
        rows = await tx.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.event_type == event_type)
            .order_by(Notification.id)
        )
        return list(rows)


class EmailOutbox:
    """Catches approval emails both ways they leave: as the mail transport of the transitions that deliver them
    right after their commit, and as a stand-in "send_email" activity for those the workflow sends durably (the
    real activity is tested by its owner)."""

    def __init__(self) -> None:
        self.jobs: list[EmailJob] = []
        self.mails: list[OutgoingMail] = []

    @activity.defn(name="send_email")
    async def send_email(self, job: EmailJob) -> EmailResult:
        self.jobs.append(job)
        return EmailResult(sent=[job.message_key])

    def send(self, mail: OutgoingMail) -> None:
        self.mails.append(mail)

    def templates(self) -> list[str]:
        return [job.template for job in self.jobs] + [_template_of(mail) for mail in self.mails]


def _template_of(mail: OutgoingMail) -> str:
    # The Message-ID carries the notice's key, "<workflow id>:<event>:<round>...", and the event is the template.
    assert mail.message_id is not None
    return next(name for name in EMAIL_TEMPLATES if f"-{name}-" in mail.message_id)


EMAIL_TEMPLATES = sorted({path.stem for path in (PROJECT_ROOT / "templates" / "emails").iterdir()}, key=len)[::-1]


def save_history(name: str, history_json: str) -> None:
    """Record a workflow history for the replay test (run the suite with RECORD_HISTORIES=1 to refresh them)."""
    if os.environ.get("RECORD_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text(history_json)


async def record_history(client: Client, workflow_id: str, name: str) -> None:
    if os.environ.get("RECORD_HISTORIES"):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        save_history(name, history.to_json())


@pytest.fixture(scope="module")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEMPORAL_TEST_SERVER), data_converter=pydantic_data_converter
    )
    async with env:
        # The test server knows no custom search attributes until told (upserts of unknown ones would hang).
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: int(key.indexed_value_type) for key in SEARCH_ATTRIBUTES},
            )
        )
        yield env
