"""`/approvals`: the caller's inbox, generic approval requests, and decisions on any request by id.

Entries' approvals (`/expenses/{id}/approve`, ...) act on the same workflows; here they are addressed by request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, writes_only_its_idempotency_key
from api.idempotency import IdempotencyKey, replayed
from api.listing import listing_of
from domain.approvals import queries
from domain.approvals.commands import Caller, Verdict
from domain.approvals.schemas import ApprovalRequestOut, GenericRequestCreate, InboxItem, InboxPage
from domain.entries.schemas import ApproveBody, ChangesBody, RejectBody
from domain.errors import Forbidden
from domain.pagination import Cursor

router = APIRouter(prefix="/approvals", tags=["approvals"])

Read = Annotated[Grant, Depends(Authorize("approval", "read"))]
Create = Annotated[Grant, Depends(Authorize("approval", "create"))]
Decide = Annotated[Grant, Depends(Authorize("approval", "decide"))]


@router.get("/", summary="Steps waiting on me (as approver or delegate); ?scope=all for admins")
async def inbox(
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(InboxItem, identity=("request_id", "step_id")))],
    scope: Literal["mine", "all"] = "mine",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InboxPage:
    if scope == "all" and not services.authorizer.allows(grant.user.role, *queries.ReadAll):
        raise Forbidden("your role may not read every approval")
    user_id = None if scope == "all" else grant.user.id
    base = services.settings.approvals.base_currency
    return await queries.inbox(tx, base, user_id, datetime.now(UTC), limit, offset, cursor)


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    summary="Ask for approval of anything (same chain and rules as entries)",
    response_model=ApprovalRequestOut,
)
async def create_request(
    body: GenericRequestCreate, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    return replayed(await services.approvals.create_request(tx, Caller(grant.user, grant.audit, key), body))


@router.get("/{request_id:int}", summary="One approval request with its steps and live status")
async def get_request(request_id: RowId, tx: TxDep, services: ServicesDep, grant: Read) -> ApprovalRequestOut:
    request = await queries.visible_request(tx, services.authorizer, grant.user, request_id, datetime.now(UTC))
    return await services.approvals.request_view(tx, request.id, live=True)


@router.post("/{request_id:int}/approve", summary="Approve the step waiting on you", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def approve(
    request_id: RowId,
    tx: TxDep,
    services: ServicesDep,
    grant: Decide,
    body: Annotated[ApproveBody | None, Body()] = None,
    key: IdempotencyKey = None,
) -> Any:
    verdict = Verdict("approve", body.comment if body else None)
    return replayed(
        await services.approvals.decide_request(tx, Caller(grant.user, grant.audit, key), request_id, verdict)
    )


@router.post("/{request_id:int}/reject", summary="Reject (a reason is required)", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def reject(
    request_id: RowId, body: RejectBody, tx: TxDep, services: ServicesDep, grant: Decide, key: IdempotencyKey = None
) -> Any:
    verdict = Verdict("reject", body.reason)
    return replayed(
        await services.approvals.decide_request(tx, Caller(grant.user, grant.audit, key), request_id, verdict)
    )


@router.post(
    "/{request_id:int}/request-changes",
    summary="Return to the requester for changes",
    response_model=ApprovalRequestOut,
)
@writes_only_its_idempotency_key
async def request_changes(
    request_id: RowId, body: ChangesBody, tx: TxDep, services: ServicesDep, grant: Decide, key: IdempotencyKey = None
) -> Any:
    verdict = Verdict("request_changes", body.comment)
    return replayed(
        await services.approvals.decide_request(tx, Caller(grant.user, grant.audit, key), request_id, verdict)
    )


@router.post("/{request_id:int}/withdraw", summary="Withdraw one's own request", response_model=ApprovalRequestOut)
@writes_only_its_idempotency_key
async def withdraw(
    request_id: RowId, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    caller = Caller(grant.user, grant.audit, key)
    return replayed(await services.approvals.request_owner_action(tx, caller, request_id, "withdraw"))


@router.post(
    "/{request_id:int}/resubmit",
    summary="Resubmit one's request after changes were asked (a new round)",
    response_model=ApprovalRequestOut,
)
@writes_only_its_idempotency_key
async def resubmit(
    request_id: RowId, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    """Entries are resubmitted through `POST /expenses/{id}/submit` (or `/revenue/...`) after editing them."""
    caller = Caller(grant.user, grant.audit, key)
    return replayed(await services.approvals.request_owner_action(tx, caller, request_id, "resubmit"))
