"""Durable timers on the time-skipping test server: a reminder after 48 h, an escalation after 5 days to the
next approver up the hierarchy (both told), and an optional expiry that ends the request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from core.engine import search_attributes
from domain.approvals.outbox import search_attributes as approval_attributes
from domain.models import Entry
from tests.approvals.conftest import (
    EmailOutbox,
    eventually,
    notifications_for,
    record_history,
    started_with,
    submit_directly,
)
from tests.conftest import MakeUser
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import (
    CURRENT_APPROVER,
    ApprovalResult,
    ApprovalTimers,
    DecisionRequest,
    LiveStatus,
)

HOUR = 3600.0
DAY = 24 * HOUR


@pytest.fixture
async def running(
    skipping: WorkflowEnvironment, activity_deps: ActivityDeps
) -> AsyncIterator[tuple[Client, str, EmailOutbox]]:
    outbox = EmailOutbox()
    queue = f"timers-{uuid.uuid4().hex[:8]}"
    activities = [*ApprovalActivities(replace(activity_deps, mail=outbox)).all(), outbox.send_email]
    async with Worker(skipping.client, task_queue=queue, workflows=[EntryApprovalWorkflow], activities=activities):
        yield skipping.client, queue, outbox


async def _start(
    client: Client, queue: str, deps: ActivityDeps, owner_id: int, timers: ApprovalTimers, amount: str = "120.00"
):  # type: ignore[no-untyped-def]
    submission = await submit_directly(deps, owner_id, amount)
    request = started_with(submission, timers)
    return submission, await client.start_workflow(
        EntryApprovalWorkflow.run,
        request,
        id=submission.request.workflow_id,
        task_queue=queue,
        search_attributes=search_attributes(approval_attributes(request, submission.request.status)),
    )


async def test_reminder_after_48_hours_then_escalation_after_5_days(
    running: tuple[Client, str, EmailOutbox],
    skipping: WorkflowEnvironment,
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    client, queue, outbox = running
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    submission, handle = await _start(client, queue, activity_deps, employee.id, ApprovalTimers())
    reminded, escalated = sla_count("reminded"), sla_count("escalated")

    assert await eventually(lambda: _has(activity_deps, manager.id, "entry_submitted"))
    await skipping.sleep(timedelta(hours=47))
    assert await notifications_for(activity_deps, manager.id, "approval_reminder") == []

    await skipping.sleep(timedelta(hours=2))
    assert await eventually(lambda: _has(activity_deps, manager.id, "approval_reminder"))
    assert "approval_reminder" in outbox.templates()
    assert sla_count("reminded") == reminded + 1  # the business metric the dashboard plots (SLA events)
    status: LiveStatus = await handle.query(EntryApprovalWorkflow.status)
    assert status.current_approver_id == manager.id and status.status == "pending"

    await skipping.sleep(timedelta(hours=120 - 49 + 1))  # five days after submission
    assert await eventually(lambda: _has(activity_deps, admin.id, "approval_escalated"))
    assert await notifications_for(activity_deps, manager.id, "approval_escalated")  # the old approver hears too
    status = await handle.query(EntryApprovalWorkflow.status)
    assert status.current_approver_id == admin.id
    assert outbox.templates().count("approval_escalated") == 2
    assert sla_count("escalated") == escalated + 1
    # The Temporal UI finds the escalated request in the admin's queue.
    described = await handle.describe()
    assert described.typed_search_attributes.get(CURRENT_APPROVER) == str(admin.id)

    # The escalated step is the admin's now, and the admin's limit covers the amount: one approval ends it.
    outcome = await handle.execute_update(
        EntryApprovalWorkflow.decide,
        DecisionRequest(action="approve", actor_id=admin.id, step_id=status.step.step_id if status.step else 0),
    )
    assert outcome.request_status == "approved"
    result: ApprovalResult = await handle.result()
    assert result.status == "approved"
    await record_history(client, handle.id, "reminder_escalation_approve")
    async with activity_deps.db.transaction() as tx:
        entry = await tx.session.get(Entry, submission.request.entry_id)
        assert entry is not None and entry.status == "approved"


async def test_expiry_ends_the_request(
    running: tuple[Client, str, EmailOutbox],
    skipping: WorkflowEnvironment,
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    client, queue, outbox = running
    manager = await make_user("manager")  # nobody above: no escalation target, the step waits until expiry
    employee = await make_user("employee", manager=manager)
    timers = ApprovalTimers(expiry_seconds=10 * DAY)
    submission, handle = await _start(client, queue, activity_deps, employee.id, timers)

    await skipping.sleep(timedelta(days=9))
    status: LiveStatus = await handle.query(EntryApprovalWorkflow.status)
    assert status.status == "pending" and status.current_approver_id == manager.id  # escalation found nobody

    result: ApprovalResult = await handle.result()  # skips to the expiry
    assert result.status == "expired"
    async with activity_deps.db.transaction() as tx:
        entry = await tx.session.get(Entry, submission.request.entry_id)
        assert entry is not None and entry.status == "expired"
    assert await notifications_for(activity_deps, employee.id, "entry_expired")  # the owner is told it ended
    await record_history(client, handle.id, "expiry")


def sla_count(event: str) -> float:
    """The worker's counter of SLA timers that did something (the activities run in this process)."""
    return REGISTRY.get_sample_value("finance_approval_sla_events_total", {"event": event}) or 0.0


async def _has(deps: ActivityDeps, user_id: int, event_type: str) -> bool:
    return bool(await notifications_for(deps, user_id, event_type))


async def test_escalation_goes_only_to_someone_whose_limit_covers_the_amount(
    running: tuple[Client, str, EmailOutbox],
    skipping: WorkflowEnvironment,
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    """Rule 5. A 15,000 expense waits on a manager (10,000) whose own manager is a director, also 10,000: escalating
    to the director, who could not approve it, would let a request be approved below its amount. It goes to the
    admin; and as the admin then decided a step, the second level goes to the next distinct person above."""
    client, queue, _ = running
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    director = await make_user("manager", manager=admin)
    manager = await make_user("manager", manager=director)
    employee = await make_user("employee", manager=manager)
    submission, handle = await _start(client, queue, activity_deps, employee.id, ApprovalTimers(), "15000.00")
    assert [link.approver_id for link in submission.input.chain] == [manager.id, admin.id]

    await skipping.sleep(timedelta(hours=121))
    assert await eventually(lambda: _has(activity_deps, admin.id, "approval_escalated"))
    assert await notifications_for(activity_deps, director.id, "approval_escalated") == []
    status: LiveStatus = await handle.query(EntryApprovalWorkflow.status)
    assert status.current_approver_id == admin.id and status.step is not None

    decided = await handle.execute_update(
        EntryApprovalWorkflow.decide, DecisionRequest(action="approve", actor_id=admin.id, step_id=status.step.step_id)
    )
    assert decided.request_status == "pending" and decided.next_step is not None
    assert decided.next_step.approver_id == superadmin.id  # not the admin again: one person, one decision
    final = await handle.execute_update(
        EntryApprovalWorkflow.decide,
        DecisionRequest(action="approve", actor_id=superadmin.id, step_id=decided.next_step.step_id),
    )
    assert final.request_status == "approved"
