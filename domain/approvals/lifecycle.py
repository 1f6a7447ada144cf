"""The approval workflow as the commands drive it: started after the submission commits (or the submission
undone), told of decisions (Workflow Updates) and delegations (signals), asked for its live status. The engine's
outcomes become domain errors here, once: 403/404/409/422 for a refusal, 503 when the engine cannot answer."""

from __future__ import annotations

import uuid

from core.db import Tx
from core.engine import EngineUnavailable, UpdateRefused, UpdateUnanswered, WorkflowEngine, WorkflowGone
from core.settings import Settings
from domain.approvals import outbox
from domain.approvals.transitions import Submission, undo_submission
from domain.audit.service import AuditContext
from domain.errors import InvalidState, ServiceUnavailable, refusal_error
from workflows.contracts import (
    ApprovalTimers,
    DecisionOutcome,
    DelegationChange,
    LiveStatus,
)

UNREACHABLE = "the workflow engine did not answer in time; nothing was changed, try again shortly"
# An update the engine may have accepted before the answer timed out can still be applied: say so, and how to retry.
UNANSWERED_UPDATE = (
    "the workflow engine did not answer in time; the action may still take effect: read the request again, or "
    "repeat the call with the same Idempotency-Key (a repeat never applies it twice)"
)
UNCONFIRMED_START = "submission undone: the start of this workflow was not confirmed to the API"


def timers_from(settings: Settings) -> ApprovalTimers:
    """The SLA timers a request is opened with (pinned for its life)."""
    expiry = settings.approvals.expiry_hours
    return ApprovalTimers(
        reminder_seconds=settings.approvals.reminder_hours * 3600,
        escalation_seconds=settings.approvals.escalation_hours * 3600,
        expiry_seconds=expiry * 3600 if expiry else None,
    )


def workflow_url(settings: Settings, workflow_id: str) -> str:
    base = settings.temporal.ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal.namespace}/workflows/{workflow_id}"


def update_id(actor_id: int, name: str, idempotency_key: str | None) -> str:
    # Temporal deduplicates updates by id within a run: the client's key, scoped to the caller and the action.
    return f"{actor_id}:{name}:{idempotency_key}" if idempotency_key else f"{actor_id}:{name}:{uuid.uuid4()}"


class ApprovalLifecycle:
    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine

    async def start_or_undo(self, tx: Tx, submission: Submission, context: AuditContext) -> None:
        """Commit the submission, then start its workflow; when the start fails, put the subject back as it was and
        answer 503. An auto-approved submission is complete without its workflow (which only records it)."""
        await tx.commit()  # the submission, and its start in the outbox, are durable before the engine hears of it
        request = submission.request
        try:
            await self.engine.start(
                outbox.APPROVAL_WORKFLOW,
                submission.input,
                workflow_id=request.workflow_id,
                task_queue=self.engine.queues.approvals,
                attributes=outbox.search_attributes(submission.input, request.status),
                # After an undone start, a run of that start may still be going: the database says it is stale, so
                # the new submission replaces it (atomically, in the server) instead of colliding with it.
                on_running="replace" if submission.restarted else "keep",
                metadata=submission.metadata,
            )
        except EngineUnavailable as error:
            if submission.input.auto_approve_rule:
                return  # approved at submit by the recorded rule; the workflow would only have recorded it
            # The start may have reached the server even so: end what it started before the undo commits (while the
            # subject is still pending, no new submission can start a run this would end instead). If the engine
            # cannot be told now, that run ends by itself as "undone" when its first activity finds it undone.
            await self.engine.terminate(request.workflow_id, UNCONFIRMED_START)
            await undo_submission(tx.sql, request.id, "the workflow engine is unreachable", context)
            await tx.commit()
            raise ServiceUnavailable(UNREACHABLE) from error
        # A run started for a first step confirms its start itself (transitions.announce_first_step), in the
        # transaction of its first activity; a replacing start, or one with no step to announce, is confirmed here.
        if submission.outbox_id is not None and (submission.restarted or submission.input.first_step is None):
            await outbox.delivered(tx.sql, submission.outbox_id)

    async def update(self, workflow_id: str, name: str, argument: object, update_id: str) -> DecisionOutcome:
        try:
            return await self.engine.update(
                workflow_id, name, argument, update_id=update_id, result_type=DecisionOutcome
            )
        except UpdateRefused as refused:
            raise refusal_error(refused.kind, refused.message) from refused
        except (UpdateUnanswered, EngineUnavailable) as error:
            raise ServiceUnavailable(UNANSWERED_UPDATE) from error
        except WorkflowGone as error:
            raise InvalidState("this approval has already ended") from error

    async def tell_delegation(self, workflow_id: str, change: DelegationChange) -> bool:
        """Signal a changed delegation; False when the engine could not be told (the workflow may have ended)."""
        try:
            await self.engine.signal(workflow_id, "delegation_changed", change)
        except (EngineUnavailable, WorkflowGone):
            return False
        return True

    async def live_status(self, workflow_id: str) -> LiveStatus | None:
        """The workflow's own view (deadlines included), or None when it cannot answer: reads keep working."""
        return await self.engine.query(workflow_id, "status", LiveStatus, seconds=2)
