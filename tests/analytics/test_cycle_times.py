"""Approval cycle times measured on the time-skipping Temporal server equal the timers the test set: a manager who
approves after 30 hours, a step escalated by its 120-hour timer (an SLA breach), and the admin who approves the
escalated request 6 hours later. Organisation-wide (histogram and exact rank lookup) and for a manager's subtree
(straight from the step facts), the figures agree."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from core.engine import search_attributes
from domain.analytics import service
from domain.approvals.outbox import search_attributes as approval_attributes
from domain.models import User
from tests.approvals.conftest import EmailOutbox, eventually, skipping, started_with, submit_directly  # noqa: F401
from tests.conftest import MakeUser, TestUser
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import ApprovalTimers, DecisionRequest, LiveStatus

HOUR = 3600
# A step's cycle is decided_at (the workflow's clock) - opened_at (the submitting call's clock for a first step):
# the two clocks agree to within the seconds the test itself takes.
SLACK_SECONDS = 120


@pytest.fixture
async def running(skipping: WorkflowEnvironment, activity_deps: ActivityDeps) -> AsyncIterator[tuple[Client, str]]:  # noqa: F811
    outbox = EmailOutbox()
    queue = f"analytics-{uuid.uuid4().hex[:8]}"
    activities = [*ApprovalActivities(replace(activity_deps, mail=outbox)).all(), outbox.send_email]
    async with Worker(skipping.client, task_queue=queue, workflows=[EntryApprovalWorkflow], activities=activities):
        yield skipping.client, queue


async def _start(client: Client, queue: str, deps: ActivityDeps, owner: TestUser) -> WorkflowHandle:  # type: ignore[type-arg]
    submission = await submit_directly(deps, owner.id)
    request = started_with(submission, ApprovalTimers())  # reminder 48 h, escalation 120 h
    return await client.start_workflow(
        EntryApprovalWorkflow.run,
        request,
        id=submission.request.workflow_id,
        task_queue=queue,
        search_attributes=search_attributes(approval_attributes(request, submission.request.status)),
    )


async def _approve(handle: WorkflowHandle, approver: TestUser) -> None:  # type: ignore[type-arg]
    status: LiveStatus = await handle.query(EntryApprovalWorkflow.status)
    assert status.step is not None and status.current_approver_id == approver.id
    outcome = await handle.execute_update(
        EntryApprovalWorkflow.decide,
        DecisionRequest(action="approve", actor_id=approver.id, step_id=status.step.step_id),
    )
    assert outcome.request_status == "approved"


def _close(seconds: int | None, hours: float) -> bool:
    return seconds is not None and abs(seconds - hours * HOUR) <= SLACK_SECONDS


async def test_cycle_times_match_the_timers(
    running: tuple[Client, str],
    skipping: WorkflowEnvironment,  # noqa: F811
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    client, queue = running
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    quick = await _start(client, queue, activity_deps, employee)
    slow = await _start(client, queue, activity_deps, employee)

    await skipping.sleep(timedelta(hours=30))
    await _approve(quick, manager)  # 30 h after submission
    await skipping.sleep(timedelta(hours=91))  # 121 h: the slow one's step escalated to the admin at 120 h
    await skipping.sleep(timedelta(hours=5))
    await _approve(slow, admin)  # 6 h after the escalation opened the admin's step
    assert await eventually(lambda: _decided(activity_deps, 3))

    async with activity_deps.db.transaction(autocommit=True) as tx:
        last = await tx.session.scalar(text("SELECT max(closed_at) FROM analytics_step_cycles"))
        assert isinstance(last, datetime)
        for viewer_id in (admin.id, manager.id):  # everyone's path and a subtree's path
            viewer = await tx.session.get(User, viewer_id)
            assert viewer is not None
            found = await service.approval_performance(tx, activity_deps.authorizer, viewer, last.date(), 2, None, 10)
            assert (found.steps, found.decisions, found.escalations, found.sla_breaches) == (3, 2, 1, 1)
            assert found.sla_breach_rate == "0.3333" and found.sent_back_share == "0.0000"
            assert (found.requests_decided, found.auto_approved) == (2, 0)
            [level] = found.by_level
            # Nearest rank over 6 h, 30 h, 120 h: the median is the 2nd, the 90th percentile the 3rd.
            assert level.level == 0 and level.steps == 3
            assert _close(level.cycle_time.median_seconds, 30), level
            assert _close(level.cycle_time.p90_seconds, 120), level
            by_approver = {a.approver_id: a for a in found.by_approver}
            assert by_approver[manager.id].steps == 2 and by_approver[manager.id].escalations == 1
            assert _close(by_approver[manager.id].cycle_time.median_seconds, 30)
            assert _close(by_approver[manager.id].cycle_time.p90_seconds, 120)
            assert by_approver[admin.id].steps == 1 and by_approver[admin.id].sla_breaches == 0
            assert _close(by_approver[admin.id].cycle_time.median_seconds, 6)


async def _decided(deps: ActivityDeps, steps: int) -> bool:
    async with deps.db.transaction(autocommit=True) as tx:
        return int(await tx.session.scalar(text("SELECT count(*) FROM analytics_step_cycles")) or 0) >= steps
