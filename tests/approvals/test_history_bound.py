"""A workflow's history is bounded (rule 9): past `history_limit` events it goes on in a new run with the state it
had reached (continue-as-new), and the approval carries on there as if nothing happened."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from tests.approvals.conftest import EmailOutbox, eventually, started_with, submit_directly
from tests.conftest import MakeUser
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import ApprovalResult, ApprovalTimers, DecisionRequest, StepChanged


async def test_a_long_history_continues_as_new_and_the_approval_completes(
    temporal_client: Client, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    outbox = EmailOutbox()
    queue = f"bound-{uuid.uuid4().hex[:8]}"
    activities = [*ApprovalActivities(replace(activity_deps, mail=outbox)).all(), outbox.send_email]
    async with Worker(temporal_client, task_queue=queue, workflows=[EntryApprovalWorkflow], activities=activities):
        submission = await submit_directly(activity_deps, employee.id)
        start = started_with(submission, ApprovalTimers(), history_limit=40)
        handle = await temporal_client.start_workflow(
            EntryApprovalWorkflow.run, start, id=submission.request.workflow_id, task_queue=queue
        )
        first_run = (await handle.describe()).run_id
        for _ in range(20):  # each re-read of the step adds its events; one at a time, a task each
            await handle.signal(EntryApprovalWorkflow.step_changed, StepChanged(reason="test"))
            await asyncio.sleep(0.1)

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run

        assert await eventually(continued, seconds=20)
        previous = temporal_client.get_workflow_handle(handle.id, run_id=first_run)
        assert (await previous.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        latest = temporal_client.get_workflow_handle(handle.id, result_type=ApprovalResult)
        history = await latest.fetch_history()
        assert len(history.events) < 40  # the new run starts afresh

        assert submission.input.first_step is not None
        decision = DecisionRequest(action="approve", actor_id=manager.id, step_id=submission.input.first_step.step_id)
        outcome = await latest.execute_update(EntryApprovalWorkflow.decide, decision)
        assert outcome.request_status == "approved"
        result = await latest.result()
        assert result.status == "approved"
