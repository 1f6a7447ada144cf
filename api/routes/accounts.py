"""`/accounts`: the chart of accounts, and `/accounts/mappings`: which account each category, revenue source and role
books to. Accountants and up keep both; every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import Authorize, Grant, RowId, TxDep, read_only
from api.listing import listing_of
from domain.ledger import accounts, mappings
from domain.ledger.schemas import (
    AccountCreate,
    AccountOut,
    AccountPage,
    AccountType,
    AccountUpdate,
    MappingsIn,
    MappingsOut,
)
from domain.pagination import Cursor

router = APIRouter(prefix="/accounts", tags=["ledger"])

Read = Annotated[Grant, Depends(Authorize("account", "read"))]
Create = Annotated[Grant, Depends(Authorize("account", "create"))]
Update = Annotated[Grant, Depends(Authorize("account", "update"))]
AccountId = RowId


# The mapping's routes before /{account_id}: "mappings" is no account id.
@router.get("/mappings", summary="Which account each category, revenue source and role books to")
@read_only
async def get_mappings(tx: TxDep, grant: Read) -> MappingsOut:
    return await mappings.read(tx)


@router.put("/mappings", summary="Replace the whole mapping")
async def put_mappings(body: MappingsIn, tx: TxDep, grant: Update) -> MappingsOut:
    """Every account exists, is active and fits its role (422 naming the first that does not): payable a liability,
    receivable and cash assets, tax a liability, fx_gain revenue, fx_loss an expense, rounding either; a `source` a
    revenue account, a `category` an expense account (or a revenue account, for a revenue category). The key `*` of
    `category` is the expense account of every category not mapped, that of `source` the revenue account of every
    revenue not mapped otherwise."""
    return await mappings.replace(tx, body.mappings, grant.audit)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add an account")
async def create_account(body: AccountCreate, tx: TxDep, grant: Create) -> AccountOut:
    """409 when the code is taken."""
    return await accounts.create(tx, body, grant.audit)


@router.get("", summary="The chart of accounts, by code")
@read_only
async def list_accounts(
    tx: TxDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(AccountOut))],
    type: AccountType | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> AccountPage:
    return await accounts.page(tx, type, active, limit, offset, cursor)


@router.get("/{account_id:int}", summary="One account")
@read_only
async def get_account(account_id: AccountId, tx: TxDep, grant: Read) -> AccountOut:
    return await accounts.get(tx, account_id)


@router.patch("/{account_id:int}", summary="Change an account")
async def update_account(account_id: AccountId, body: AccountUpdate, tx: TxDep, grant: Update) -> AccountOut:
    """Journals already frozen keep the code and name they were written with. 409 when the new code is taken, or
    when a mapped account would no longer fit its role or would be deactivated (change the mapping first)."""
    return await accounts.update(tx, account_id, body, grant.audit)
