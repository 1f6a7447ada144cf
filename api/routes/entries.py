"""Revenue (`/revenue`) and expense (`/expenses`) entries, and the approval actions on an entry's workflow.

Both kinds share every rule, so one handler serves both collections: it is mounted on each router below, and the
collection the request came in on says which kind it acts on. Only creating and editing differ (revenue names its
`source`, an expense its `vendor`), so those have a handler per kind.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api.deps import (
    AppServices,
    Authorize,
    Grant,
    RowId,
    ServicesDep,
    TxDep,
    read_only,
    writes_only_its_idempotency_key,
)
from api.etags import ConditionalGet
from api.idempotency import IdempotencyKey, replayed
from api.listing import UPDATED_SINCE, listing_of
from core.db import Tx
from domain.approvals.commands import Caller, Verdict
from domain.approvals.lifecycle import workflow_url
from domain.approvals.queries import history
from domain.attachments import service as attachments
from domain.dates import AwareInstant, BusinessDate
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
from domain.entries.schemas import EntryUpdate as EntryUpdateBody
from domain.fx.rates import terms_from
from domain.models import EntryKind, EntryStatus
from domain.models.rows import EntryRow
from domain.pagination import Cursor

Create = Annotated[Grant, Depends(Authorize("entry", "create"))]
Read = Annotated[Grant, Depends(Authorize("entry", "read"))]
Update = Annotated[Grant, Depends(Authorize("entry", "update"))]
Delete = Annotated[Grant, Depends(Authorize("entry", "delete"))]
Submit = Annotated[Grant, Depends(Authorize("entry", "submit"))]
Withdraw = Annotated[Grant, Depends(Authorize("entry", "withdraw"))]
Decide = Annotated[Grant, Depends(Authorize("approval", "decide"))]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the entry's version (its ETag)")]

revenue_router = APIRouter(prefix="/revenue", tags=["revenue"])
expenses_router = APIRouter(prefix="/expenses", tags=["expenses"])
_KIND_OF_TAG = {"revenue": EntryKind.REVENUE, "expenses": EntryKind.EXPENSE}


def _kind(request: Request) -> EntryKind:
    """The kind of the collection the request came in on (its router's tag)."""
    return _KIND_OF_TAG[request.scope["route"].tags[0]]


Kind = Annotated[EntryKind, Depends(_kind)]
# An amount to filter by: plain ASCII digits, two places at most, eighteen digits in all (what an entry's amount holds).
AMOUNT_FILTER = r"^[0-9]{1,16}(\.[0-9]{1,2})?$"


def _out(entry: EntryRow | EntryOut, response: Response) -> EntryOut:
    out = entry if isinstance(entry, EntryOut) else EntryOut.model_validate(entry)
    response.headers["ETag"] = f'"{out.version}"'
    return out


def _answer(answer: EntryOut | Any, response: Response) -> EntryOut | JSONResponse:
    """A command's answer with its ETag, or a repeated request's first answer."""
    sent = replayed(answer)
    return _out(sent, response) if isinstance(sent, EntryOut) else sent


# --- drafts --------------------------------------------------------------------------------------------------


async def create_revenue(
    body: RevenueCreate, response: Response, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    """`amount` is a decimal string (or number) in `currency` (ISO 4217; the base currency when left out), with no
    more decimal places than the currency has (JPY none, USD two, BHD three)."""
    return _answer(
        await service.create(tx, terms_from(services.settings), grant.user, EntryKind.REVENUE, body, key, grant.audit),
        response,
    )


async def create_expense(
    body: ExpenseCreate, response: Response, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    """`amount` is a decimal string (or number) in `currency` (ISO 4217; the base currency when left out), with no
    more decimal places than the currency has (JPY none, USD two, BHD three)."""
    return _answer(
        await service.create(tx, terms_from(services.settings), grant.user, EntryKind.EXPENSE, body, key, grant.audit),
        response,
    )


@read_only
async def list_entries(
    kind: Kind,
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(EntryOut))],
    status_: Annotated[EntryStatus | None, Query(alias="status")] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    owner_id: int | None = None,
    date_from: BusinessDate | None = None,
    date_to: BusinessDate | None = None,
    amount_min: Annotated[str | None, Query(pattern=AMOUNT_FILTER, description="at least this much")] = None,
    amount_max: Annotated[str | None, Query(pattern=AMOUNT_FILTER, description="at most this much")] = None,
    sort: EntrySort = EntrySort.DATE,
    order: SortOrder = SortOrder.DESC,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    updated_since: Annotated[AwareInstant | None, Query(description=UPDATED_SINCE)] = None,
) -> EntryPage:
    """Employees see their own, managers their team's, accountants and admins everyone's."""
    filters = EntryFilters(
        status=status_,
        category=category,
        owner_id=owner_id,
        date_from=date_from,
        date_to=date_to,
        amount_min=None if amount_min is None else Decimal(amount_min),
        amount_max=None if amount_max is None else Decimal(amount_max),
        sort=sort,
        order=order,
        limit=limit,
        offset=offset,
        updated_since=updated_since,
    )
    terms = terms_from(services.settings)
    return await service.list_entries(tx, services.authorizer, terms, grant.user, kind, filters, cursor)


@read_only
async def get(
    entry_id: RowId,
    kind: Kind,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    _etag: ConditionalGet,
) -> EntryOut:
    entry = await service.visible_entry(tx, services.authorizer, grant.user, kind, entry_id)
    return _out(await service.present_one(tx.sql, terms_from(services.settings), entry), response)


async def _update(
    entry_id: RowId,
    kind: EntryKind,
    body: EntryUpdateBody,
    tx: TxDep,
    services: ServicesDep,
    grant: Grant,
    if_match: str | None,
) -> EntryOut:
    terms = terms_from(services.settings)
    entry = await service.update_entry(
        tx, services.authorizer, terms, grant.user, kind, entry_id, body, if_match, grant.audit
    )
    return (await service.present(tx.sql, terms, [entry]))[0]


async def update_revenue(
    entry_id: RowId,
    body: RevenueUpdate,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Update,
    if_match: IfMatch = None,
) -> EntryOut:
    """Send the version you read in If-Match: a stale one is 412, a missing one 428."""
    return _out(await _update(entry_id, EntryKind.REVENUE, body, tx, services, grant, if_match), response)


async def update_expense(
    entry_id: RowId,
    body: ExpenseUpdate,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Update,
    if_match: IfMatch = None,
) -> EntryOut:
    """Send the version you read in If-Match: a stale one is 412, a missing one 428."""
    return _out(await _update(entry_id, EntryKind.EXPENSE, body, tx, services, grant, if_match), response)


async def delete(entry_id: RowId, kind: Kind, tx: TxDep, services: ServicesDep, grant: Delete) -> None:
    receipts = await service.delete_entry(tx, services.authorizer, grant.user, kind, entry_id, grant.audit)
    if receipts:  # their rows went with the entry; the files go once that has committed
        await tx.commit()
        await attachments.discard_files(services.storage, receipts)


# --- approval ------------------------------------------------------------------------------------------------


async def submit(
    entry_id: RowId,
    kind: Kind,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Submit,
    key: IdempotencyKey = None,
) -> Any:
    """Pins the approval chain and the policy version, then starts the entry's approval workflow. An entry
    returned for changes continues the same workflow in a new round. 503 when the workflow engine is away
    (the entry then stays as it was)."""
    answer = await services.approvals.submit_entry(tx, Caller(grant.user, grant.audit, key), kind, entry_id)
    return _answer(answer, response)


async def _decide(
    tx: Tx,
    services: AppServices,
    grant: Grant,
    key: str | None,
    kind: EntryKind,
    entry_id: RowId,
    verdict: Verdict,
    response: Response,
) -> Any:
    answer = await services.approvals.decide_entry(tx, Caller(grant.user, grant.audit, key), kind, entry_id, verdict)
    return _answer(answer, response)


@writes_only_its_idempotency_key
async def approve(
    entry_id: RowId,
    kind: Kind,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Decide,
    body: Annotated[ApproveBody | None, Body()] = None,
    key: IdempotencyKey = None,
) -> Any:
    """Only the current step's approver (or their active delegate) decides, never on their own entry (403);
    a step no longer open is 409. The answer shows the committed state."""
    verdict = Verdict("approve", body.comment if body else None)
    return await _decide(tx, services, grant, key, kind, entry_id, verdict, response)


@writes_only_its_idempotency_key
async def reject(
    entry_id: RowId,
    kind: Kind,
    body: RejectBody,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Decide,
    key: IdempotencyKey = None,
) -> Any:
    return await _decide(tx, services, grant, key, kind, entry_id, Verdict("reject", body.reason), response)


@writes_only_its_idempotency_key
async def request_changes(
    entry_id: RowId,
    kind: Kind,
    body: ChangesBody,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Decide,
    key: IdempotencyKey = None,
) -> Any:
    verdict = Verdict("request_changes", body.comment)
    return await _decide(tx, services, grant, key, kind, entry_id, verdict, response)


@writes_only_its_idempotency_key
async def withdraw(
    entry_id: RowId,
    kind: Kind,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Withdraw,
    key: IdempotencyKey = None,
) -> Any:
    """Ends the approval cleanly: its workflow completes and the entry reads `withdrawn`."""
    answer = await services.approvals.withdraw_entry(tx, Caller(grant.user, grant.audit, key), kind, entry_id)
    return _answer(answer, response)


async def history_of(entry_id: RowId, kind: Kind, tx: TxDep, services: ServicesDep, grant: Read) -> ApprovalHistory:
    entry = await service.visible_entry(tx, services.authorizer, grant.user, kind, entry_id)
    url = workflow_url(services.settings, entry.workflow_id) if entry.workflow_id else None
    return await history(tx, entry.approval_request_id, "entry", entry.id, url)


# --- the two collections -------------------------------------------------------------------------------------


def _mount(router: APIRouter, kind: EntryKind) -> None:
    """Every handler on one collection (operation ids stay `create_api_v1_expenses__post` and so on)."""
    noun = service.noun(kind)
    revenue = kind == EntryKind.REVENUE
    add = router.add_api_route
    add(
        "/",
        create_revenue if revenue else create_expense,
        methods=["POST"],
        name="create",
        status_code=status.HTTP_201_CREATED,
        summary=f"Create a draft {noun}",
        response_model=EntryOut,
    )
    add("/", list_entries, methods=["GET"], summary=f"List {router.prefix.strip('/')} within one's visibility")
    add("/{entry_id:int}", get, methods=["GET"], summary=f"One {noun} (404 outside one's visibility)")
    add(
        "/{entry_id:int}",
        update_revenue if revenue else update_expense,
        methods=["PATCH"],
        name="update",
        summary=f"Edit a draft {noun} (or one returned for changes) with If-Match",
    )
    add(
        "/{entry_id:int}",
        delete,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Delete a draft {noun}",
    )
    add(
        "/{entry_id:int}/submit",
        submit,
        methods=["POST"],
        response_model=EntryOut,
        summary="Submit for approval (or resubmit after changes)",
    )
    add(
        "/{entry_id:int}/approve",
        approve,
        methods=["POST"],
        response_model=EntryOut,
        summary="Approve the step waiting on you",
    )
    add(
        "/{entry_id:int}/reject",
        reject,
        methods=["POST"],
        response_model=EntryOut,
        summary="Reject (a reason is required)",
    )
    add(
        "/{entry_id:int}/request-changes",
        request_changes,
        methods=["POST"],
        response_model=EntryOut,
        summary="Return the entry to its owner for changes",
    )
    add(
        "/{entry_id:int}/withdraw",
        withdraw,
        methods=["POST"],
        response_model=EntryOut,
        summary="Withdraw a pending entry (owner)",
    )
    add("/{entry_id:int}/history", history_of, methods=["GET"], name="history",
        summary="Every step and decision, and the workflow in the Temporal UI")  # fmt: skip


_mount(revenue_router, EntryKind.REVENUE)
_mount(expenses_router, EntryKind.EXPENSE)
