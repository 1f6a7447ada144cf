"""A submit whose workflow start reached Temporal but whose answer was lost: the API answers 503 and undoes the
submission. The run that did start must not linger (it ends by itself, or the API ends it), and submitting the
same entry again, under the same workflow id, must end approved through the normal path."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.deps import ActivityDeps
from core.settings import Settings
from core.temporal import task_queues
from domain.approvals.transitions import Submission, undo_submission
from domain.audit.service import SYSTEM
from tests.approvals.conftest import (
    Team,
    audit_count,
    create_expense,
    eventually,
    notifications_for,
    record_history,
    started_with,
    submit_directly,
)
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import APPROVAL_STATUS, ApprovalResult, ApprovalTimers

LOST = RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")


async def undo(deps: ActivityDeps, submission: Submission) -> None:
    """What the API does after a start it could not confirm."""
    async with deps.db.transaction() as tx:
        await undo_submission(tx.sql, submission.request.id, "the workflow engine is unreachable", SYSTEM)


async def start_orphan(client: Client, settings: Settings, submission: Submission, timers: ApprovalTimers) -> Any:
    return await client.start_workflow(
        EntryApprovalWorkflow.run,
        started_with(submission, timers),
        id=submission.request.workflow_id,
        task_queue=task_queues(settings.temporal).approvals,
    )


async def outcome_of(handle: WorkflowHandle[Any, Any]) -> ApprovalResult:
    result: ApprovalResult = await asyncio.wait_for(handle.result(), timeout=30)
    return result


async def resubmit_and_approve(client: httpx.AsyncClient, team: Team, entry_id: int) -> dict[str, Any]:
    url = f"/api/v1/expenses/{entry_id}"
    again = await client.post(f"{url}/submit", headers=team.employee.headers)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending" and again.json()["workflow_id"] == f"approval-expense-{entry_id}"
    approved = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    return approved.json()  # type: ignore[no-any-return]


async def test_a_run_whose_submission_was_undone_ends_by_itself_and_a_resubmit_is_approved(
    client: httpx.AsyncClient,
    team: Team,
    temporal_client: Client,
    activity_deps: ActivityDeps,
    settings: Settings,
) -> None:
    submission = await submit_directly(activity_deps, team.employee.id)
    await undo(activity_deps, submission)  # the API gave up on the start ...
    orphan = await start_orphan(temporal_client, settings, submission, ApprovalTimers())  # ... which went through

    result = await outcome_of(orphan)
    assert result.status == "undone"
    described = await orphan.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.typed_search_attributes.get(APPROVAL_STATUS) == "undone"  # what the Temporal UI shows
    assert await notifications_for(activity_deps, team.manager.id, "entry_submitted") == []
    await record_history(temporal_client, submission.request.workflow_id, "undone_before_first_activity")

    entry_id = submission.request.entry_id
    assert entry_id is not None
    await resubmit_and_approve(client, team, entry_id)  # a new run under the same id, after the closed one
    final = await outcome_of(
        temporal_client.get_workflow_handle(submission.request.workflow_id, result_type=ApprovalResult)
    )
    assert final.status == "approved" and final.rounds == 2
    assert len(await notifications_for(activity_deps, team.manager.id, "entry_submitted")) == 1
    assert await audit_count(activity_deps, "approval.approved", entry_id) == 1


async def test_a_run_that_announced_before_the_undo_ends_at_its_next_timer_without_reminding(
    team: Team, temporal_client: Client, activity_deps: ActivityDeps, settings: Settings
) -> None:
    submission = await submit_directly(activity_deps, team.employee.id)
    timers = ApprovalTimers(reminder_seconds=2, escalation_seconds=3600)
    orphan = await start_orphan(temporal_client, settings, submission, timers)

    async def announced() -> bool:
        return bool(await notifications_for(activity_deps, team.manager.id, "entry_submitted"))

    assert await eventually(announced)  # the first activity ran while the request was still pending
    await undo(activity_deps, submission)

    result = await outcome_of(orphan)
    assert result.status == "undone"
    assert await notifications_for(activity_deps, team.manager.id, "approval_reminder") == []
    await record_history(temporal_client, submission.request.workflow_id, "undone_after_announce")


@pytest.fixture
async def lost_start(
    monkeypatch: pytest.MonkeyPatch, temporal_client: Client
) -> AsyncIterator[list[WorkflowHandle[Any, Any]]]:
    """The API's next workflow start reaches the server, then its answer is lost. The started run lands on a
    task queue no worker polls, so it is still running whenever the test looks (as with a busy worker)."""
    real = temporal_client.start_workflow
    started: list[WorkflowHandle[Any, Any]] = []

    async def accepted_then_lost(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(temporal_client, "start_workflow", real)  # only the first start is lost
        started.append(await real(*args, **{**kwargs, "task_queue": f"parked-{uuid.uuid4().hex[:8]}"}))
        raise LOST

    monkeypatch.setattr(temporal_client, "start_workflow", accepted_then_lost)
    yield started
    for handle in started:  # a failed test must not leave a run to collide with a later test's (same ids)
        with contextlib.suppress(RPCError):
            await temporal_client.get_workflow_handle(handle.id, run_id=handle.result_run_id).terminate()


async def test_an_unconfirmed_start_is_undone_and_its_run_ended_then_a_resubmit_is_approved(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, lost_start: list[WorkflowHandle[Any, Any]]
) -> None:
    entry = await create_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    submitted = await client.post(f"{url}/submit", headers=team.employee.headers)
    assert submitted.status_code == 503, submitted.text
    assert (await client.get(url, headers=team.employee.headers)).json()["status"] == "draft"
    [orphan] = lost_start
    described = await temporal_client.get_workflow_handle(orphan.id, run_id=orphan.result_run_id).describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED  # no orphan left in the Temporal UI

    await resubmit_and_approve(client, team, entry["id"])
    history = (await client.get(f"{url}/history", headers=team.employee.headers)).json()
    assert [(s["round"], s["status"]) for s in history["steps"]] == [(1, "withdrawn"), (2, "approved")]


async def test_a_resubmit_replaces_a_run_of_an_undone_start_that_is_still_running(
    client: httpx.AsyncClient,
    team: Team,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    lost_start: list[WorkflowHandle[Any, Any]],
) -> None:
    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(WorkflowHandle, "terminate", unreachable)  # the API cannot end the run it may have started
    entry = await create_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    assert (await client.post(f"{url}/submit", headers=team.employee.headers)).status_code == 503
    monkeypatch.undo()
    [orphan] = lost_start
    orphan_run = temporal_client.get_workflow_handle(orphan.id, run_id=orphan.result_run_id)
    assert (await orphan_run.describe()).status == WorkflowExecutionStatus.RUNNING

    # Before the fix the new start collided with the orphan, was taken for "already started", and the entry
    # stayed pending on a workflow that refused every approval (409).
    await resubmit_and_approve(client, team, entry["id"])
    assert (await orphan_run.describe()).status == WorkflowExecutionStatus.TERMINATED
    final = await outcome_of(temporal_client.get_workflow_handle(orphan.id, result_type=ApprovalResult))
    assert final.status == "approved"
