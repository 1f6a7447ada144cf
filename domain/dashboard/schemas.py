"""Dashboard responses. Money is a decimal string in the base currency (`base_currency`), to its minor units (JPY
"1250", USD "12.50", BHD "1.250"); an entry's original is in its own currency's. Counts are integers."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.analytics.plot import Chart
from domain.money import AmountOut


class DashboardPeriod(StrEnum):
    """The calendar period a dashboard covers (named apart from a report's Period: one name per API schema)."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Scope(StrEnum):
    OWN = "own"
    TEAM = "team"
    ALL = "all"


class PeriodTotals(BaseModel):
    start: date = Field(description="first day of the period")
    end: date = Field(description="last day of the period")
    revenue: AmountOut
    expenses: AmountOut
    net: AmountOut


class ChangePercent(BaseModel):
    """(current - previous) / |previous| * 100, two places; null when the previous figure is zero."""

    revenue: str | None
    expenses: str | None
    net: str | None


class PendingAmounts(BaseModel):
    """Entries waiting for approval (any date): not counted in the approved figures."""

    revenue: AmountOut
    expenses: AmountOut
    revenue_entries: int
    expense_entries: int


class ApprovalCounts(BaseModel):
    waiting_on_me: int = Field(description="pending steps where I am the approver or the delegate")
    overdue_waiting_on_me: int = Field(description="of those, past their reminder time")
    pending_in_scope: int = Field(description="pending approval requests raised by people in my scope")
    overdue_in_scope: int = Field(description="pending steps past their reminder time, on requests in my scope")


class RecentEntry(BaseModel):
    id: int
    kind: str
    owner_id: int
    amount: AmountOut = Field(description="the original, in `currency`")
    currency: str
    base_amount: AmountOut | None = Field(description="in the base currency, locked at submit; null for a draft")
    category: str
    description: str
    entry_date: date
    status: str
    created_at: datetime


class CurrencyTotals(BaseModel):
    """Approved entries of one currency and kind in the period: their originals and what they count for in base."""

    currency: str
    kind: str
    entries: int
    original_total: AmountOut = Field(description="the originals' sum, in `currency`")
    base_total: AmountOut = Field(description="in the base currency (part of the period's totals)")


class BudgetUse(BaseModel):
    """A budget's current period (the one containing today, UTC): what is committed and spent against the time gone.
    The percentages are two places, as in `/budgets`."""

    id: int
    name: str
    period: str = Field(description="the period's label: 2026-12, or 2026-10 to 2026-12")
    starts_on: date
    ends_on: date = Field(description="exclusive")
    amount: AmountOut
    committed: AmountOut = Field(description="held by expenses waiting for approval")
    actual: AmountOut = Field(description="spent: approved expenses")
    available: AmountOut = Field(description="amount - committed - actual (negative when over)")
    used_percent: float = Field(description="(committed + actual) / amount * 100")
    elapsed_percent: float = Field(description="the share of the period gone by, today included")
    burn: float | None = Field(
        description="spent share (actual / amount) over elapsed share: above 1, spending runs ahead of time; "
        "null before the period starts"
    )


class AgingBucket(BaseModel):
    bucket: str = Field(description="days past the due date: current (not yet due), 1-30, 31-60, 61-90, over_90")
    amount: AmountOut
    invoices: int


class DaysSalesOutstanding(BaseModel):
    """open receivables / credit sales of the last `window_days` days x `window_days` (the credit sales: the base
    totals of the invoices sent, partly or wholly paid, with an issue date in the window)."""

    value: str | None = Field(description="in days, two places; null when there were no credit sales in the window")
    window_days: int = Field(description="N (RECEIVABLES_DSO_DAYS)")
    window_start: date
    window_end: date = Field(description="inclusive: the day the figure is for")
    receivables: AmountOut
    credit_sales: AmountOut
    formula: str


class FxRealized(BaseModel):
    """Realized FX differences of invoice payments dated in the period: each payment's base amount at its own rate
    less the amount booked at the invoice's locked rate."""

    start: date
    end: date = Field(description="inclusive")
    gains: AmountOut = Field(description="the positive differences, added")
    losses: AmountOut = Field(description="the negative differences, added (negative, or zero)")
    net: AmountOut = Field(description="gains + losses")
    gain_payments: int
    loss_payments: int


class ReceivablesSummary(BaseModel):
    """Open invoices (sent or partly paid) I may see, in the base currency at each invoice's locked rate (rounded
    once per invoice), aged on `as_of`."""

    as_of: date
    scope: Scope
    open: AmountOut = Field(description="every open balance")
    open_invoices: int
    overdue: AmountOut = Field(description="the balances past their due date (every bucket but current)")
    overdue_invoices: int
    aging: list[AgingBucket] = Field(description="current, 1-30, 31-60, 61-90, over_90, each present")
    dso: DaysSalesOutstanding
    fx_realized: FxRealized = Field(description="over the period")


class WeekCash(BaseModel):
    week: str = Field(description="ISO week, 2026-W50")
    starts_on: date = Field(description="its Monday")
    amount: AmountOut
    invoices: int


class CashForecast(BaseModel):
    """Open balances by the ISO week of their due date, for 13 weeks from this one. What is past due is `overdue`,
    not expected in any week; what falls due after the 13 weeks is `later`."""

    overdue: AmountOut
    overdue_invoices: int
    weeks: list[WeekCash]
    later: AmountOut
    later_invoices: int


class Receivables(ReceivablesSummary):
    period: DashboardPeriod = Field(description="the calendar period (UTC) of `fx_realized`")
    base_currency: str
    expected_cash: CashForecast


class Overview(BaseModel):
    period: DashboardPeriod
    scope: Scope
    base_currency: str
    current: PeriodTotals
    current_by_currency: list[CurrencyTotals] = Field(
        description="the current period's approved amounts per currency and kind (the originals, and in base)"
    )
    previous: PeriodTotals
    change_percent: ChangePercent
    pending: PendingAmounts
    approvals: ApprovalCounts
    recent_entries: list[RecentEntry]
    budgets: list[BudgetUse] = Field(
        description="the current period of the budgets I may see, the most used first (at most 20)"
    )
    receivables: ReceivablesSummary | None = Field(
        default=None,
        description="the open invoices I may see, aged, with DSO and this period's realized FX; null when I may not "
        "read invoices (the weekly expected cash: /dashboard/receivables)",
    )


class MonthTotals(BaseModel):
    month: str = Field(description="YYYY-MM")
    revenue: AmountOut
    expenses: AmountOut
    net: AmountOut


class CategorySpend(BaseModel):
    category: str
    amount: AmountOut
    entries: int


class Spender(BaseModel):
    user_id: int
    full_name: str
    amount: AmountOut
    entries: int


class CycleTime(BaseModel):
    """From submission to decision, over requests approved or rejected in the window (nearest-rank percentiles)."""

    decided: int
    median_seconds: int | None
    p90_seconds: int | None
    median_hours: float | None
    p90_hours: float | None


class ApprovalRate(BaseModel):
    approved: int
    rejected: int
    rate: str | None = Field(description="approved / (approved + rejected), four places; null when none decided")


class Kpi(BaseModel):
    months: int
    scope: Scope
    base_currency: str
    start: date
    end: date
    series: list[MonthTotals]
    totals: PeriodTotals
    pending: PendingAmounts
    top_categories: list[CategorySpend]
    top_spenders: list[Spender] | None = Field(
        description="for managers and up and accountants (by permission, even with no reports yet); null for employees"
    )
    approval_cycle_time: CycleTime
    approval_rate: ApprovalRate
    escalations: int
    charts: list[Chart] = Field(
        default_factory=list,
        description="the series above as labels and values a client can plot: revenue, expenses and net by month; "
        "top categories",
    )
