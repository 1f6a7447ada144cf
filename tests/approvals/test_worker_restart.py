"""A worker dies mid-approval, after the decision committed and before it told Temporal (the local activity's
workflow task never completes); a new worker takes over. The approval completes, with exactly one transition and
one audit row, and the team's budget books the spend once."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

from sqlalchemy import func, select
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from domain.models import ApprovalStep, Entry
from tests.approvals.conftest import EmailOutbox, audit_count, eventually, started_with, submit_directly
from tests.budgets.conftest import books, team_budget
from tests.conftest import MakeUser
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import ApprovalActivity, ApprovalTimers, DecisionRequest, RecordDecisionJob


async def test_worker_killed_after_the_decision_committed(
    temporal_client: Client, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    manager = await make_user("manager")
    employee = await make_user("employee", manager=manager)
    budget_id = await team_budget(activity_deps, (await make_user("accountant")).id, manager.id)
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    outbox = EmailOutbox()
    real = ApprovalActivities(replace(activity_deps, mail=outbox))
    committed = asyncio.Event()

    @activity.defn(name=ApprovalActivity.RECORD_DECISION)
    async def commit_then_hang(job: RecordDecisionJob):  # type: ignore[no-untyped-def]
        """The real transition commits; then the process 'dies' before reporting back."""
        await real.record_decision(job)
        committed.set()
        await asyncio.sleep(3600)

    others = [a for a in real.all() if a != real.record_decision]
    first = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[EntryApprovalWorkflow],
        activities=[*others, commit_then_hang, outbox.send_email],
        max_cached_workflows=0,
    )
    first_run = asyncio.create_task(first.run())

    submission = await submit_directly(activity_deps, employee.id)
    request = started_with(submission, ApprovalTimers(activity_seconds=2))
    handle = await temporal_client.start_workflow(
        EntryApprovalWorkflow.run, request, id=submission.request.workflow_id, task_queue=queue
    )
    assert submission.input.first_step is not None
    decision = DecisionRequest(action="approve", actor_id=manager.id, step_id=submission.input.first_step.step_id)
    approving = asyncio.create_task(handle.execute_update(EntryApprovalWorkflow.decide, decision, id="approve-once"))

    await asyncio.wait_for(committed.wait(), timeout=20)
    assert await books(activity_deps, budget_id) == (0, 120, 3)  # booked with the decision, not yet reported
    await first.shutdown()  # the worker goes away with the activity unreported
    await asyncio.gather(first_run, return_exceptions=True)
    assert not approving.done()

    second = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[EntryApprovalWorkflow],
        activities=[*real.all(), outbox.send_email],
    )
    async with second:
        outcome = await asyncio.wait_for(approving, timeout=30)  # the retried activity finds the decision made
        assert outcome.request_status == "approved"
        result = await asyncio.wait_for(handle.result(), timeout=30)
        assert result.status == "approved"

    assert await audit_count(activity_deps, "approval.approved", submission.request.entry_id) == 1
    async with activity_deps.db.transaction() as tx:
        approved_steps = await tx.session.scalar(
            select(func.count()).select_from(ApprovalStep).where(ApprovalStep.status == "approved")
        )
        entry = await tx.session.get(Entry, submission.request.entry_id)
    assert approved_steps == 1
    assert entry is not None and entry.status == "approved"
    assert await books(activity_deps, budget_id) == (0, 120, 3)  # the retry wrote no second charge
    # The owner's email went out once, whichever worker sent it.
    assert await eventually(lambda: _async(outbox.templates().count("entry_approved") >= 1))
    # The decision is a local activity: the history records its one result (a marker), however often it ran.
    history = await handle.fetch_history()
    assert _local_activity_results(history, ApprovalActivity.RECORD_DECISION) == 1


def _local_activity_results(history: WorkflowHistory, activity_type: str) -> int:
    count = 0
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                count += data.get("activity_type") == activity_type
    return count


async def _async(value: bool) -> bool:
    return value
