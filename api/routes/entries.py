"""Revenue (`/revenue`) and expense (`/expenses`) entries: one router factory, a kind-specific field each
(`source` for revenue, `vendor` for expenses), and the approval actions on the entry's workflow."""

# No `from __future__ import annotations`: the factory annotates bodies with the kind's model (a local).

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.approval_workflows import ApprovalWorkflows, audit_info, decision_for, workflow_url
from api.deps import AppServices, Authorize, Grant, ServicesDep, SessionDep, read_only, writes_only_its_idempotency_key
from api.idempotency import IdempotencyKey
from domain.approvals import service as approvals
from domain.entries import service
from domain.entries.schemas import (
    ApprovalHistory,
    ApproveBody,
    ChangesBody,
    EntryFilters,
    EntryOut,
    EntryPage,
    EntrySort,
    ExpenseCreate,
    ExpenseUpdate,
    RejectBody,
    RevenueCreate,
    RevenueUpdate,
    SortOrder,
)
from domain.errors import Forbidden, InvalidState
from domain.models import EntryKind, EntryStatus
from domain.models.rows import EntryRow
from workflows.contracts import OwnerAction, approval_workflow_id

Create = Annotated[Grant, Depends(Authorize("entry", "create"))]
Read = Annotated[Grant, Depends(Authorize("entry", "read"))]
Update = Annotated[Grant, Depends(Authorize("entry", "update"))]
Delete = Annotated[Grant, Depends(Authorize("entry", "delete"))]
Submit = Annotated[Grant, Depends(Authorize("entry", "submit"))]
Withdraw = Annotated[Grant, Depends(Authorize("entry", "withdraw"))]
Decide = Annotated[Grant, Depends(Authorize("approval", "decide"))]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the entry's version (its ETag)")]


def _out(entry: EntryRow, response: Response | None = None) -> EntryOut:
    if response is not None:
        response.headers["ETag"] = f'"{entry.version}"'
    return EntryOut.model_validate(entry)


async def _fresh(session: AsyncSession, entry: EntryRow) -> EntryRow:
    """Re-read an entry an activity changed (the activity committed before the workflow answered). Called after the
    request's commit: one read needs no transaction, so it runs in autocommit (no BEGIN and COMMIT round trips)."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return await service.reread(session, entry)


def build_router(kind: EntryKind) -> APIRouter:
    """The entries API for one kind; both kinds share every rule."""
    path = "revenue" if kind == EntryKind.REVENUE else "expenses"
    CreateModel: Any = RevenueCreate if kind == EntryKind.REVENUE else ExpenseCreate
    UpdateModel: Any = RevenueUpdate if kind == EntryKind.REVENUE else ExpenseUpdate
    noun = "revenue entry" if kind == EntryKind.REVENUE else "expense"
    router = APIRouter(prefix=f"/{path}", tags=[path])

    async def load(session: AsyncSession, services: AppServices, grant: Grant, entry_id: int, lock: bool = False):
        return await service.get_visible(session, services.authorizer, grant.user, kind, entry_id, lock=lock)

    @router.post("/", status_code=status.HTTP_201_CREATED, summary=f"Create a draft {noun}", response_model=EntryOut)
    async def create(
        body: CreateModel,  # type: ignore[valid-type]
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Create,
        key: IdempotencyKey = None,
    ) -> Any:
        """`amount` is a decimal string (or number) with at most two places, in the base currency."""
        claim = await idempotency.begin(session, grant.user.id, key, f"POST /{path}", body.model_dump(mode="json"))
        if claim.replay:
            return claim.replay
        entry = await service.create_entry(session, services.settings.approvals, grant.user, kind, body, grant.audit)
        out = _out(entry, response)
        await claim.remember(201, out)
        return out

    @router.get("/", summary=f"List {path} within one's visibility")
    @read_only
    async def list_entries(
        session: SessionDep,
        services: ServicesDep,
        grant: Read,
        status_: Annotated[EntryStatus | None, Query(alias="status")] = None,
        category: Annotated[str | None, Query(max_length=100)] = None,
        owner_id: int | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        amount_min: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
        amount_max: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
        sort: EntrySort = EntrySort.DATE,
        order: SortOrder = SortOrder.DESC,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> EntryPage:
        """Employees see their own, managers their team's, accountants and admins everyone's."""
        filters = EntryFilters(
            status=status_,
            category=category,
            owner_id=owner_id,
            date_from=date_from,
            date_to=date_to,
            amount_min=amount_min,
            amount_max=amount_max,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
        )
        return await service.list_entries(session, services.authorizer, grant.user, kind, filters)

    @router.get("/{entry_id:int}", summary=f"One {noun} (404 outside one's visibility)")
    @read_only
    async def get(
        entry_id: int, response: Response, session: SessionDep, services: ServicesDep, grant: Read
    ) -> EntryOut:
        return _out(await load(session, services, grant, entry_id), response)

    @router.patch("/{entry_id:int}", summary=f"Edit a draft {noun} (or one returned for changes) with If-Match")
    async def update(
        entry_id: int,
        body: UpdateModel,  # type: ignore[valid-type]
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Update,
        if_match: IfMatch = None,
    ) -> EntryOut:
        """Send the version you read in If-Match: a stale one is 412, a missing one 428."""
        entry = await load(session, services, grant, entry_id, lock=True)
        entry = await service.update_entry(
            session, services.settings.approvals, entry, grant.user, body, if_match, grant.audit
        )
        return _out(entry, response)

    @router.delete("/{entry_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary=f"Delete a draft {noun}")
    async def delete(entry_id: int, session: SessionDep, services: ServicesDep, grant: Delete) -> None:
        entry = await load(session, services, grant, entry_id, lock=True)
        await service.delete_entry(session, entry, grant.user, grant.audit)

    @router.post(
        "/{entry_id:int}/submit", summary="Submit for approval (or resubmit after changes)", response_model=EntryOut
    )
    async def submit(
        entry_id: int,
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Submit,
        key: IdempotencyKey = None,
    ) -> Any:
        """Pins the approval chain and the policy version, then starts the entry's approval workflow. An entry
        returned for changes continues the same workflow in a new round. 503 when the workflow engine is away
        (the entry then stays as it was)."""
        claim = await idempotency.begin(session, grant.user.id, key, f"POST /{path}/{entry_id}/submit")
        if claim.replay:
            return claim.replay
        entry = await load(session, services, grant, entry_id, lock=True)
        workflows = ApprovalWorkflows(services)
        if entry.status == EntryStatus.CHANGES_REQUESTED and entry.approval_request_id is not None:
            if entry.owner_id != grant.user.id:
                raise Forbidden("only the entry's owner may submit it")
            request = await approvals.get_request(session, entry.approval_request_id)
            await session.commit()
            action = OwnerAction(actor_id=grant.user.id, audit=audit_info(grant.audit))
            await workflows.owner_action(request, "resubmit", action, key)
            entry = await _fresh(session, entry)  # the workflow's activity opened the new round
        else:
            submission = await service.submit_entry(
                session,
                services.authorizer,
                services.settings.approvals,
                entry,
                grant.user,
                approval_workflow_id,
                datetime.now(UTC),
                grant.audit,
            )
            await workflows.start_or_undo(session, submission, grant.audit)
            assert submission.entry is not None
            entry = submission.entry  # as this request committed it
        out = _out(entry, response)
        await claim.remember(200, out)
        return out

    async def decide(
        entry_id: int,
        action: str,
        comment: str | None,
        response: Response,
        session: AsyncSession,
        services: AppServices,
        grant: Grant,
        key: str | None,
        body: dict[str, Any],
    ) -> Any:
        claim = await idempotency.begin(session, grant.user.id, key, f"POST /{path}/{entry_id}/{action}", body)
        if claim.replay:
            return claim.replay
        entry, request, step = await service.get_for_decision(session, services.authorizer, grant.user, kind, entry_id)
        if request is None:
            raise InvalidState(f"this {noun} was never submitted")
        decision = await decision_for(session, request, grant.user, step, action, comment, grant.audit)
        await session.commit()  # the claim is stored; nothing is held open while the workflow decides
        await ApprovalWorkflows(services).decide(request, decision, key)
        out = _out(await _fresh(session, entry), response)
        await claim.remember(200, out)
        return out

    @router.post("/{entry_id:int}/approve", summary="Approve the step waiting on you", response_model=EntryOut)
    @writes_only_its_idempotency_key
    async def approve(
        entry_id: int,
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Decide,
        body: Annotated[ApproveBody | None, Body()] = None,
        key: IdempotencyKey = None,
    ) -> Any:
        """Only the current step's approver (or their active delegate) decides, never on their own entry (403);
        a step no longer open is 409. The answer shows the committed state."""
        comment = body.comment if body else None
        return await decide(entry_id, "approve", comment, response, session, services, grant, key, {"comment": comment})

    @router.post("/{entry_id:int}/reject", summary="Reject (a reason is required)", response_model=EntryOut)
    @writes_only_its_idempotency_key
    async def reject(
        entry_id: int,
        body: RejectBody,
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Decide,
        key: IdempotencyKey = None,
    ) -> Any:
        return await decide(entry_id, "reject", body.reason, response, session, services, grant, key, body.model_dump())

    @router.post(
        "/{entry_id:int}/request-changes", summary="Return the entry to its owner for changes", response_model=EntryOut
    )
    @writes_only_its_idempotency_key
    async def request_changes(
        entry_id: int,
        body: ChangesBody,
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Decide,
        key: IdempotencyKey = None,
    ) -> Any:
        return await decide(
            entry_id, "request_changes", body.comment, response, session, services, grant, key, body.model_dump()
        )

    @router.post("/{entry_id:int}/withdraw", summary="Withdraw a pending entry (owner)", response_model=EntryOut)
    @writes_only_its_idempotency_key
    async def withdraw(
        entry_id: int,
        response: Response,
        session: SessionDep,
        services: ServicesDep,
        grant: Withdraw,
        key: IdempotencyKey = None,
    ) -> Any:
        """Ends the approval cleanly: its workflow completes and the entry reads `withdrawn`."""
        claim = await idempotency.begin(session, grant.user.id, key, f"POST /{path}/{entry_id}/withdraw")
        if claim.replay:
            return claim.replay
        entry = await load(session, services, grant, entry_id)
        if entry.owner_id != grant.user.id:
            raise Forbidden("only the entry's owner may withdraw it")
        if entry.approval_request_id is None or entry.status not in (
            EntryStatus.PENDING,
            EntryStatus.CHANGES_REQUESTED,
        ):
            raise InvalidState(f"only a pending entry can be withdrawn; this one is {entry.status}")
        request = await approvals.get_request(session, entry.approval_request_id)
        await session.commit()
        action = OwnerAction(actor_id=grant.user.id, audit=audit_info(grant.audit))
        await ApprovalWorkflows(services).owner_action(request, "withdraw", action, key)
        out = _out(await _fresh(session, entry), response)
        await claim.remember(200, out)
        return out

    @router.get("/{entry_id:int}/history", summary="Every step and decision, and the workflow in the Temporal UI")
    async def history(entry_id: int, session: SessionDep, services: ServicesDep, grant: Read) -> ApprovalHistory:
        entry = await load(session, services, grant, entry_id)
        url = workflow_url(services.settings, entry.workflow_id) if entry.workflow_id else None
        return await service.approval_history(session, entry.approval_request_id, "entry", entry.id, url)

    return router


revenue_router = build_router(EntryKind.REVENUE)
expenses_router = build_router(EntryKind.EXPENSE)
