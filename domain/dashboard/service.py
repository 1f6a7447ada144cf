"""The dashboard's figures, scoped to the viewer: employees their own, managers their subtree, accountants and
admins everyone (`domain.users.visibility`, read through the `dashboard` policy lines).

Amounts come from the totals tables (approved entries; pending ones separately): `dashboard_owner_totals` for series,
spenders and pending amounts, `dashboard_category_totals` (everyone) or `dashboard_entry_totals` (a subtree) for
categories, all kept current by `domain.dashboard.aggregates.entry_status_changed`. Approval figures come from
`dashboard_approval_decisions` and `dashboard_escalations` (kept by triggers on the approval tables) for everyone, and
from the approval tables through the partial indexes declared in `domain.models.dashboard` for a subtree or one person.
Budgets come from `budget_periods` (their running sums), among the budgets the viewer may see by the budgets' own rule
(`domain.budgets.service.Scope`). Receivables come from the invoices the viewer may see by the invoices' own rule
(`domain.invoices.receivables`), for those who may read invoices. Every figure is exact; nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text

from core.authz import Authorizer
from core.db import Tx
from domain.analytics.plot import Chart, Unit, money_by_month
from domain.analytics.plot import series as plot_series
from domain.budgets.periods import Period as BudgetPeriod
from domain.budgets.periods import elapsed_share
from domain.budgets.progress import burn_rate, share_percent
from domain.budgets.service import scope_for as budget_scope_for
from domain.dashboard.schemas import (
    AgingBucket,
    ApprovalCounts,
    ApprovalRate,
    BudgetUse,
    CashForecast,
    CategorySpend,
    ChangePercent,
    CurrencyTotals,
    CycleTime,
    DashboardPeriod,
    DaysSalesOutstanding,
    FxRealized,
    Kpi,
    MonthTotals,
    Overview,
    PendingAmounts,
    PeriodTotals,
    Receivables,
    ReceivablesSummary,
    RecentEntry,
    Scope,
    Spender,
    WeekCash,
)
from domain.errors import Forbidden
from domain.invoices import receivables as accounts_receivable
from domain.invoices.receivables import ReceivablesScope
from domain.models import User
from domain.money import in_minor_units
from domain.users.visibility import visibility_for

PERIOD_MONTHS = {DashboardPeriod.MONTH: 1, DashboardPeriod.QUARTER: 3, DashboardPeriod.YEAR: 12}
RECENT_ENTRIES = 10
TOP_N = 10
TOP_BUDGETS = 20


@dataclass(frozen=True)
class DashboardScope:
    viewer_id: int
    scope: Scope
    owner_ids: tuple[int, ...] | None  # None: everyone

    def clause(self, column: str) -> str:
        """An SQL condition on an owner column (bind parameter `owners`); empty for everyone."""
        return "" if self.owner_ids is None else f" AND {column} = ANY(CAST(:owners AS bigint[]))"

    def totals(self, condition: str, table: str = "dashboard_owner_totals") -> str:
        """`FROM` the rows of a per-owner totals table matching `condition` in scope, as `t`.

        For a list of owners this is one index range per owner (`OFFSET 0` keeps the planner from flattening the
        lateral subquery into a scan of every owner's rows, which it otherwise prefers for long lists).
        """
        if self.owner_ids is None:
            return f"{table} t WHERE {condition}"
        return (
            f"unnest(CAST(:owners AS bigint[])) AS o(id) CROSS JOIN LATERAL (SELECT * FROM {table} "
            f"WHERE owner_id = o.id AND {condition} OFFSET 0) t"
        )

    def params(self) -> dict[str, Any]:
        return {} if self.owner_ids is None else {"owners": list(self.owner_ids)}


async def scope_for(tx: Tx, authorizer: Authorizer, viewer: User) -> DashboardScope:
    visibility = await visibility_for(tx.sql, authorizer, viewer, "dashboard")
    if visibility.everyone:
        return DashboardScope(viewer.id, Scope.ALL, None)
    owners = tuple(sorted(visibility.owner_ids))
    return DashboardScope(viewer.id, _label(authorizer, viewer, owners), owners)


def _label(authorizer: Authorizer, viewer: User, owners: tuple[int, ...] | None) -> Scope:
    """`owners` None: everyone. A manager's view is their team's even before anyone reports to them (the label
    follows the role, not the size of the subtree); someone else who happens to see others (a policy edit) is shown
    as a team too."""
    if owners is None:
        return Scope.ALL
    team = owners != (viewer.id,) or sees_team_figures(authorizer, viewer)
    return Scope.TEAM if team else Scope.OWN


def sees_team_figures(authorizer: Authorizer, viewer: User) -> bool:
    """Managers and up (and accountants, who read everyone's books) get team figures such as top spenders."""
    return authorizer.allows(viewer.role, "dashboard", "read_team") or authorizer.allows(
        viewer.role, "dashboard", "read_all"
    )


# --- calendar ---------------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month (negative goes back)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_start(period: DashboardPeriod, today: date) -> date:
    if period == DashboardPeriod.MONTH:
        return today.replace(day=1)
    if period == DashboardPeriod.QUARTER:
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return date(today.year, 1, 1)


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def change_percent(current: Decimal, previous: Decimal) -> str | None:
    if previous == 0:
        return None
    return str(((current - previous) / abs(previous) * 100).quantize(Decimal("0.01")))


# --- shared reads -----------------------------------------------------------------------------------


def _money(value: Any, currency: str) -> Decimal:
    """A total to its currency's minor units (the base currency's for every dashboard figure but originals)."""
    return in_minor_units(Decimal(value or 0), currency)


async def _approved_by_month(
    tx: Tx, scope: DashboardScope, start: date, end: date, base: str
) -> dict[tuple[date, str], Decimal]:
    rows = await tx.session.execute(
        text(
            "SELECT t.month, t.kind, sum(t.amount_total) FROM "
            + scope.totals("status = 'approved' AND month >= :start AND month < :end")
            + " GROUP BY t.month, t.kind"
        ),
        {"start": start, "end": end, **scope.params()},
    )
    return {(month, kind): _money(amount, base) for month, kind, amount in rows}


async def currency_totals(tx: Tx, scope: DashboardScope, start: date, end: date, base: str) -> list[CurrencyTotals]:
    """Approved entries in [start, end) by currency and kind, from `dashboard_currency_totals` (kept by the same
    trigger as the other totals)."""
    rows = await tx.session.execute(
        text(
            "SELECT t.currency, t.kind, sum(t.entry_count), sum(t.original_total), sum(t.base_total) FROM "
            + scope.totals("status = 'approved' AND month >= :start AND month < :end", "dashboard_currency_totals")
            + " GROUP BY t.currency, t.kind HAVING sum(t.entry_count) > 0 ORDER BY t.kind DESC, t.currency"
        ),
        {"start": start, "end": end, **scope.params()},
    )
    return [
        CurrencyTotals(
            currency=currency,
            kind=kind,
            entries=int(count),
            original_total=_money(original, currency),
            base_total=_money(base_total, base),
        )
        for currency, kind, count, original, base_total in rows
    ]


async def pending_amounts(tx: Tx, scope: DashboardScope, base: str) -> PendingAmounts:
    rows = await tx.session.execute(
        text(
            "SELECT t.kind, sum(t.entry_count), sum(t.amount_total) FROM "
            + scope.totals("status = 'pending'")
            + " GROUP BY t.kind"
        ),
        scope.params(),
    )
    found = {kind: (int(count or 0), _money(amount, base)) for kind, count, amount in rows}
    revenue = found.get("revenue", (0, _money(0, base)))
    expenses = found.get("expense", (0, _money(0, base)))
    return PendingAmounts(
        revenue=revenue[1], expenses=expenses[1], revenue_entries=revenue[0], expense_entries=expenses[0]
    )


def _totals(start: date, end: date, by_month: dict[tuple[date, str], Decimal], base: str) -> PeriodTotals:
    zero = _money(0, base)
    revenue = sum((v for (m, k), v in by_month.items() if start <= m < end and k == "revenue"), zero)
    expenses = sum((v for (m, k), v in by_month.items() if start <= m < end and k == "expense"), zero)
    last_day = date.fromordinal(end.toordinal() - 1)
    return PeriodTotals(start=start, end=last_day, revenue=revenue, expenses=expenses, net=revenue - expenses)


# --- overview ---------------------------------------------------------------------------------------


async def approval_counts(tx: Tx, scope: DashboardScope, now: datetime) -> ApprovalCounts:
    mine = (
        await tx.session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE remind_at < :now) FROM approval_steps "
                "WHERE status = 'pending' AND (approver_id = :me OR delegate_id = :me)"
            ),
            {"me": scope.viewer_id, "now": now},
        )
    ).one()
    pending_in_scope = await tx.session.scalar(
        text("SELECT count(*) FROM approval_requests WHERE status = 'pending'" + scope.clause("requester_id")),
        scope.params(),
    )
    overdue_sql = (
        "SELECT count(*) FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
        "WHERE s.status = 'pending' AND s.remind_at < :now AND r.status = 'pending'" + scope.clause("r.requester_id")
    )
    overdue_in_scope = await tx.session.scalar(text(overdue_sql), {"now": now, **scope.params()})
    return ApprovalCounts(
        waiting_on_me=int(mine[0]),
        overdue_waiting_on_me=int(mine[1]),
        pending_in_scope=int(pending_in_scope or 0),
        overdue_in_scope=int(overdue_in_scope or 0),
    )


_ENTRY_COLUMNS = (
    "id, kind, owner_id, amount, currency, base_amount, category, description, entry_date, status, created_at"
)


async def recent_entries(tx: Tx, scope: DashboardScope, base: str) -> list[RecentEntry]:
    if scope.owner_ids is None:
        sql = f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY created_at DESC, id DESC LIMIT :n"
    else:
        # One short index range per owner, then the newest of those: fast for one person or a thousand.
        sql = (
            f"SELECT e.* FROM unnest(CAST(:owners AS bigint[])) AS o(id) CROSS JOIN LATERAL "
            f"(SELECT {_ENTRY_COLUMNS} FROM entries WHERE owner_id = o.id "
            "ORDER BY created_at DESC, id DESC LIMIT :n) e "
            "ORDER BY e.created_at DESC, e.id DESC LIMIT :n"
        )
    rows = await tx.session.execute(text(sql), {"n": RECENT_ENTRIES, **scope.params()})
    recent = []
    for row in rows:
        values = dict(row._mapping)
        values["amount"] = _money(values["amount"], values["currency"])
        if values["base_amount"] is not None:
            values["base_amount"] = _money(values["base_amount"], base)
        recent.append(RecentEntry.model_validate(values))
    return recent


async def current_budgets(
    tx: Tx, authorizer: Authorizer, viewer: User, scope: DashboardScope, base: str, today: date,
    limit: int = TOP_BUDGETS,
) -> list[BudgetUse]:  # fmt: skip
    """The current period of the budgets the viewer may see (`domain.budgets.service.scope_for`, from the owners the
    dashboard's scope has read), the most used first, at most `limit`: one statement."""
    if not authorizer.allows(viewer.role, "budget", "read"):
        return []
    budgets = await budget_scope_for(tx.sql, authorizer, viewer, scope.owner_ids)
    condition, params = budgets.where("b")
    rows = await tx.sql.all(
        "SELECT b.id, b.name, b.period_kind, p.starts_on, p.ends_on, p.amount, p.committed, p.actual "
        "FROM budgets b JOIN budget_periods p ON p.budget_id = b.id "
        f"WHERE p.starts_on <= %s AND p.ends_on > %s AND {condition} "
        "ORDER BY (p.committed + p.actual) / p.amount DESC, b.id LIMIT %s",
        (today, today, *params, limit),
        prepare=False,  # a team of one or of hundreds: plan for this list
    )
    found = []
    for budget_id, name, kind, starts_on, ends_on, amount, committed, actual in rows:
        period = BudgetPeriod(starts_on, ends_on)
        elapsed = elapsed_share(period, today)
        burn = burn_rate(actual, amount, elapsed)
        found.append(
            BudgetUse(
                id=budget_id,
                name=name,
                period=period.label(kind),
                starts_on=starts_on,
                ends_on=ends_on,
                amount=_money(amount, base),
                committed=_money(committed, base),
                actual=_money(actual, base),
                available=_money(amount - committed - actual, base),
                used_percent=float(share_percent(committed + actual, amount)),
                elapsed_percent=round(elapsed * 100, 2),
                burn=None if burn is None else float(burn),
            )
        )
    return found


async def _receivables_figures(
    tx: Tx, authorizer: Authorizer, viewer: User, invoices: ReceivablesScope, base: str, today: date, dso_days: int,
    period: tuple[date, date],
) -> dict[str, Any]:  # fmt: skip
    """The fields of a `ReceivablesSummary`: aging, DSO and the realized FX of `period` (inclusive days)."""
    aged = await accounts_receivable.aging(tx.sql, invoices, base, today)
    dso = await accounts_receivable.days_sales_outstanding(tx.sql, invoices, base, today, dso_days, aged.total)
    fx = await accounts_receivable.fx_realized(tx.sql, invoices, base, *period)
    return {
        "as_of": today,
        "scope": _label(authorizer, viewer, None if invoices.everyone else invoices.owner_ids),
        "open": aged.total,
        "open_invoices": aged.invoices,
        "overdue": aged.overdue,
        "overdue_invoices": aged.overdue_invoices,
        "aging": [AgingBucket(bucket=b.bucket, amount=b.amount, invoices=b.invoices) for b in aged.buckets],
        "dso": DaysSalesOutstanding(
            value=None if dso.value is None else format(dso.value, "f"),
            window_days=dso.days,
            window_start=dso.window_start,
            window_end=dso.window_end,
            receivables=dso.receivables,
            credit_sales=dso.credit_sales,
            formula=dso.formula,
        ),
        "fx_realized": FxRealized(
            start=fx.start,
            end=fx.end,
            gains=fx.gains,
            losses=fx.losses,
            net=fx.net,
            gain_payments=fx.gain_payments,
            loss_payments=fx.loss_payments,
        ),
    }


def _period_days(period: DashboardPeriod, today: date) -> tuple[date, date]:
    """The calendar period holding `today`, as its first and last days."""
    start = period_start(period, today)
    return start, date.fromordinal(add_months(start, PERIOD_MONTHS[period]).toordinal() - 1)


async def current_receivables(
    tx: Tx, authorizer: Authorizer, viewer: User, scope: DashboardScope, base: str, today: date, dso_days: int,
    period: DashboardPeriod,
) -> ReceivablesSummary | None:  # fmt: skip
    """The receivables of the invoices the viewer may see (`domain.invoices.receivables.scope_for`, from the owners
    the dashboard's scope has read); None for whoever may not read invoices."""
    invoices = await accounts_receivable.scope_for(tx.sql, authorizer, viewer, scope.owner_ids)
    if invoices is None:
        return None
    figures = await _receivables_figures(
        tx, authorizer, viewer, invoices, base, today, dso_days, _period_days(period, today)
    )
    return ReceivablesSummary(**figures)


async def receivables(
    tx: Tx, authorizer: Authorizer, viewer: User, period: DashboardPeriod, base: str, dso_days: int, now: datetime
) -> Receivables:
    """The receivables summary with the expected cash in by week; 403 for whoever may not read invoices."""
    invoices = await accounts_receivable.scope_for(tx.sql, authorizer, viewer)
    if invoices is None:
        raise Forbidden("your role may not read invoices")
    today = now.date()
    figures = await _receivables_figures(
        tx, authorizer, viewer, invoices, base, today, dso_days, _period_days(period, today)
    )
    cash = await accounts_receivable.expected_cash(tx.sql, invoices, base, today)
    weeks = [WeekCash(week=w.week, starts_on=w.starts_on, amount=w.amount, invoices=w.invoices) for w in cash.weeks]
    forecast = CashForecast(
        overdue=cash.overdue,
        overdue_invoices=cash.overdue_invoices,
        weeks=weeks,
        later=cash.later,
        later_invoices=cash.later_invoices,
    )
    return Receivables(**figures, period=period, base_currency=base, expected_cash=forecast)


async def overview(
    tx: Tx,
    authorizer: Authorizer,
    viewer: User,
    period: DashboardPeriod,
    base_currency: str,
    now: datetime,
    dso_days: int,
) -> Overview:
    """`dso_days`: the window of the receivables' days sales outstanding (RECEIVABLES_DSO_DAYS)."""
    scope = await scope_for(tx, authorizer, viewer)
    span = PERIOD_MONTHS[period]
    current_start = period_start(period, now.date())
    current_end = add_months(current_start, span)
    previous_start = add_months(current_start, -span)
    by_month = await _approved_by_month(tx, scope, previous_start, current_end, base_currency)
    current = _totals(current_start, current_end, by_month, base_currency)
    previous = _totals(previous_start, current_start, by_month, base_currency)
    return Overview(
        period=period,
        scope=scope.scope,
        base_currency=base_currency,
        current=current,
        current_by_currency=await currency_totals(tx, scope, current_start, current_end, base_currency),
        previous=previous,
        change_percent=ChangePercent(
            revenue=change_percent(current.revenue, previous.revenue),
            expenses=change_percent(current.expenses, previous.expenses),
            net=change_percent(current.net, previous.net),
        ),
        pending=await pending_amounts(tx, scope, base_currency),
        approvals=await approval_counts(tx, scope, now),
        recent_entries=await recent_entries(tx, scope, base_currency),
        budgets=await current_budgets(tx, authorizer, viewer, scope, base_currency, now.date()),
        receivables=await current_receivables(
            tx, authorizer, viewer, scope, base_currency, now.date(), dso_days, period
        ),
    )


# --- kpi --------------------------------------------------------------------------------------------


@dataclass
class Breakdown:
    by_month: dict[tuple[date, str], Decimal]
    categories: list[CategorySpend]
    spenders: list[tuple[int, Decimal, int]]  # owner id, amount, entries


async def _approved_breakdown(tx: Tx, scope: DashboardScope, start: date, end: date, base: str) -> Breakdown:
    """Approved amounts in the window by month, and expenses by owner (per-owner totals, no category), and expenses
    by category (organisation-wide category totals for everyone, per-owner category rows for a subtree)."""
    window = "status = 'approved' AND month >= :start AND month < :end"
    params = {"start": start, "end": end, **scope.params()}
    rows = await tx.session.execute(
        text(
            "SELECT t.month, t.kind, t.owner_id, GROUPING(t.month), sum(t.entry_count), sum(t.amount_total) FROM "
            + scope.totals(window)
            + " GROUP BY GROUPING SETS ((t.month, t.kind), (t.kind, t.owner_id))"
        ),
        params,
    )
    result = Breakdown({}, [], [])
    for month, kind, owner_id, no_month, count, amount in rows:
        if not no_month:
            result.by_month[(month, kind)] = _money(amount, base)
        elif kind == "expense":
            result.spenders.append((int(owner_id), _money(amount, base), int(count)))
    if scope.owner_ids is None:
        categories_from = f"dashboard_category_totals t WHERE {window} AND kind = 'expense'"
    else:
        categories_from = scope.totals(f"{window} AND kind = 'expense'", "dashboard_entry_totals")
    rows = await tx.session.execute(
        text(f"SELECT t.category, sum(t.entry_count), sum(t.amount_total) FROM {categories_from} GROUP BY t.category"),
        params,
    )
    result.categories = [
        CategorySpend(category=category, amount=_money(amount, base), entries=int(count))
        for category, count, amount in rows
    ]
    result.categories.sort(key=lambda c: (-c.amount, c.category))
    result.spenders.sort(key=lambda o: (-o[1], o[0]))
    result.categories, result.spenders = result.categories[:TOP_N], result.spenders[:TOP_N]
    return result


async def _top_spenders(tx: Tx, owners: list[tuple[int, Decimal, int]]) -> list[Spender]:
    names = dict(
        (await tx.session.execute(select(User.id, User.full_name).where(User.id.in_([o[0] for o in owners]))))
        .tuples()
        .all()
    )
    return [Spender(user_id=o, full_name=names.get(o, ""), amount=a, entries=n) for o, a, n in owners]


# Organisation-wide decided requests: counts from the maintained histogram `dashboard_approval_decisions`, and the
# exact percentile_disc values (rank k = max(1, ceil(p * n)) in cycle order) from the bucket holding rank k plus one
# short sorted range of `ix_approval_requests_cycle_bucket`. One statement, so one snapshot for counts and ranks.
_DECIDED_EVERYONE = """
WITH d AS (
    SELECT status, bucket, sum(requests) AS n FROM dashboard_approval_decisions
    WHERE month >= :start AND month < :end GROUP BY status, bucket
), totals AS (
    SELECT coalesce(sum(n) FILTER (WHERE status = 'approved'), 0) AS approved,
           coalesce(sum(n) FILTER (WHERE status = 'rejected'), 0) AS rejected,
           coalesce(sum(n) FILTER (WHERE bucket >= 0), 0) AS timed
    FROM d
), buckets AS (
    SELECT bucket, sum(n) AS n FROM d WHERE bucket >= 0 GROUP BY bucket
), ranked AS (
    SELECT bucket, n, sum(n) OVER (ORDER BY bucket) - n AS before FROM buckets
), picks AS (
    SELECT p, ranked.bucket, k - ranked.before - 1 AS skip
    FROM totals, unnest(CAST(:fractions AS float8[])) AS p,
         LATERAL (SELECT greatest(1, ceil(p * totals.timed)) AS k) AS wanted
    JOIN ranked ON wanted.k > ranked.before AND wanted.k <= ranked.before + ranked.n
    WHERE totals.timed > 0
)
SELECT totals.approved, totals.rejected, totals.timed,
    ARRAY(
        SELECT (
            SELECT date_part('epoch', r.decided_at - r.submitted_at) AS seconds FROM approval_requests r
            WHERE r.status IN ('approved', 'rejected') AND r.submitted_at IS NOT NULL
              AND dashboard_cycle_bucket(r.decided_at - r.submitted_at) = picks.bucket
              AND r.decided_at >= :start_at AND r.decided_at < :end_at
            ORDER BY seconds OFFSET picks.skip LIMIT 1
        ) FROM picks ORDER BY picks.p
    )
FROM totals
"""

# A subtree's or one person's decided requests: straight from the per-requester index (tens of thousands of rows at
# most), sorted as float8 (fast comparisons; numeric and interval sort slowly).
_DECIDED_SCOPED = """
SELECT count(*) FILTER (WHERE status = 'approved'), count(*) FILTER (WHERE status = 'rejected'),
    count(*) FILTER (WHERE submitted_at IS NOT NULL),
    percentile_disc(CAST(:fractions AS float8[])) WITHIN GROUP (ORDER BY date_part('epoch', decided_at - submitted_at))
        FILTER (WHERE submitted_at IS NOT NULL)
FROM approval_requests WHERE status IN ('approved', 'rejected') AND decided_at >= :start_at AND decided_at < :end_at
    AND requester_id = ANY(CAST(:owners AS bigint[]))
"""


async def _approval_stats(tx: Tx, scope: DashboardScope, start: date, end: date) -> tuple[CycleTime, ApprovalRate, int]:
    """Cycle time (median and 90th percentile, exact), approval rate and escalations of requests decided (steps
    escalated) in the whole UTC months [start, end)."""
    params = {
        "start": start,
        "end": end,
        "start_at": _instant(start),
        "end_at": _instant(end),
        "fractions": [0.5, 0.9],
        **scope.params(),
    }
    sql = _DECIDED_EVERYONE if scope.owner_ids is None else _DECIDED_SCOPED
    row = (await tx.session.execute(text(sql), params)).one()
    approved, rejected, timed, percentiles = int(row[0]), int(row[1]), int(row[2]), row[3]
    # Reported in whole seconds (rounding is monotonic, so it commutes with taking the k-th value).
    median, p90 = (round(percentiles[0]), round(percentiles[1])) if percentiles else (None, None)
    cycle = CycleTime(
        decided=timed,
        median_seconds=median,
        p90_seconds=p90,
        median_hours=None if median is None else round(median / 3600, 2),
        p90_hours=None if p90 is None else round(p90 / 3600, 2),
    )
    decided = approved + rejected
    rate = ApprovalRate(
        approved=approved,
        rejected=rejected,
        rate=str((Decimal(approved) / decided).quantize(Decimal("0.0001"))) if decided else None,
    )
    # Per requester and month, kept by a trigger on approval_steps: a few rows per person, however many steps were
    # escalated (counting the escalated steps themselves grew with the data: 125 ms at 10,000,000 entries).
    escalation_sql = (
        "SELECT sum(escalations) FROM dashboard_escalations WHERE month >= :start AND month < :end"
        + scope.clause("requester_id")
    )
    escalations = await tx.session.scalar(text(escalation_sql), params)
    return cycle, rate, int(escalations or 0)


async def kpi(tx: Tx, authorizer: Authorizer, viewer: User, months: int, base_currency: str, now: datetime) -> Kpi:
    scope = await scope_for(tx, authorizer, viewer)
    end = add_months(now.date(), 1)
    start = add_months(end, -months)
    breakdown = await _approved_breakdown(tx, scope, start, end, base_currency)
    by_month = breakdown.by_month
    series: list[MonthTotals] = []
    for offset in range(months):
        month = add_months(start, offset)
        revenue = by_month.get((month, "revenue"), _money(0, base_currency))
        expenses = by_month.get((month, "expense"), _money(0, base_currency))
        series.append(
            MonthTotals(month=month.strftime("%Y-%m"), revenue=revenue, expenses=expenses, net=revenue - expenses)
        )
    # By permission, not by the size of the scope: a manager with no reports yet still gets the (short) list.
    show_spenders = sees_team_figures(authorizer, viewer)
    cycle, rate, escalations = await _approval_stats(tx, scope, start, end)
    charts = [
        money_by_month(series),
        Chart(
            title="Top expense categories",
            labels=[c.category for c in breakdown.categories],
            series=[plot_series("amount", Unit.MONEY, [c.amount for c in breakdown.categories])],
        ),
    ]
    return Kpi(
        months=months,
        scope=scope.scope,
        base_currency=base_currency,
        start=start,
        end=date.fromordinal(end.toordinal() - 1),
        series=series,
        totals=_totals(start, end, by_month, base_currency),
        pending=await pending_amounts(tx, scope, base_currency),
        top_categories=breakdown.categories,
        top_spenders=await _top_spenders(tx, breakdown.spenders) if show_spenders else None,
        approval_cycle_time=cycle,
        approval_rate=rate,
        escalations=escalations,
        charts=charts,
    )
