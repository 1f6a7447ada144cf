"""`/approvals`: the caller's inbox, generic approval requests, and decisions on any request by id.

Entries' approvals (`/expenses/{id}/approve`, ...) act on the same workflows; here they are addressed by request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.approval_workflows import ApprovalWorkflows, audit_info, decision_for, workflow_url
from api.deps import AppServices, Authorize, Grant, ServicesDep, SessionDep, writes_only_its_idempotency_key
from api.idempotency import IdempotencyKey
from domain.approvals import service as approvals
from domain.approvals.notices import link_for
from domain.approvals.schemas import ApprovalRequestOut, GenericRequestCreate, InboxItem, InboxPage, LiveView
from domain.entries.schemas import ApproveBody, ChangesBody, RejectBody
from domain.entries.service import approval_history
from domain.errors import Forbidden
from domain.models.rows import RequestRow
from workflows.contracts import OwnerAction, approval_workflow_id

router = APIRouter(prefix="/approvals", tags=["approvals"])

Read = Annotated[Grant, Depends(Authorize("approval", "read"))]
Create = Annotated[Grant, Depends(Authorize("approval", "create"))]
Decide = Annotated[Grant, Depends(Authorize("approval", "decide"))]


async def _out(
    session: AsyncSession, services: AppServices, request: RequestRow, *, live: bool = False
) -> ApprovalRequestOut:
    request = await approvals.get_request(session, request.id)  # as committed now (the workflow may have moved it)
    url = workflow_url(services.settings, request.workflow_id)
    resource = ("entry", request.entry_id) if request.entry_id is not None else ("approval_request", request.id)
    trail = await approval_history(session, request.id, resource[0], resource[1], url)
    live_view = None
    if live and request.status not in approvals.FINAL_STATUSES:
        status_now = await ApprovalWorkflows(services).live_status(request.workflow_id)
        if status_now is not None:
            live_view = LiveView(
                status=status_now.status,
                round=status_now.round,
                current_approver_id=status_now.current_approver_id,
                step=status_now.step.sequence if status_now.step else None,
                remind_at=status_now.remind_at,
                escalate_at=status_now.escalate_at,
                expires_at=status_now.expires_at,
            )
    return ApprovalRequestOut(
        id=request.id,
        subject_kind=request.subject_kind,
        entry_id=request.entry_id,
        title=request.title,
        justification=request.justification,
        amount=request.amount,
        requester_id=request.requester_id,
        status=request.status,
        round=request.round,
        workflow_id=request.workflow_id,
        workflow_url=url,
        policy_version=request.policy_version,
        chain=list(request.chain),
        submitted_at=request.submitted_at,
        decided_at=request.decided_at,
        steps=trail.steps,
        live=live_view,
    )


@router.get("/", summary="Steps waiting on me (as approver or delegate); ?scope=all for admins")
async def inbox(
    session: SessionDep,
    services: ServicesDep,
    grant: Read,
    scope: Literal["mine", "all"] = "mine",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InboxPage:
    if scope == "all" and not services.authorizer.allows(grant.user.role, "approval", "read_all"):
        raise Forbidden("your role may not read every approval")
    user_id = None if scope == "all" else grant.user.id
    rows, total = await approvals.inbox(session, user_id, datetime.now(UTC), limit, offset)
    items = [
        InboxItem(
            request_id=request.id,
            step_id=step.id,
            step=step.sequence,
            round=step.round,
            subject_kind=request.subject_kind,
            entry_id=request.entry_id,
            title=request.title,
            amount=request.amount,
            requester_id=request.requester_id,
            approver_id=step.approver_id,
            delegate_id=step.delegate_id,
            waiting_since=step.created_at,
            remind_at=step.remind_at,
            escalate_at=step.escalate_at,
            link=link_for(request),
            workflow_id=request.workflow_id,
        )
        for step, request in rows
    ]
    return InboxPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Ask for approval of anything (same chain and rules as entries)",
    response_model=ApprovalRequestOut,
)
async def create_request(
    body: GenericRequestCreate,
    session: SessionDep,
    services: ServicesDep,
    grant: Create,
    key: IdempotencyKey = None,
) -> Any:
    claim = await idempotency.begin(session, grant.user.id, key, "POST /approvals", body.model_dump(mode="json"))
    if claim.replay:
        return claim.replay
    submission = await approvals.create_generic_request(
        session,
        services.authorizer,
        services.settings.approvals,
        grant.user,
        body.title,
        body.amount,
        body.justification,
        approval_workflow_id,
        datetime.now(UTC),
        grant.audit,
    )
    await ApprovalWorkflows(services).start_or_undo(session, submission, grant.audit)
    out = await _out(session, services, submission.request)
    await claim.remember(201, out)
    return out


@router.get("/{request_id:int}", summary="One approval request with its steps and live status")
async def get_request(request_id: int, session: SessionDep, services: ServicesDep, grant: Read) -> ApprovalRequestOut:
    request = await approvals.visible_request(session, services.authorizer, grant.user, request_id, datetime.now(UTC))
    return await _out(session, services, request, live=True)


async def _decide(
    request_id: int,
    action: str,
    comment: str | None,
    session: AsyncSession,
    services: AppServices,
    grant: Grant,
    key: str | None,
    body: dict[str, Any],
) -> Any:
    claim = await idempotency.begin(session, grant.user.id, key, f"POST /approvals/{request_id}/{action}", body)
    if claim.replay:
        return claim.replay
    request = await approvals.visible_request(session, services.authorizer, grant.user, request_id, datetime.now(UTC))
    step = await approvals.pending_step(session, request.id)
    decision = await decision_for(session, request, grant.user, step, action, comment, grant.audit)
    await session.commit()
    await ApprovalWorkflows(services).decide(request, decision, key)
    out = await _out(session, services, request)
    await claim.remember(200, out)
    return out


@router.post("/{request_id:int}/approve", summary="Approve the step waiting on you", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def approve(
    request_id: int,
    session: SessionDep,
    services: ServicesDep,
    grant: Decide,
    body: Annotated[ApproveBody | None, Body()] = None,
    key: IdempotencyKey = None,
) -> Any:
    comment = body.comment if body else None
    return await _decide(request_id, "approve", comment, session, services, grant, key, {"comment": comment})


@router.post("/{request_id:int}/reject", summary="Reject (a reason is required)", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def reject(
    request_id: int,
    body: RejectBody,
    session: SessionDep,
    services: ServicesDep,
    grant: Decide,
    key: IdempotencyKey = None,
) -> Any:
    return await _decide(request_id, "reject", body.reason, session, services, grant, key, body.model_dump())


@router.post(
    "/{request_id:int}/request-changes",
    summary="Return to the requester for changes",
    response_model=ApprovalRequestOut,
)
@writes_only_its_idempotency_key
async def request_changes(
    request_id: int,
    body: ChangesBody,
    session: SessionDep,
    services: ServicesDep,
    grant: Decide,
    key: IdempotencyKey = None,
) -> Any:
    return await _decide(request_id, "request_changes", body.comment, session, services, grant, key, body.model_dump())


async def _owner_action(
    request_id: int, name: str, session: AsyncSession, services: AppServices, grant: Grant, key: str | None
) -> Any:
    claim = await idempotency.begin(session, grant.user.id, key, f"POST /approvals/{request_id}/{name}")
    if claim.replay:
        return claim.replay
    request = await approvals.visible_request(session, services.authorizer, grant.user, request_id, datetime.now(UTC))
    if request.requester_id != grant.user.id:
        raise Forbidden(f"only the requester may {name} this request")
    await session.commit()
    action = OwnerAction(actor_id=grant.user.id, audit=audit_info(grant.audit))
    await ApprovalWorkflows(services).owner_action(request, name, action, key)
    out = await _out(session, services, request)
    await claim.remember(200, out)
    return out


@router.post("/{request_id:int}/withdraw", summary="Withdraw one's own request", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def withdraw(
    request_id: int, session: SessionDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    return await _owner_action(request_id, "withdraw", session, services, grant, key)


@router.post(
    "/{request_id:int}/resubmit",
    summary="Resubmit one's request after changes were asked (a new round)",
    response_model=ApprovalRequestOut,
)
@writes_only_its_idempotency_key
async def resubmit(
    request_id: int, session: SessionDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    """Entries are resubmitted through `POST /expenses/{id}/submit` (or `/revenue/...`) after editing them."""
    return await _owner_action(request_id, "resubmit", session, services, grant, key)
