"""Analytics responses. Money is a decimal string in the base currency (`base_currency`) to its minor units, as on
the dashboard (amounts locked at submit); percentages are decimal strings with two places, shares four places;
every `chart` is labels plus one value per label and series (`domain.analytics.plot`)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.analytics.plot import Chart
from domain.dashboard.schemas import BudgetUse, CycleTime, ReceivablesSummary, Scope
from domain.money import AmountOut

MAX_MONTHS = 24
MAX_TOP = 20
MAX_FORECAST_WEEKS = 26
MAX_TRAILING_WEEKS = 52
MAX_BUDGETS = 100


class TrendKind(StrEnum):
    EXPENSE = "expense"
    REVENUE = "revenue"


class TrendDimension(StrEnum):
    CATEGORY = "category"
    TEAM = "team"
    VENDOR = "vendor"


class MonthTrend(BaseModel):
    month: str = Field(description="YYYY-MM")
    revenue: AmountOut
    expenses: AmountOut
    net: AmountOut
    revenue_mom_percent: str | None = Field(description="against the month before; null when that was zero")
    expenses_mom_percent: str | None
    revenue_yoy_percent: str | None = Field(description="against the same month a year before; null when zero")
    expenses_yoy_percent: str | None


class GroupTrend(BaseModel):
    key: str | None = Field(description="the category, the counterparty, or the team manager's id; null: other")
    label: str
    total: AmountOut = Field(description="over the window")
    previous_total: AmountOut = Field(description="over the window of the same length just before")
    change_percent: str | None = Field(description="total against previous_total; null when that was zero")
    year_ago_total: AmountOut = Field(description="over the same window a year before")
    yoy_percent: str | None
    values: list[AmountOut] = Field(description="one per month of the window")


class Trends(BaseModel):
    scope: Scope
    base_currency: str
    start: date = Field(description="first day of the window's first month")
    end: date = Field(description="last day of the window's last month")
    months: int
    kind: TrendKind = Field(description="what `groups` break down")
    by: TrendDimension
    series: list[MonthTrend]
    groups: list[GroupTrend] = Field(description="the largest `top` over the window, then `other` (all the rest)")
    charts: list[Chart]


class ApproverPerformance(BaseModel):
    approver_id: int
    full_name: str
    steps: int = Field(description="steps closed in the window")
    cycle_time: CycleTime = Field(description="opened to closed, per step (`decided` counts the steps)")
    sla_breaches: int
    sla_breach_rate: str | None
    escalations: int
    changes_requested: int


class LevelPerformance(BaseModel):
    level: int = Field(description="the step's level in its chain (0 the first approver)")
    steps: int
    cycle_time: CycleTime
    sla_breaches: int
    sla_breach_rate: str | None
    escalations: int
    changes_requested: int


class ApprovalPerformance(BaseModel):
    """Approval steps closed in the window (approved, rejected, sent back for changes, escalated, expired) on requests
    raised by people in scope. A step's cycle time runs from its opening to its closing; it breaches the SLA when
    closed after its reminder time. Shares are four places, null when there is nothing to divide by."""

    scope: Scope
    start: date
    end: date
    months: int
    steps: int
    decisions: int = Field(description="steps an approver decided: approved, rejected or sent back")
    sla_breaches: int
    sla_breach_rate: str | None = Field(description="sla_breaches / steps")
    escalations: int
    changes_requested: int
    sent_back_share: str | None = Field(description="changes_requested / decisions")
    requests_decided: int = Field(description="requests approved or rejected in the window")
    auto_approved: int = Field(description="of those, approved at once by an auto-approval rule (no step)")
    auto_approved_share: str | None = Field(description="auto_approved / requests_decided")
    by_level: list[LevelPerformance]
    by_approver: list[ApproverPerformance] = Field(description="the `top` approvers with the most steps")
    charts: list[Chart]


class BudgetBurn(BaseModel):
    as_of: date
    scope: Scope
    base_currency: str
    budgets: list[BudgetUse] = Field(description="each budget's period containing `as_of`, the most used first")
    charts: list[Chart]


class ReceivablesAnalytics(BaseModel):
    base_currency: str
    receivables: ReceivablesSummary = Field(description="aging and DSO, as /dashboard/receivables computes them")
    charts: list[Chart]


class ForecastWeek(BaseModel):
    week: str = Field(description="ISO week, 2026-W50")
    starts_on: date = Field(description="its Monday")
    invoices_due: AmountOut = Field(description="open invoice balances due that week")
    recurring_due: AmountOut = Field(description="invoices recurring invoices will issue, due that week")
    expenses_payable: AmountOut = Field(description="approved expenses expected to be paid that week")
    net: AmountOut = Field(description="invoices_due + recurring_due - expenses_payable")
    band_low: AmountOut = Field(description="the lower of net and the trailing average net")
    band_high: AmountOut = Field(description="the higher of net and the trailing average net")
    balance: AmountOut | None = Field(description="cash_on_hand + the nets so far; null without cash_on_hand")
    balance_low: AmountOut | None = Field(description="cash_on_hand + the band_lows so far")
    balance_high: AmountOut | None = Field(description="cash_on_hand + the band_highs so far")


class TrailingAverage(BaseModel):
    weeks: int
    start: date = Field(description="Monday of the first week averaged")
    end: date = Field(description="Sunday of the last week averaged (the week before this one)")
    cash_in: AmountOut = Field(description="invoice payments received, a week on average")
    cash_out: AmountOut = Field(description="approved expenses paid (by the payment rule), a week on average")
    net: AmountOut


class Runway(BaseModel):
    weekly_burn: AmountOut | None = Field(
        description="minus the average of the weeks' band_low: what the cautious path loses a week; null when it "
        "does not lose cash"
    )
    weeks: str | None = Field(description="cash_on_hand / weekly_burn, two places; null without cash_on_hand or burn")
    cash_runs_out_week: str | None = Field(description="the first week whose balance_low is below zero, if any")
    definition: str


class CashForecastAnalytics(BaseModel):
    """The next weeks' cash from what the books already hold; see docs/api.md, Analytics."""

    as_of: date
    scope: Scope
    base_currency: str
    cash_on_hand: AmountOut | None
    expense_payment_weeks: int = Field(description="an expense approved in week W is paid in week W + this")
    invoices_included: bool = Field(description="false when the viewer may not read invoices (no inflows)")
    overdue_invoices: AmountOut = Field(description="past due already: in no week (their date is unknown)")
    weeks: list[ForecastWeek]
    trailing_average: TrailingAverage
    runway: Runway
    charts: list[Chart]
