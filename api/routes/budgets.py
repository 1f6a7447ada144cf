"""`/budgets`: limits per period for a team or a category, with what is committed, spent and still available.

Accountants (and admins) create and revise budgets; everyone reads the budgets they may see (their own, their
team's, or all with `budget read_all`). A revision is a new version: `GET /budgets/{id}/versions` keeps the old ones.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.listing import listing_of
from domain.budgets import service
from domain.budgets.schemas import BudgetCreate, BudgetOut, BudgetPage, BudgetRevision, BudgetVersionOut
from domain.pagination import Cursor

router = APIRouter(prefix="/budgets", tags=["budgets"])

Read = Annotated[Grant, Depends(Authorize("budget", "read"))]
Create = Annotated[Grant, Depends(Authorize("budget", "create"))]
Update = Annotated[Grant, Depends(Authorize("budget", "update"))]
BudgetId = RowId
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the budget's version (its ETag)")]


def _tagged(response: Response, budget: BudgetOut) -> BudgetOut:
    response.headers["ETag"] = f'"{budget.version}"'
    return budget


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a budget")
async def create_budget(
    body: BudgetCreate, response: Response, tx: TxDep, services: ServicesDep, grant: Create
) -> BudgetOut:
    """Amounts are in the base currency, one per period from `starts_on`. The owner (by default the team's manager,
    else the creator) is alerted at each threshold and gives the extra approval of over-budget spend."""
    currency = services.settings.approvals.base_currency
    return _tagged(response, await service.create(tx, currency, grant.user, body, grant.audit))


@router.get("", summary="The budgets you may see, with each period's committed, actual and available")
@read_only
async def list_budgets(
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(BudgetOut))],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> BudgetPage:
    return await service.list_budgets(tx, services.authorizer, grant.user, limit, offset, cursor)


@router.get("/{budget_id}", summary="One budget as it stands now")
@read_only
async def get_budget(
    budget_id: BudgetId, response: Response, tx: TxDep, services: ServicesDep, grant: Read
) -> BudgetOut:
    return _tagged(response, await service.get(tx, services.authorizer, grant.user, budget_id))


@router.patch("/{budget_id}", summary="Revise a budget (a new version)")
async def revise_budget(
    budget_id: BudgetId,
    body: BudgetRevision,
    response: Response,
    tx: TxDep,
    services: ServicesDep,
    grant: Update,
    if_match: IfMatch = None,
) -> BudgetOut:
    """Send the version you read in If-Match (428 without it, 412 when it moved on). A period's amount cannot go
    below what is already committed and spent in it (409)."""
    revised = await service.revise(tx, services.authorizer, grant.user, budget_id, body, if_match, grant.audit)
    return _tagged(response, revised)


@router.get("/{budget_id}/versions", summary="Every version of a budget, oldest first")
@read_only
async def budget_versions(budget_id: BudgetId, tx: TxDep, services: ServicesDep, grant: Read) -> list[BudgetVersionOut]:
    return await service.versions(tx, services.authorizer, grant.user, budget_id)
