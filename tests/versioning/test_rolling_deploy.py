"""A rolling deploy while approvals are in flight, with worker versioning as worker.py sets it up from the settings.

Build N (the real approval workflow and activities, on the real database) takes two approvals; build N+1 (the same
code with one change its histories show, as a new release would bring) starts beside it and is made current. New
approvals then start on N+1, the two in flight are decided and complete on N (each reports the version it ran on),
N drains and is retired, and what remains completes on N+1 alone.

Re-record the versioned history the replay tests keep (tests/approvals/histories/versioned_pinned_approve.json):
`RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/versioning`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from temporalio import workflow
from temporalio.api.enums.v1 import VersioningBehavior as VersioningBehaviorMessage
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion

from activities.deps import ActivityDeps
from core.engine import WorkflowEngine
from core.settings import Settings
from domain.approvals import outbox
from domain.approvals.lifecycle import ApprovalLifecycle
from domain.models import Entry
from tests.approvals.conftest import record_history, submit_directly
from tests.conftest import MakeUser, TestUser
from tests.versioning.conftest import drained, running, set_current, versioning_of, visibility_name
from worker import QueuePlan, build_workers, deployment_config, worker_plan
from workflows.approval import PinnedEntryApprovalWorkflow
from workflows.contracts import APPROVALS_QUEUE, ApprovalInput, ApprovalResult, DecisionRequest

NEXT_BUILD_PATCH = "rolling-deploy-test-next-build"
PINNED = VersioningBehaviorMessage.VERSIONING_BEHAVIOR_PINNED


@workflow.defn(name="EntryApprovalWorkflow", sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class NextBuildApprovalWorkflow(PinnedEntryApprovalWorkflow):
    """Build N+1's approval: today's, with a change at its start that its history records (a patch marker)."""

    @workflow.run
    async def run(self, request: ApprovalInput) -> ApprovalResult:
        workflow.patched(NEXT_BUILD_PATCH)
        return await super().run(request)


def as_next_build(plans: list[QueuePlan]) -> list[QueuePlan]:
    swap = {PinnedEntryApprovalWorkflow: NextBuildApprovalWorkflow}
    return [replace(plan, workflows=[swap.get(w, w) for w in plan.workflows]) for plan in plans]


class Build:
    """One release of the workers: its settings (the deployment name and build id an image would set) and deps."""

    def __init__(self, settings: Settings, activity_deps: ActivityDeps, client: Client, tag: str, build_id: str):
        temporal = settings.temporal.model_copy(
            update={
                "task_queue_prefix": f"rollout-{tag}",
                "worker_deployment_name": f"finance-rollout-{tag}",
                "worker_build_id": build_id,
            }
        )
        self.settings = settings.model_copy(update={"temporal": temporal})
        self.deps = replace(activity_deps, settings=self.settings, engine=WorkflowEngine(temporal, client))
        deployment = deployment_config(temporal)
        assert deployment is not None
        self.deployment = deployment
        self.version: WorkerDeploymentVersion = deployment.version


async def start_approval(build: Build, employee: TestUser) -> tuple[str, int, int]:
    """Submit an expense and start its approval as the API does (after the submission committed)."""
    submission = await submit_directly(build.deps, employee.id)
    engine = build.deps.engine
    assert engine is not None and submission.input.first_step is not None
    await engine.start(
        outbox.APPROVAL_WORKFLOW,
        submission.input,
        workflow_id=submission.request.workflow_id,
        task_queue=engine.queues.approvals,
        attributes=outbox.search_attributes(submission.input, submission.request.status),
        metadata=submission.metadata,
    )
    assert submission.request.entry_id is not None
    return submission.request.workflow_id, submission.input.first_step.step_id, submission.request.entry_id


async def approve(build: Build, workflow_id: str, step_id: int, manager: TestUser) -> str:
    """The manager's decision, through the update the API sends; the committed status it answers with."""
    assert build.deps.engine is not None
    decision = DecisionRequest(action="approve", actor_id=manager.id, step_id=step_id)
    outcome = await ApprovalLifecycle(build.deps.engine).update(workflow_id, "decide", decision, f"approve-{step_id}")
    return outcome.request_status


async def entry_status(deps: ActivityDeps, entry_id: int) -> str:
    async with deps.db.transaction() as tx:
        entry = await tx.session.get(Entry, entry_id)
        assert entry is not None
        return entry.status


def patches_in(history: WorkflowHistory) -> set[str]:
    """The ids of the patches (`workflow.patched`) the code that ran this history went through."""
    found = set()
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                found.add(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


async def versions_used(handle: WorkflowHandle) -> list[str]:
    """Every version whose workers ran a task of this workflow (Temporal's own search attribute)."""
    attributes = (await handle.describe()).search_attributes
    return sorted(str(value) for value in attributes.get("TemporalUsedWorkerDeploymentVersions", []))


async def test_in_flight_approvals_finish_on_their_build_while_new_ones_start_on_the_next(
    versioned_temporal: Client, settings: Settings, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    client = versioned_temporal
    tag = uuid.uuid4().hex[:8]
    n = Build(settings, activity_deps, client, tag, "n")
    next_build = Build(settings, activity_deps, client, tag, "n-plus-1")
    manager = await make_user("manager")
    employee = await make_user("employee", manager=manager)

    async with running(build_workers(client, worker_plan(n.deps, [APPROVALS_QUEUE]), n.deployment)) as retire_n:
        await set_current(client, n.version)
        in_flight = [await start_approval(n, employee) for _ in range(2)]
        for workflow_id, _, _ in in_flight:
            started = await versioning_of(client.get_workflow_handle(workflow_id))
            assert (started.behavior, started.deployment_version.build_id) == (PINNED, "n")

        # Deploy N+1 beside N and make it current: it takes new approvals, N keeps those pinned to it.
        next_plans = as_next_build(worker_plan(next_build.deps, [APPROVALS_QUEUE]))
        async with running(build_workers(client, next_plans, next_build.deployment)):
            await set_current(client, next_build.version)
            newcomer_id, newcomer_step, newcomer_entry = await start_approval(next_build, employee)
            newcomer = client.get_workflow_handle(newcomer_id, result_type=ApprovalResult)
            started = await versioning_of(newcomer)
            assert (started.behavior, started.deployment_version.build_id) == (PINNED, "n-plus-1")

            for workflow_id, step_id, entry_id in in_flight:
                assert await approve(n, workflow_id, step_id, manager) == "approved"
                handle = client.get_workflow_handle(workflow_id, result_type=ApprovalResult)
                assert (await handle.result()).status == "approved"
                assert await entry_status(n.deps, entry_id) == "approved"
                # Every task ran on N: N's code, without N+1's change.
                assert await versions_used(handle) == [visibility_name(n.version)]
                assert NEXT_BUILD_PATCH not in patches_in(await handle.fetch_history())
            await record_history(client, in_flight[0][0], "versioned_pinned_approve")

            # N has nothing left: Temporal reports it drained, and no open workflow is on it.
            assert await drained(client, n.version)
            left = f"TemporalWorkerDeploymentVersion = '{visibility_name(n.version)}' AND ExecutionStatus = 'Running'"
            assert (await client.count_workflows(left)).count == 0
            await retire_n()

            # With N retired, the approval started on N+1 is decided and completes there.
            assert await approve(next_build, newcomer_id, newcomer_step, manager) == "approved"
            assert (await newcomer.result()).status == "approved"
            assert await entry_status(n.deps, newcomer_entry) == "approved"
            assert await versions_used(newcomer) == [visibility_name(next_build.version)]
            assert NEXT_BUILD_PATCH in patches_in(await newcomer.fetch_history())
