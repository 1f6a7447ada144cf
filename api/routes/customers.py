"""`/customers`: who invoices go to (accountants and admins keep them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from api.deps import Authorize, Grant, RowId, TxDep, read_only
from api.listing import listing_of
from domain.invoices import service
from domain.invoices.schemas import CustomerCreate, CustomerOut, CustomerPage, CustomerUpdate
from domain.pagination import Cursor

router = APIRouter(prefix="/customers", tags=["customers"])

Read = Annotated[Grant, Depends(Authorize("customer", "read"))]
Create = Annotated[Grant, Depends(Authorize("customer", "create"))]
Update = Annotated[Grant, Depends(Authorize("customer", "update"))]
CustomerId = RowId
IfMatch = Annotated[str | None, Header(alias="If-Match", description="the customer's version (its ETag)")]


def _tagged(response: Response, customer: CustomerOut) -> CustomerOut:
    response.headers["ETag"] = f'"{customer.version}"'
    return customer


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a customer")
async def create_customer(body: CustomerCreate, response: Response, tx: TxDep, grant: Create) -> CustomerOut:
    return _tagged(response, await service.create_customer(tx, grant.user, body, grant.audit))


@router.get("", summary="Customers, by name")
@read_only
async def list_customers(
    tx: TxDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(CustomerOut))],
    name: Annotated[str | None, Query(max_length=200, description="part of the name")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> CustomerPage:
    return await service.list_customers(tx, name, limit, offset, cursor)


@router.get("/{customer_id}", summary="One customer")
@read_only
async def get_customer(customer_id: CustomerId, response: Response, tx: TxDep, grant: Read) -> CustomerOut:
    return _tagged(response, await service.get_customer(tx, customer_id))


@router.patch("/{customer_id}", summary="Change a customer")
async def update_customer(
    customer_id: CustomerId,
    body: CustomerUpdate,
    response: Response,
    tx: TxDep,
    grant: Update,
    if_match: IfMatch = None,
) -> CustomerOut:
    """Send the version you read in If-Match (428 without it, 412 when it moved on). Invoices already sent keep
    the details they were sent with."""
    return _tagged(response, await service.update_customer(tx, customer_id, body, if_match, grant.audit))
