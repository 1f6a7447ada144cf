"""Analytics: trends, approval performance, budget burn, receivables and a cash forecast, each scoped as the dashboard
is (employees their own, managers their subtree, accountants and admins everyone) and authorized as it is."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Authorize, Grant, ReadTxDep, ServicesDep, read_only
from api.etags import ConditionalGet
from domain.analytics import service
from domain.analytics.schemas import (
    MAX_BUDGETS,
    MAX_FORECAST_WEEKS,
    MAX_MONTHS,
    MAX_TOP,
    MAX_TRAILING_WEEKS,
    ApprovalPerformance,
    BudgetBurn,
    CashForecastAnalytics,
    ReceivablesAnalytics,
    TrendDimension,
    TrendKind,
    Trends,
)
from domain.errors import ValidationFailed
from domain.money import MoneyError, parse_amount

router = APIRouter(prefix="/analytics", tags=["analytics"])
Reader = Annotated[Grant, Depends(Authorize("dashboard", "read"))]

Months = Annotated[int, Query(ge=1, le=MAX_MONTHS, description="whole months in the window, the last one included")]
EndMonth = Annotated[
    str | None,
    Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="YYYY-MM, the window's last month (default: this month)"),
]
Top = Annotated[int, Query(ge=1, le=MAX_TOP, description="how many groups (approvers) to show by name")]


def _month(value: str | None) -> date | None:
    return None if value is None else date(int(value[:4]), int(value[5:7]), 1)


def _today() -> date:
    return datetime.now(UTC).date()


@router.get(
    "/trends",
    response_model=Trends,
    summary="Revenue, expenses and net by month with month-over-month and year-over-year change, and spend or "
    "revenue by category, team or vendor",
)
@read_only
async def get_trends(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    months: Months = 12,
    end: EndMonth = None,
    kind: Annotated[TrendKind, Query(description="what the groups break down")] = TrendKind.EXPENSE,
    by: Annotated[TrendDimension, Query(description="category; team (the owner's manager); vendor (source)")] = (
        TrendDimension.CATEGORY
    ),
    top: Top = 5,
) -> Trends:
    return await service.trends(
        tx, services.authorizer, grant.user, services.settings.approvals.base_currency, _today(), months, _month(end),
        kind.value, by, top,
    )  # fmt: skip


@router.get(
    "/approvals",
    response_model=ApprovalPerformance,
    summary="Approval cycle time p50 and p90 by level and approver, SLA breach rate, escalations, share "
    "auto-approved, share sent back for changes",
)
@read_only
async def get_approval_performance(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    months: Months = 12,
    end: EndMonth = None,
    top: Top = 10,
) -> ApprovalPerformance:
    return await service.approval_performance(tx, services.authorizer, grant.user, _today(), months, _month(end), top)


@router.get(
    "/budgets",
    response_model=BudgetBurn,
    summary="Budget burn: each visible budget's spent share against the elapsed share of its period",
)
@read_only
async def get_budget_burn(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    as_of: Annotated[
        date | None, Query(description="the day whose period is shown (default today, UTC); 2000-01-01..2100-12-31")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BUDGETS)] = 50,
) -> BudgetBurn:
    day = as_of or _today()
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise ValidationFailed("as_of must be between 2000-01-01 and 2100-12-31", field="as_of")
    return await service.budget_burn(
        tx, services.authorizer, grant.user, services.settings.approvals.base_currency, day, limit
    )


@router.get(
    "/receivables",
    response_model=ReceivablesAnalytics,
    summary="Receivables aging and days sales outstanding",
    responses={403: {"description": "your role may not read invoices"}},
)
@read_only
async def get_receivables(
    grant: Reader, tx: ReadTxDep, services: ServicesDep, _etag: ConditionalGet
) -> ReceivablesAnalytics:
    settings = services.settings
    return await service.receivables(
        tx, services.authorizer, grant.user, settings.approvals.base_currency, _today(), settings.receivables.dso_days
    )


@router.get(
    "/cash-forecast",
    response_model=CashForecastAnalytics,
    summary="Cash in and out for the coming weeks from open and recurring invoices and approved expenses, with the "
    "trailing average as a band, and the runway",
)
@read_only
async def get_cash_forecast(
    grant: Reader,
    tx: ReadTxDep,
    services: ServicesDep,
    _etag: ConditionalGet,
    cash_on_hand: Annotated[
        str | None,
        Query(
            max_length=20,
            description="cash at hand today in the base currency, a decimal string (the books do not know it); "
            "without it there are no balances and no runway",
        ),
    ] = None,
    weeks: Annotated[int, Query(ge=1, le=MAX_FORECAST_WEEKS)] = 13,
    trailing_weeks: Annotated[int, Query(ge=1, le=MAX_TRAILING_WEEKS, description="weeks the average is over")] = 13,
) -> CashForecastAnalytics:
    cash: Decimal | None = None
    if cash_on_hand is not None:
        try:
            cash = parse_amount(cash_on_hand)
        except MoneyError as exc:
            raise ValidationFailed(f"cash_on_hand: {exc}", field="cash_on_hand") from None
    settings = services.settings
    return await service.cash_forecast(
        tx, services.authorizer, grant.user, settings.approvals.base_currency, _today(), weeks, trailing_weeks,
        settings.analytics.expense_payment_weeks, cash,
    )  # fmt: skip
