"""The HTTP side of the approval workflow: start it after commit, send decisions as Updates, signal delegations,
and turn Temporal's answers into domain errors (403/404/409/422, and 503 when the engine cannot answer)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppServices
from core.engine import EngineUnavailable
from core.settings import Settings
from core.temporal import AMOUNT_CENTS, APPROVAL_STATUS, CURRENT_APPROVER, ENTRY_ID, ENTRY_KIND
from domain.approvals import service as approvals
from domain.approvals.notices import link_for
from domain.approvals.service import Submission
from domain.audit.service import AuditContext
from domain.errors import DomainError, Forbidden, InvalidState, NotFound, ServiceUnavailable, ValidationFailed
from domain.models import RequestStatus, User
from domain.models.rows import RequestRow, StepRow
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import (
    ApprovalInput,
    ApprovalTimers,
    AuditInfo,
    ChainLink,
    DecisionOutcome,
    DecisionRequest,
    DelegationChange,
    LiveStatus,
    OwnerAction,
    StepInfo,
)

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[DomainError]] = {
    "Conflict": InvalidState,
    "Forbidden": Forbidden,
    "ValidationFailed": ValidationFailed,
    "NotFound": NotFound,
}
UNREACHABLE = "the workflow engine did not answer in time; nothing was changed, try again shortly"
# An update the engine may have accepted before the answer timed out can still be applied: say so, and how to retry.
UNANSWERED_UPDATE = (
    "the workflow engine did not answer in time; the action may still take effect: read the request again, or "
    "repeat the call with the same Idempotency-Key (a repeat never applies it twice)"
)
UNCONFIRMED_START = "submission undone: the start of this workflow was not confirmed to the API"


def timers_from(settings: Settings) -> ApprovalTimers:
    expiry = settings.approvals.expiry_hours
    return ApprovalTimers(
        reminder_seconds=settings.approvals.reminder_hours * 3600,
        escalation_seconds=settings.approvals.escalation_hours * 3600,
        expiry_seconds=expiry * 3600 if expiry else None,
    )


def workflow_input(submission: Submission, timers: ApprovalTimers, *, search_attributes: bool = True) -> ApprovalInput:
    request = submission.request
    return ApprovalInput(
        request_id=request.id,
        subject_kind=request.subject_kind,
        subject_id=approvals.subject_id_of(request),
        entry_id=request.entry_id,
        requester_id=request.requester_id,
        title=request.title,
        amount=request.amount,
        policy_version=request.policy_version,
        limits=submission.limits,
        chain=[ChainLink.model_validate(link, from_attributes=True) for link in submission.chain],
        first_step=StepInfo.model_validate(submission.first_step, from_attributes=True)
        if submission.first_step
        else None,
        auto_approve_rule=submission.auto_rule,
        timers=timers,
        link=link_for(request),
        upsert_search_attributes=search_attributes,
    )


def search_attributes_for(request: ApprovalInput, status: str) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(ENTRY_KIND, request.subject_kind),  # type: ignore[list-item]
        SearchAttributePair(ENTRY_ID, str(request.subject_id)),  # type: ignore[list-item]
        SearchAttributePair(APPROVAL_STATUS, status),  # type: ignore[list-item]
    ]
    if request.first_step is not None:
        approver = request.first_step.delegate_id or request.first_step.approver_id
        pairs.append(SearchAttributePair(CURRENT_APPROVER, str(approver)))  # type: ignore[arg-type]
    if request.amount is not None:
        pairs.append(SearchAttributePair(AMOUNT_CENTS, int(request.amount * 100)))  # type: ignore[arg-type]
    return TypedSearchAttributes(pairs)


def audit_info(context: AuditContext) -> AuditInfo:
    return AuditInfo(
        actor_id=context.actor_id,
        request_id=context.request_id,
        client_ip=context.client_ip,
        user_agent=context.user_agent,
        policy_rule=context.policy_rule,
    )


def workflow_url(settings: Settings, workflow_id: str) -> str:
    base = settings.temporal.ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal.namespace}/workflows/{workflow_id}"


class ApprovalWorkflows:
    def __init__(self, services: AppServices) -> None:
        self.services = services
        self.settings = services.settings
        self.gateway = services.engine
        self.timeout = timedelta(seconds=self.settings.temporal.rpc_timeout_seconds)

    async def _start(self, client: Client, submission: Submission) -> None:
        """Start the request's workflow (its id is the business key, so a repeated start is harmless)."""
        request = workflow_input(submission, timers_from(self.settings))
        try:
            await asyncio.wait_for(
                client.start_workflow(
                    EntryApprovalWorkflow.run,
                    request,
                    id=submission.request.workflow_id,
                    task_queue=self.gateway.queues.approvals,
                    search_attributes=search_attributes_for(request, submission.request.status),
                    rpc_timeout=self.timeout,
                    # A closed run of this id (an undone start's, which ended by itself) never blocks a new one.
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    # After an undone start, a run of that start may still be going: the database says it is
                    # stale, so the new submission replaces it (atomically, in the server) instead of colliding.
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING
                    if submission.restarted
                    else WorkflowIDConflictPolicy.FAIL,
                ),
                timeout=self.timeout.total_seconds() + 1,
            )
        except WorkflowAlreadyStartedError:
            return  # this very submission's workflow (a first submission's id is new): the start is done
        except (RPCError, TimeoutError) as error:
            log.warning("could not start %s: %s", submission.request.workflow_id, error)
            raise ServiceUnavailable(UNREACHABLE) from error

    async def start_or_undo(self, session: AsyncSession, submission: Submission, context: AuditContext) -> None:
        """Commit, start; when the start fails, put the subject back as it was (and answer 503)."""
        await session.commit()
        client: Client | None = None
        try:
            client = await self.gateway.client()
            await self._start(client, submission)
        except (EngineUnavailable, ServiceUnavailable):
            if submission.auto_rule:
                log.warning("auto-approved %s without its workflow record", submission.request.workflow_id)
                return
            if client is not None:
                # The start may have reached the server even so: end what it started before the undo commits
                # (while the subject is still pending, no new submission can start a run this would end instead).
                await self._end_unconfirmed_start(client, submission.request.workflow_id)
            await approvals.undo_submission(
                session, submission.request.id, "the workflow engine is unreachable", context
            )
            await session.commit()
            raise

    async def _end_unconfirmed_start(self, client: Client, workflow_id: str) -> None:
        """Best effort: terminate the run an unconfirmed start may have created. If the engine cannot be told now,
        that run ends by itself as "undone" when its first activity finds the submission undone."""
        handle = client.get_workflow_handle(workflow_id)
        try:
            await asyncio.wait_for(
                handle.terminate(reason=UNCONFIRMED_START, rpc_timeout=timedelta(seconds=2)), timeout=3
            )
        except (RPCError, TimeoutError) as error:
            log.info("no run of %s ended after an unconfirmed start: %s", workflow_id, error)
        else:
            log.warning("terminated %s: %s", workflow_id, UNCONFIRMED_START)

    async def _update(self, workflow_id: str, name: str, argument: object, update_id: str) -> DecisionOutcome:
        try:
            client = await self.gateway.client()
        except EngineUnavailable as error:
            raise ServiceUnavailable(UNREACHABLE) from error
        handle = client.get_workflow_handle(workflow_id)
        try:
            result: DecisionOutcome = await asyncio.wait_for(
                handle.execute_update(
                    name, argument, id=update_id, result_type=DecisionOutcome, rpc_timeout=self.timeout
                ),
                timeout=self.timeout.total_seconds() + 1,
            )
            return result
        except WorkflowUpdateFailedError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type in _ERRORS:
                raise _ERRORS[cause.type](cause.message) from failure
            raise InvalidState(f"the approval refused the action: {cause}") from failure
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as error:
            raise ServiceUnavailable(UNANSWERED_UPDATE) from error
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise InvalidState("this approval has already ended") from error
            raise ServiceUnavailable(UNANSWERED_UPDATE) from error

    async def decide(self, request: RequestRow, decision: Decision, idempotency_key: str | None) -> DecisionOutcome:
        update_id = _update_id(decision.update.actor_id, "decide", idempotency_key)
        try:
            return await self._update(request.workflow_id, "decide", decision.update, update_id)
        except (InvalidState, Forbidden, NotFound):
            if decision.if_refused is None:
                raise
            raise decision.if_refused from None  # the workflow had it already: answer as the database does

    async def owner_action(
        self, request: RequestRow, name: str, action: OwnerAction, idempotency_key: str | None
    ) -> DecisionOutcome:
        return await self._update(request.workflow_id, name, action, _update_id(action.actor_id, name, idempotency_key))

    async def signal_delegation(self, workflow_id: str, change: DelegationChange) -> bool:
        try:
            client = await self.gateway.client()
            handle = client.get_workflow_handle(workflow_id)
            await asyncio.wait_for(
                handle.signal("delegation_changed", change, rpc_timeout=self.timeout),
                timeout=self.timeout.total_seconds() + 1,
            )
        except (EngineUnavailable, RPCError, TimeoutError) as error:
            log.warning("could not re-route %s: %s", workflow_id, error)
            return False
        return True

    async def live_status(self, workflow_id: str) -> LiveStatus | None:
        """The workflow's own view (deadlines included), or None when Temporal cannot answer: reads keep working."""
        try:
            client = await self.gateway.client()
            handle = client.get_workflow_handle(workflow_id)
            status: LiveStatus = await asyncio.wait_for(
                handle.query("status", result_type=LiveStatus, rpc_timeout=timedelta(seconds=2)), timeout=3
            )
            return status
        except Exception as error:  # a read must not fail because the engine is away
            log.info("no live status for %s: %s", workflow_id, error)
            return None


def _update_id(actor_id: int, name: str, idempotency_key: str | None) -> str:
    # Temporal deduplicates updates by id within a run: the client's key, scoped to the caller and the action.
    return f"{actor_id}:{name}:{idempotency_key}" if idempotency_key else f"{actor_id}:{name}:{uuid.uuid4()}"


@dataclass(frozen=True)
class Decision:
    """The update a decision sends. `if_refused` is set when it re-sends a decision the database recorded already:
    the answer to give if the workflow, which heard of it, refuses it."""

    update: DecisionRequest
    if_refused: DomainError | None = None


async def decision_for(
    session: AsyncSession,
    request: RequestRow,
    user: User,
    step: StepRow | None,
    action: str,
    comment: str | None,
    context: AuditContext,
) -> Decision:
    """Check what the database knows of the request and its pending `step` (403 own request, 409 nothing open,
    403 someone else's step) and build the update's argument; the workflow's validator checks again against its
    own, authoritative state."""
    if user.id == request.requester_id:
        raise Forbidden("nobody decides on their own request")
    if request.status != RequestStatus.PENDING or step is None:
        refusal = InvalidState(f"the request is {request.status}; no step waits for a decision", status=request.status)
        return _catch_up(
            await approvals.steps_of(session, request.id), request, user, action, comment, context, refusal
        )
    now = datetime.now(UTC)
    try:
        acting_for = await approvals.acting_for(session, step, user, request.requester_id, now)
    except Forbidden as forbidden:
        steps = await approvals.steps_of(session, request.id)
        if not _decided_earlier(steps, user):
            raise forbidden from None
        refusal = InvalidState("the step you could decide has already been decided")
        return _catch_up(steps, request, user, action, comment, context, refusal)
    return _decision(action, user, step.id, acting_for, comment, context)


def _decision(
    action: str,
    user: User,
    step_id: int,
    acting_for: int | None,
    comment: str | None,
    context: AuditContext,
    if_refused: DomainError | None = None,
) -> Decision:
    update = DecisionRequest(
        action=action,  # type: ignore[arg-type]
        actor_id=user.id,
        step_id=step_id,
        comment=comment,
        acting_for=acting_for,
        audit=audit_info(context),
    )
    return Decision(update, if_refused)


def _catch_up(
    steps: list[StepRow],
    request: RequestRow,
    user: User,
    action: str,
    comment: str | None,
    context: AuditContext,
    refusal: DomainError,
) -> Decision:
    """The caller's own last decision, when it is this same action, sent to the workflow again rather than refused.

    A worker that dies after a transition commits but before its workflow task completes leaves a workflow that
    never heard of the decision (the update dies with the task). The caller's retry is then the only thing that
    can tell it: the workflow accepts the step it still waits on, the transition answers the repeat with what it
    committed, and the workflow catches up. A workflow that did hear refuses the step, and the caller gets
    `refusal`, as before."""
    own = [step for step in steps if step.decided_by_id == user.id]
    if not own or own[-1].status != approvals.STEP_STATUS_FOR_ACTION.get(action) or own[-1].round != request.round:
        raise refusal
    step = own[-1]
    acting_for = step.approver_id if step.approver_id != user.id else None
    return _decision(action, user, step.id, acting_for, comment, context, if_refused=refusal)


def _decided_earlier(steps: list[StepRow], user: User) -> bool:
    return any(
        step.status != "pending" and user.id in (step.approver_id, step.delegate_id, step.decided_by_id)
        for step in steps
    )
