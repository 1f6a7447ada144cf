"""The dashboard: a period overview, monthly KPIs and receivables, scoped to the viewer (own, subtree, or everyone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Authorize, Grant, ReadTxDep, ServicesDep, read_only
from api.etags import ConditionalGet
from domain.dashboard import service
from domain.dashboard.schemas import DashboardPeriod, Kpi, Overview, Receivables

router = APIRouter(prefix="/dashboard", tags=["dashboard"])
Reader = Annotated[Grant, Depends(Authorize("dashboard", "read"))]


@router.get(
    "/overview",
    response_model=Overview,
    summary="Revenue, expenses and net for this period and the one before, approvals waiting, recent entries, "
    "budgets' current periods, receivables",
)
@read_only
async def get_overview(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    period: Annotated[DashboardPeriod, Query(description="calendar month, quarter or year containing today (UTC)")] = (
        DashboardPeriod.MONTH
    ),
) -> Overview:
    return await service.overview(
        tx,
        services.authorizer,
        grant.user,
        period,
        services.settings.approvals.base_currency,
        datetime.now(UTC),
        services.settings.receivables.dso_days,
    )


@router.get(
    "/receivables",
    response_model=Receivables,
    summary="Open invoices aged, days sales outstanding, expected cash in by week, realized FX gains and losses",
    responses={403: {"description": "your role may not read invoices"}},
)
@read_only
async def get_receivables(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    period: Annotated[
        DashboardPeriod,
        Query(description="the calendar month, quarter or year (UTC) of the realized FX gains and losses"),
    ] = DashboardPeriod.MONTH,
) -> Receivables:
    """The invoices you may see (accountants and admins all, managers their team's), in the base currency at each
    invoice's locked rate, on today's date (UTC)."""
    return await service.receivables(
        tx,
        services.authorizer,
        grant.user,
        period,
        services.settings.approvals.base_currency,
        services.settings.receivables.dso_days,
        datetime.now(UTC),
    )


@router.get(
    "/kpi",
    response_model=Kpi,
    summary="Monthly series, top categories and spenders, approval cycle time, approval rate and escalations",
)
@read_only
async def get_kpi(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    months: Annotated[int, Query(ge=1, le=60, description="months back, the current one included")] = 12,
) -> Kpi:
    return await service.kpi(
        tx,
        services.authorizer,
        grant.user,
        months,
        services.settings.approvals.base_currency,
        datetime.now(UTC),
    )
