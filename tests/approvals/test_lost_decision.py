"""A decision the workflow never heard of: the transition committed, then the worker died before its workflow
task completed, so the update died with it. The approver's retry must bring the workflow up to date, not leave it
waiting on a step the database has closed."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from domain.approvals import transitions
from domain.audit.service import AuditContext
from domain.models import ApprovalStep, Entry
from tests.approvals.conftest import (
    Team,
    audit_count,
    ended_status,
    eventually,
    notifications_for,
    submitted_expense,
)
from workflows.contracts import RecordDecisionJob


async def _commit_without_the_workflow(deps: ActivityDeps, entry_id: int, actor_id: int) -> None:
    """What the decision's transition commits, run here, so that the workflow's state stays where it was. First the
    workflow announces the step to its approver (a decision comes after that; a request already decided when the
    announcement reads it would end the workflow as undone instead)."""

    async def announced() -> bool:
        notices = await notifications_for(deps, actor_id, "entry_submitted")
        return any(notice.data.get("entry_id") == entry_id for notice in notices)

    assert await eventually(announced)
    async with deps.db.transaction() as tx:
        entry = await tx.session.get(Entry, entry_id)
        assert entry is not None and entry.approval_request_id is not None
        step = await tx.session.scalar(select(ApprovalStep).where(ApprovalStep.request_id == entry.approval_request_id))
        assert step is not None
        job = RecordDecisionJob(
            workflow_id=entry.workflow_id or "",
            request_id=entry.approval_request_id,
            step_id=step.id,
            action="approve",
            actor_id=actor_id,
            now=datetime.now(UTC),
            limits=deps.authorizer.limits_snapshot(),
            audit=AuditContext(actor_id=actor_id),
        )
        await transitions.record_decision(tx.sql, job)


async def test_the_approvers_retry_brings_a_workflow_that_lost_the_decision_up_to_date(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    entry = await submitted_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    await _commit_without_the_workflow(activity_deps, entry["id"], team.manager.id)
    assert await ended_status(temporal_client, entry["workflow_id"], seconds=1) == WorkflowExecutionStatus.RUNNING

    retry = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "approved"
    assert await ended_status(temporal_client, entry["workflow_id"]) == WorkflowExecutionStatus.COMPLETED
    assert await audit_count(activity_deps, "approval.approved", entry["id"]) == 1  # recorded once, not twice

    again = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["details"]["status"] == "approved"


async def test_someone_elses_decision_is_not_sent_again_on_their_behalf(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    entry = await submitted_expense(client, team.employee)
    await _commit_without_the_workflow(activity_deps, entry["id"], team.manager.id)

    other = await client.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=team.admin.headers)
    assert other.status_code == 409, other.text
    assert await ended_status(temporal_client, entry["workflow_id"], seconds=1) == WorkflowExecutionStatus.RUNNING
