"""`/fx/rates`: the exchange rates the books convert with. Everyone reads them; accountants (and admins) set a
manual rate, which wins over the imported ECB rate of its day for submits from then on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import Authorize, Grant, ServicesDep, TxDep, read_only
from api.listing import listing_of
from domain.dates import BusinessDate
from domain.fx import service
from domain.fx.rates import terms_from
from domain.fx.schemas import CurrencyCode, ManualRateIn, ManualRateOut, RateFilters, RatePage, RateRow
from domain.pagination import Cursor

router = APIRouter(prefix="/fx/rates", tags=["fx"])

Read = Annotated[Grant, Depends(Authorize("fx_rate", "read"))]
Create = Annotated[Grant, Depends(Authorize("fx_rate", "create"))]


@router.get("", summary="Exchange rates (1 EUR = rate units of the currency), newest first")
@read_only
async def list_rates(
    tx: TxDep,
    services: ServicesDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(RateRow))],
    currency: CurrencyCode | None = None,
    source: Annotated[str | None, Query(pattern="^(ecb|manual)$")] = None,
    date_from: BusinessDate | None = None,
    date_to: BusinessDate | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> RatePage:
    """`in_effect` is false for an imported rate that a manual rate of the same day overrides; `to_base` is what one
    unit of the currency came to in the base currency that day."""
    filters = RateFilters(
        currency=currency, source=source, date_from=date_from, date_to=date_to, limit=limit, offset=offset
    )
    return await service.list_rates(tx.sql, terms_from(services.settings), filters, cursor)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Set a manual rate for a currency and day")
async def set_manual_rate(body: ManualRateIn, tx: TxDep, services: ServicesDep, grant: Create) -> ManualRateOut:
    """Replaces an earlier manual rate of the same currency and day; the answer says which imported rate it
    overrides. Entries already submitted keep the rate they locked."""
    terms = terms_from(services.settings)
    return await service.set_manual_rate(tx, terms, grant.user, body, datetime.now(UTC).date(), grant.audit)
