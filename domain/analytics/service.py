"""Analytics, scoped as the dashboard is (`domain.dashboard.service.scope_for`: employees their own, managers their
subtree, accountants and admins everyone), each answered from maintained aggregates, never a scan of the entries:

- trends: `dashboard_category_totals` (everyone) or `dashboard_owner_totals` / `dashboard_entry_totals` (a scope)
  for the monthly series and categories; `dashboard_owner_totals` joined to the owner's manager for teams;
  `analytics_counterparty_totals` for vendors (an expense's vendor, a revenue entry's source);
- approval performance: `analytics_step_totals` and `analytics_step_histogram` (everyone) or the per-requester
  ranges of `analytics_step_cycles` (a scope), with exact nearest-rank percentiles; `analytics_request_outcomes`;
- budget burn and receivables: the dashboard's own reads (`current_budgets`, `current_receivables`);
- the cash forecast: `domain.invoices.receivables.expected_cash`, the active recurring invoices, and
  `analytics_expense_weeks` (`domain.analytics.forecast` holds its rules).

All windows are whole UTC months (trends, approvals) or ISO weeks (the forecast); amounts are base amounts locked at
submit, in the base currency's minor units, as on the dashboard.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select, text

from core.authz import Authorizer
from core.db import Tx
from domain.analytics import forecast
from domain.analytics.plot import Chart, Unit, money_by_month, series
from domain.analytics.schemas import (
    ApprovalPerformance,
    ApproverPerformance,
    BudgetBurn,
    CashForecastAnalytics,
    ForecastWeek,
    GroupTrend,
    LevelPerformance,
    MonthTrend,
    ReceivablesAnalytics,
    Runway,
    TrailingAverage,
    TrendDimension,
    Trends,
)
from domain.budgets.progress import share_percent
from domain.dashboard.schemas import CycleTime, DashboardPeriod
from domain.dashboard.service import (
    DashboardScope,
    add_months,
    change_percent,
    current_budgets,
    current_receivables,
    scope_for,
)
from domain.errors import Forbidden, ValidationFailed
from domain.invoices import receivables as accounts_receivable
from domain.models import User
from domain.money import fits, in_minor_units

SHARE_PLACES = Decimal("0.0001")
OTHER = "other"


def _money(value: Any, base: str) -> Decimal:
    return in_minor_units(Decimal(value or 0), base)


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _share(part: int, whole: int) -> str | None:
    return str((Decimal(part) / whole).quantize(SHARE_PLACES, rounding=ROUND_HALF_UP)) if whole else None


def month_window(months: int, end_month: date | None, today: date) -> tuple[date, date]:
    """[start, end): the `months` whole months ending with `end_month` (the current month by default)."""
    last = (end_month or today).replace(day=1)
    if last > today.replace(day=1):
        raise ValidationFailed("end must not be after the current month", field="end")
    end = add_months(last, 1)
    return add_months(end, -months), end


def _month_labels(start: date, months: int) -> list[date]:
    return [add_months(start, offset) for offset in range(months)]


# --- trends -----------------------------------------------------------------------------------------------------


async def _by_month_and_kind(tx: Tx, scope: DashboardScope, start: date, end: date) -> dict[tuple[date, str], Any]:
    if scope.owner_ids is None:  # organisation-wide: a few rows per month (categories), not one per owner
        source = "dashboard_category_totals t WHERE status = 'approved' AND month >= :start AND month < :end"
    else:
        source = scope.totals("status = 'approved' AND month >= :start AND month < :end")
    rows = await tx.session.execute(
        text(f"SELECT t.month, t.kind, sum(t.amount_total) FROM {source} GROUP BY t.month, t.kind"),
        {"start": start, "end": end, **scope.params()},
    )
    return {(month, kind): amount for month, kind, amount in rows}


async def _by_month_and_group(
    tx: Tx, scope: DashboardScope, by: TrendDimension, kind: str, start: date, end: date
) -> dict[tuple[date, str | None], Any]:
    params = {"start": start, "end": end, "kind": kind, **scope.params()}
    window = "month >= :start AND month < :end AND kind = :kind"
    if by == TrendDimension.CATEGORY:
        if scope.owner_ids is None:
            source = f"dashboard_category_totals t WHERE status = 'approved' AND {window}"
        else:
            source = scope.totals(f"status = 'approved' AND {window}", "dashboard_entry_totals")
        sql = f"SELECT t.month, t.category, sum(t.amount_total) FROM {source} GROUP BY 1, 2"
    elif by == TrendDimension.VENDOR:
        source = (
            f"analytics_counterparty_totals t WHERE {window}"
            if scope.owner_ids is None
            else scope.totals(window, "analytics_counterparty_totals")
        )
        sql = f"SELECT t.month, t.counterparty, sum(t.amount_total) FROM {source} GROUP BY 1, 2"
    else:  # a team: the owner's manager (today's manager tree); people with no manager form no team (null)
        source = scope.totals(f"status = 'approved' AND {window}")
        sql = (
            f"SELECT t.month, u.manager_id, sum(t.amount_total) FROM (SELECT t.month, t.owner_id, "
            f"t.amount_total FROM {source}) t JOIN users u ON u.id = t.owner_id GROUP BY 1, 2"
        )
    rows = await tx.session.execute(text(sql), params)
    # A team's key is its manager's id, as text like the other dimensions' keys.
    return {(month, group if group is None else str(group)): amount for month, group, amount in rows}


async def _team_labels(tx: Tx, keys: list[str | None]) -> dict[str | None, str]:
    ids = [int(key) for key in keys if key is not None]
    names = dict((await tx.session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))).tuples().all())
    labels: dict[str | None, str] = {None: "no manager"}
    for key in keys:
        if key is not None:
            labels[key] = f"team of {names.get(int(key), key)}"
    return labels


async def trends(
    tx: Tx, authorizer: Authorizer, viewer: User, base: str, today: date, months: int, end_month: date | None,
    kind: str, by: TrendDimension, top: int,
) -> Trends:  # fmt: skip
    """Revenue, expenses and net by month with month-over-month and year-over-year change, and `kind` broken down
    by `by`: each group's window total against the window before and the same window a year before."""
    scope = await scope_for(tx, authorizer, viewer)
    start, end = month_window(months, end_month, today)
    # A year back for the year-over-year change; as far back as the window is long for the window before.
    read_from = add_months(start, -max(12, months))
    zero = _money(0, base)
    by_kind = await _by_month_and_kind(tx, scope, read_from, end)

    def amount(month: date, entry_kind: str) -> Decimal:
        return _money(by_kind.get((month, entry_kind)), base)

    labels = _month_labels(start, months)
    rows: list[MonthTrend] = []
    for month in labels:
        before, year_ago = add_months(month, -1), add_months(month, -12)
        revenue, expenses = amount(month, "revenue"), amount(month, "expense")
        rows.append(
            MonthTrend(
                month=f"{month:%Y-%m}", revenue=revenue, expenses=expenses, net=revenue - expenses,
                revenue_mom_percent=change_percent(revenue, amount(before, "revenue")),
                expenses_mom_percent=change_percent(expenses, amount(before, "expense")),
                revenue_yoy_percent=change_percent(revenue, amount(year_ago, "revenue")),
                expenses_yoy_percent=change_percent(expenses, amount(year_ago, "expense")),
            )
        )  # fmt: skip

    by_group = await _by_month_and_group(tx, scope, by, kind, read_from, end)
    previous_start, year_ago_start, year_ago_end = (
        add_months(start, -months),
        add_months(start, -12),
        add_months(end, -12),
    )
    totals: dict[str | None, list[Decimal]] = defaultdict(lambda: [zero, zero, zero])  # window, before, a year before
    for (month, group), value in by_group.items():
        money = _money(value, base)
        figures = totals[group]
        if start <= month < end:
            figures[0] += money
        if previous_start <= month < start:
            figures[1] += money
        if year_ago_start <= month < year_ago_end:
            figures[2] += money
    ranked = sorted((key for key, figures in totals.items() if figures[0]), key=lambda k: (-totals[k][0], k or ""))
    shown, rest = ranked[:top], set(totals) - set(ranked[:top])
    labels_for = await _team_labels(tx, shown) if by == TrendDimension.TEAM else {k: k or "(none)" for k in shown}
    groups = []
    # The shown groups one by one, then everything else as one `other` group (null key), so the groups add up.
    members_of: list[tuple[str | None, set[str | None]]] = [(key, {key}) for key in shown]
    if rest:
        members_of.append((None, rest))
    for index, (key, members) in enumerate(members_of):
        window, prior, year_before = (sum((totals[m][i] for m in members), zero) for i in range(3))
        values = [sum((_money(by_group.get((month, m)), base) for m in members), zero) for month in labels]
        other = index == len(shown)
        groups.append(
            GroupTrend(
                key=None if other else key, label=OTHER if other else labels_for[key], total=window,
                previous_total=prior, change_percent=change_percent(window, prior), year_ago_total=year_before,
                yoy_percent=change_percent(window, year_before), values=values,
            )
        )  # fmt: skip
    month_labels = [row.month for row in rows]
    charts = [
        money_by_month(rows),
        Chart(
            title="Change against the month before and the same month a year before (%)",
            labels=month_labels,
            series=[
                series("revenue month over month", Unit.PERCENT, [r.revenue_mom_percent for r in rows]),
                series("expenses month over month", Unit.PERCENT, [r.expenses_mom_percent for r in rows]),
                series("revenue year over year", Unit.PERCENT, [r.revenue_yoy_percent for r in rows]),
                series("expenses year over year", Unit.PERCENT, [r.expenses_yoy_percent for r in rows]),
            ],
        ),
        Chart(
            title=f"{'Expenses' if kind == 'expense' else 'Revenue'} by {by.value} and month",
            labels=month_labels,
            series=[series(group.label, Unit.MONEY, group.values) for group in groups],
        ),
    ]
    return Trends(
        scope=scope.scope, base_currency=base, start=start, end=end - timedelta(days=1), months=months,
        kind=kind, by=by, series=rows, groups=groups, charts=charts,  # type: ignore[arg-type]
    )  # fmt: skip


# --- approval performance ---------------------------------------------------------------------------------------


@dataclass
class _Counts:
    steps: int = 0
    breached: int = 0
    escalated: int = 0
    changes: int = 0
    decisions: int = 0

    def add(self, status: str, steps: int, breached: int) -> None:
        self.steps += steps
        self.breached += breached
        if status == "escalated":
            self.escalated += steps
        if status == "changes_requested":
            self.changes += steps
        if status in ("approved", "rejected", "changes_requested"):
            self.decisions += steps


def cycle_time(steps: int, percentiles: list[float] | None) -> CycleTime:
    """Reported in whole seconds (rounding is monotonic, so it commutes with taking the k-th value)."""
    median, p90 = (round(percentiles[0]), round(percentiles[1])) if percentiles else (None, None)
    return CycleTime(
        decided=steps,
        median_seconds=median,
        p90_seconds=p90,
        median_hours=None if median is None else round(median / 3600, 2),
        p90_hours=None if p90 is None else round(p90 / 3600, 2),
    )


# A scope's closed steps: one index-only range of `ix_analytics_step_cycles_requester_closed` per requester, counted
# by level, approver, month and status (one hash aggregate), then the exact percentiles per level and per approver
# (two sorts; an ordered-set aggregate per finer group would sort each of them again).
_SCOPED_RANGE = """
unnest(CAST(:owners AS bigint[])) AS o(id) CROSS JOIN LATERAL (
    SELECT level, approver_id, status, breached, cycle_seconds, closed_at FROM analytics_step_cycles
    WHERE requester_id = o.id AND closed_at >= :start_at AND closed_at < :end_at OFFSET 0
) c
"""
_SCOPED_COUNTS = f"""
SELECT c.level, c.approver_id, date_trunc('month', c.closed_at AT TIME ZONE 'UTC')::date, c.status,
    count(*), count(*) FILTER (WHERE c.breached)
FROM {_SCOPED_RANGE} GROUP BY 1, 2, 3, 4
"""
_SCOPED_PERCENTILES = f"""
SELECT GROUPING(c.level, c.approver_id), c.level, c.approver_id,
    percentile_disc(CAST(:fractions AS float8[])) WITHIN GROUP (ORDER BY c.cycle_seconds)
FROM {_SCOPED_RANGE} GROUP BY GROUPING SETS ((c.level), (c.approver_id))
"""

# Everyone's counts from the maintained totals (a few thousand rows a year).
_EVERYONE_COUNTS = """
SELECT GROUPING(level, approver_id, month), level, approver_id, month, status, sum(steps), sum(breached)
FROM analytics_step_totals WHERE month >= :start AND month < :end
GROUP BY GROUPING SETS ((level, status), (approver_id, status), (month, status))
"""

# Everyone's exact percentiles per level: the histogram finds the bucket holding rank k = max(1, ceil(p * n)), then
# one short range of `ix_analytics_step_cycles_level_bucket` sorted by cycle gives the k-th value (as the dashboard's
# request cycle times).
_EVERYONE_LEVEL_PERCENTILES = """
WITH h AS (
    SELECT level, bucket, sum(steps) AS n FROM analytics_step_histogram
    WHERE month >= :start AND month < :end GROUP BY level, bucket HAVING sum(steps) > 0
), ranked AS (
    SELECT level, bucket, n, sum(n) OVER (PARTITION BY level ORDER BY bucket) - n AS before,
           sum(n) OVER (PARTITION BY level) AS total
    FROM h
), picks AS (
    SELECT r.level, p, r.bucket, wanted.k - r.before - 1 AS skip
    FROM ranked r CROSS JOIN unnest(CAST(:fractions AS float8[])) AS p
    CROSS JOIN LATERAL (SELECT greatest(1, ceil(p * r.total)) AS k) AS wanted
    WHERE wanted.k > r.before AND wanted.k <= r.before + r.n
)
SELECT picks.level, picks.p, (
    SELECT c.cycle_seconds FROM analytics_step_cycles c
    WHERE c.level = picks.level AND c.bucket = picks.bucket AND c.closed_at >= :start_at AND c.closed_at < :end_at
    ORDER BY c.cycle_seconds OFFSET picks.skip LIMIT 1
) FROM picks ORDER BY picks.level, picks.p
"""

# The shown approvers' exact percentiles: one index range of `ix_analytics_step_cycles_approver_closed` each.
_APPROVER_PERCENTILES = """
SELECT a.id, percentile_disc(CAST(:fractions AS float8[])) WITHIN GROUP (ORDER BY c.cycle_seconds)
FROM unnest(CAST(:approvers AS bigint[])) AS a(id) CROSS JOIN LATERAL (
    SELECT cycle_seconds FROM analytics_step_cycles
    WHERE approver_id = a.id AND closed_at >= :start_at AND closed_at < :end_at OFFSET 0
) c GROUP BY a.id
"""


async def _request_outcomes(tx: Tx, scope: DashboardScope, start: date, end: date) -> tuple[int, int]:
    """(requests approved or rejected in the window, of those approved automatically)."""
    window = "month >= :start AND month < :end"
    source = (
        f"analytics_request_outcomes t WHERE {window}"
        if scope.owner_ids is None
        else f"unnest(CAST(:owners AS bigint[])) AS o(id) CROSS JOIN LATERAL (SELECT * FROM analytics_request_outcomes "
        f"WHERE requester_id = o.id AND {window} OFFSET 0) t"
    )
    row = (
        await tx.session.execute(
            text(f"SELECT coalesce(sum(t.requests), 0), coalesce(sum(t.requests) FILTER (WHERE t.auto_approved), 0) "
                 f"FROM {source}"),
            {"start": start, "end": end, **scope.params()},
        )
    ).one()  # fmt: skip
    return int(row[0]), int(row[1])


async def approval_performance(
    tx: Tx, authorizer: Authorizer, viewer: User, today: date, months: int, end_month: date | None, top: int
) -> ApprovalPerformance:
    scope = await scope_for(tx, authorizer, viewer)
    start, end = month_window(months, end_month, today)
    params: dict[str, Any] = {
        "start": start, "end": end, "start_at": _instant(start), "end_at": _instant(end), "fractions": [0.5, 0.9],
        **scope.params(),
    }  # fmt: skip
    levels: dict[int, _Counts] = defaultdict(_Counts)
    approvers: dict[int, _Counts] = defaultdict(_Counts)
    by_month: dict[date, _Counts] = defaultdict(_Counts)
    level_percentiles: dict[int, list[float]] = {}
    approver_percentiles: dict[int, list[float]] = {}
    if scope.owner_ids is None:
        rows = await tx.session.execute(text(_EVERYONE_COUNTS), params)
        for grouping, level, approver_id, month, status, steps, breached in rows:
            target = levels[level] if grouping == 3 else approvers[approver_id] if grouping == 5 else by_month[month]
            target.add(status, int(steps), int(breached))
        for level, _fraction, value in await tx.session.execute(text(_EVERYONE_LEVEL_PERCENTILES), params):
            level_percentiles.setdefault(level, []).append(float(value))
    else:
        for level, approver_id, month, status, steps, breached in await tx.session.execute(
            text(_SCOPED_COUNTS), params
        ):
            for target in (levels[level], approvers[approver_id], by_month[month]):
                target.add(status, int(steps), int(breached))
        for grouping, level, approver_id, percentiles in await tx.session.execute(text(_SCOPED_PERCENTILES), params):
            if grouping == 1:  # GROUPING(level, approver_id) = 1: grouped by level
                level_percentiles[level] = list(percentiles)
            else:
                approver_percentiles[approver_id] = list(percentiles)
    shown = sorted(approvers, key=lambda a: (-approvers[a].steps, a))[:top]
    if scope.owner_ids is None and shown:
        found = await tx.session.execute(text(_APPROVER_PERCENTILES), {**params, "approvers": shown})
        approver_percentiles = {approver_id: list(values) for approver_id, values in found}
    names = dict((await tx.session.execute(select(User.id, User.full_name).where(User.id.in_(shown)))).tuples().all())
    total = _Counts()
    for counts in levels.values():
        total.steps += counts.steps
        total.breached += counts.breached
        total.escalated += counts.escalated
        total.changes += counts.changes
        total.decisions += counts.decisions
    decided, automatic = await _request_outcomes(tx, scope, start, end)
    labels = _month_labels(start, months)
    month_counts = [by_month.get(month, _Counts()) for month in labels]
    charts = [
        Chart(
            title="Approval steps closed, SLA breaches and escalations by month",
            labels=[f"{m:%Y-%m}" for m in labels],
            series=[
                series("steps", Unit.COUNT, [c.steps for c in month_counts]),
                series("SLA breaches", Unit.COUNT, [c.breached for c in month_counts]),
                series("escalations", Unit.COUNT, [c.escalated for c in month_counts]),
            ],
        ),
        Chart(
            title="Cycle time by level (hours)",
            labels=[f"level {level}" for level in sorted(levels)],
            series=[
                series("p50", Unit.HOURS, [_hours(level_percentiles.get(level), 0) for level in sorted(levels)]),
                series("p90", Unit.HOURS, [_hours(level_percentiles.get(level), 1) for level in sorted(levels)]),
            ],
        ),
    ]
    return ApprovalPerformance(
        scope=scope.scope, start=start, end=end - timedelta(days=1), months=months, steps=total.steps,
        decisions=total.decisions, sla_breaches=total.breached, sla_breach_rate=_share(total.breached, total.steps),
        escalations=total.escalated, changes_requested=total.changes,
        sent_back_share=_share(total.changes, total.decisions), requests_decided=decided, auto_approved=automatic,
        auto_approved_share=_share(automatic, decided),
        by_level=[
            LevelPerformance(
                level=level, steps=c.steps, cycle_time=cycle_time(c.steps, level_percentiles.get(level)),
                sla_breaches=c.breached, sla_breach_rate=_share(c.breached, c.steps), escalations=c.escalated,
                changes_requested=c.changes,
            )
            for level, c in sorted(levels.items())
        ],
        by_approver=[
            ApproverPerformance(
                approver_id=a, full_name=names.get(a, ""), steps=approvers[a].steps,
                cycle_time=cycle_time(approvers[a].steps, approver_percentiles.get(a)),
                sla_breaches=approvers[a].breached, sla_breach_rate=_share(approvers[a].breached, approvers[a].steps),
                escalations=approvers[a].escalated, changes_requested=approvers[a].changes,
            )
            for a in shown
        ],
        charts=charts,
    )  # fmt: skip


def _hours(percentiles: list[float] | None, index: int) -> str | None:
    if not percentiles:
        return None
    return str((Decimal(round(percentiles[index])) / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# --- budgets and receivables: the dashboard's reads -------------------------------------------------------------


async def budget_burn(tx: Tx, authorizer: Authorizer, viewer: User, base: str, as_of: date, limit: int) -> BudgetBurn:
    scope = await scope_for(tx, authorizer, viewer)
    budgets = await current_budgets(tx, authorizer, viewer, scope, base, as_of, limit)
    names = [f"{b.name} ({b.period})" for b in budgets]
    chart = Chart(
        title="Budget burn: spent share against elapsed share of the period (%)",
        labels=names,
        series=[
            series("spent", Unit.PERCENT, [share_percent(b.actual, b.amount) for b in budgets]),
            series("elapsed", Unit.PERCENT, [Decimal(str(b.elapsed_percent)).quantize(Decimal("0.01"))
                                             for b in budgets]),
        ],
    )  # fmt: skip
    return BudgetBurn(as_of=as_of, scope=scope.scope, base_currency=base, budgets=budgets, charts=[chart])


async def receivables(
    tx: Tx, authorizer: Authorizer, viewer: User, base: str, today: date, dso_days: int
) -> ReceivablesAnalytics:
    scope = await scope_for(tx, authorizer, viewer)
    summary = await current_receivables(tx, authorizer, viewer, scope, base, today, dso_days, DashboardPeriod.MONTH)
    if summary is None:
        raise Forbidden("your role may not read invoices")
    chart = Chart(
        title="Receivables by days past due",
        labels=[bucket.bucket for bucket in summary.aging],
        series=[
            series("amount", Unit.MONEY, [bucket.amount for bucket in summary.aging]),
            series("invoices", Unit.COUNT, [bucket.invoices for bucket in summary.aging]),
        ],
    )
    return ReceivablesAnalytics(base_currency=base, receivables=summary, charts=[chart])


# --- cash forecast ----------------------------------------------------------------------------------------------


async def _expense_weeks(tx: Tx, scope: DashboardScope, start: date, end: date, base: str) -> dict[date, Decimal]:
    """Approved expenses by the Monday of their approval week, in [start, end)."""
    window = "week >= :start AND week < :end"
    source = (
        f"analytics_expense_weeks t WHERE {window}"
        if scope.owner_ids is None
        else scope.totals(window, "analytics_expense_weeks")
    )
    rows = await tx.session.execute(
        text(f"SELECT t.week, sum(t.amount_total) FROM {source} GROUP BY t.week"),
        {"start": start, "end": end, **scope.params()},
    )
    return {week: _money(amount, base) for week, amount in rows}


async def _payments_by_week(
    tx: Tx, invoices: accounts_receivable.ReceivablesScope, start: date, end: date, base: str
) -> dict[date, Decimal]:
    """Invoice payments received (base amount at each payment's own rate) by the Monday of their week."""
    rows = await tx.sql.all(
        "SELECT p.paid_on - (extract(isodow FROM p.paid_on)::int - 1), sum(p.base_amount) "
        "FROM invoice_payments p JOIN invoices i ON i.id = p.invoice_id "
        f"WHERE p.paid_on >= %(start)s AND p.paid_on < %(end)s AND {invoices.condition()} GROUP BY 1",
        {"start": start, "end": end, **invoices.params()},
        prepare=False,
    )
    return {monday: _money(amount, base) for monday, amount in rows}


async def _recurring_due(
    tx: Tx, invoices: accounts_receivable.ReceivablesScope, today: date, horizon: date, base: str
) -> dict[date, Decimal]:
    """What the active recurring invoices will issue from today, by the Monday of each invoice's due date, at the
    base total their template's approval locked (a run locks its own day's rate: an estimate)."""
    rows = await tx.sql.all(
        "SELECT r.id, r.frequency, r.starts_on, r.count, r.runs, i.base_total, c.payment_terms_days, "
        "ARRAY(SELECT x.recurring_run_on FROM invoices x WHERE x.recurring_id = r.id "
        "      AND x.recurring_run_on >= %(today)s) "
        "FROM recurring_invoices r JOIN invoices i ON i.id = r.template_id JOIN customers c ON c.id = i.customer_id "
        f"WHERE r.status = 'active' AND i.base_total IS NOT NULL AND {invoices.condition()}",
        {"today": today, **invoices.params()},
        prepare=False,
    )
    due: dict[date, Decimal] = defaultdict(lambda: _money(0, base))
    for _, frequency, starts_on, count, runs, base_total, terms, issued in rows:
        left = None if count is None else max(count - runs, 0)
        for run_on in forecast.run_dates(frequency, starts_on, today, horizon, set(issued), left):
            due_on = run_on + timedelta(days=terms)
            if due_on < horizon:
                due[forecast.week_start(due_on)] += _money(base_total, base)
    return due


async def cash_forecast(
    tx: Tx, authorizer: Authorizer, viewer: User, base: str, today: date, weeks: int, trailing_weeks: int,
    payment_weeks: int, cash_on_hand: Decimal | None,
) -> CashForecastAnalytics:  # fmt: skip
    if cash_on_hand is not None and not fits(cash_on_hand, base):
        raise ValidationFailed(f"cash_on_hand has more decimal places than {base} allows", field="cash_on_hand")
    scope = await scope_for(tx, authorizer, viewer)
    first = forecast.week_start(today)
    horizon = first + timedelta(weeks=weeks)
    trailing_start = first - timedelta(weeks=trailing_weeks)
    zero = _money(0, base)
    # Approvals old enough to fall into the trailing weeks' payments, up to this week's (paid in weeks to come).
    approvals = await _expense_weeks(
        tx, scope, trailing_start - timedelta(weeks=payment_weeks), first + timedelta(weeks=1), base
    )
    invoices = await accounts_receivable.scope_for(tx.sql, authorizer, viewer, scope.owner_ids)
    due_by_week: dict[date, Decimal] = {}
    recurring: dict[date, Decimal] = {}
    paid_in: dict[date, Decimal] = {}
    overdue = zero
    if invoices is not None:
        expected = await accounts_receivable.expected_cash(tx.sql, invoices, base, today, weeks)
        due_by_week = {w.starts_on: w.amount for w in expected.weeks}
        overdue = expected.overdue
        recurring = await _recurring_due(tx, invoices, today, horizon, base)
        paid_in = await _payments_by_week(tx, invoices, trailing_start, first, base)
    trailing = forecast.trailing_average(
        [paid_in.get(trailing_start + timedelta(weeks=i), zero) for i in range(trailing_weeks)],
        [approvals.get(trailing_start + timedelta(weeks=i - payment_weeks), zero) for i in range(trailing_weeks)],
        base,
    )
    planned = []
    for index in range(weeks):
        monday = first + timedelta(weeks=index)
        planned.append(
            forecast.PlannedWeek(
                monday,
                due_by_week.get(monday, zero),
                recurring.get(monday, zero),
                approvals.get(monday - timedelta(weeks=payment_weeks), zero),
            )
        )
    path = forecast.project(planned, trailing.net, cash_on_hand)
    out_weeks = [
        ForecastWeek(
            week=accounts_receivable.iso_week(w.week.monday), starts_on=w.week.monday, invoices_due=w.week.invoices_due,
            recurring_due=w.week.recurring_due, expenses_payable=w.week.expenses_payable, net=w.net,
            band_low=w.band_low, band_high=w.band_high, balance=w.balance, balance_low=w.balance_low,
            balance_high=w.balance_high,
        )
        for w in path
    ]  # fmt: skip
    runway = forecast.runway(path, cash_on_hand, base)
    labels = [w.week for w in out_weeks]
    charts = [
        Chart(
            title="Expected net cash by week, with the trailing average as a band",
            labels=labels,
            series=[
                series("net", Unit.MONEY, [w.net for w in out_weeks]),
                series("band low", Unit.MONEY, [w.band_low for w in out_weeks]),
                series("band high", Unit.MONEY, [w.band_high for w in out_weeks]),
            ],
        )
    ]
    if cash_on_hand is not None:
        charts.append(
            Chart(
                title="Cash balance by week",
                labels=labels,
                series=[
                    series("balance", Unit.MONEY, [w.balance for w in out_weeks]),
                    series("balance low", Unit.MONEY, [w.balance_low for w in out_weeks]),
                    series("balance high", Unit.MONEY, [w.balance_high for w in out_weeks]),
                ],
            )
        )
    return CashForecastAnalytics(
        as_of=today, scope=scope.scope, base_currency=base,
        cash_on_hand=None if cash_on_hand is None else in_minor_units(cash_on_hand, base),
        expense_payment_weeks=payment_weeks, invoices_included=invoices is not None, overdue_invoices=overdue,
        weeks=out_weeks,
        trailing_average=TrailingAverage(
            weeks=trailing_weeks, start=trailing_start, end=first - timedelta(days=1), cash_in=trailing.cash_in,
            cash_out=trailing.cash_out, net=trailing.net,
        ),
        runway=Runway(
            weekly_burn=runway.weekly_burn, weeks=runway.weeks, cash_runs_out_week=runway.runs_out_week,
            definition=forecast.RUNWAY_DEFINITION,
        ),
        charts=charts,
    )  # fmt: skip
