"""What each report type counts: its columns, its rows (streamed in batches), its totals and its chart.

Amounts count approved entries only (the ledger lists every entry and totals the approved ones). Money is
`Decimal` from NUMERIC columns all the way to the renderers. The data is limited to the scope decided when the
report was requested (`Visibility.as_scope()`), narrowed further by the report's filters.

Every amount added up is an entry's base amount (`base_amount`, locked at submit), never its original: originals in
different currencies do not add. A report may be presented in another currency: each entry's base amount is then
converted at the rate of its own locked rate date (`Presentation`), rounded half-up per entry, and those add up.
Reports that total money also carry a "By currency" section: per currency (and kind) the count, the originals'
total, the base total (and the presented total).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Date,
    Numeric,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.selectable import TableValuedAlias

from core.db import Tx
from domain.budgets.periods import Period as BudgetPeriod
from domain.budgets.periods import elapsed_share
from domain.budgets.progress import budget_status, burn_rate, share_percent
from domain.budgets.service import Scope as BudgetScope
from domain.errors import ValidationFailed
from domain.fx.rates import Source, rates_on
from domain.invoices.receivables import BUCKETS, OpenInvoices, ReceivablesScope, fx_realized
from domain.models import AnalyticsStepCycle, ApprovalRequest, ApprovalStep, Entry, EntryKind, EntryStatus, User
from domain.money import CENT, in_minor_units, minor_units
from domain.reports.schemas import ReportFilters, ReportType

Cell = str | int | Decimal | date | None
_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
Row = tuple[Cell, ...]

APPROVED_BASIS = "Amounts count approved entries only."
LEDGER_BASIS = "Every entry in the period is listed; the totals count approved entries only."
AGING_BASIS = (
    "Cycle time is the time from a step's creation to its decision, in hours; pending age is measured at "
    "generation time."
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # text | money (in `currency`, printed to its minor units) | amount (an original, already in its own
    # currency's minor units: printed as it is) | int | date | month | hours | percent | ratio
    kind: str = "text"
    width: float = 1.0  # relative width in the PDF (fixed table layout)
    currency: str | None = None  # a money column's currency

    @property
    def numeric(self) -> bool:
        return self.kind in {"money", "amount", "int", "hours", "percent", "ratio"}


@dataclass
class Section:
    """A second, small table of a report (the "By currency" subtotals): its own columns, rows and totals."""

    title: str
    columns: list[Column]
    rows: list[Row]
    totals: list[Row]


_SOURCE_NAMES = {Source.ECB: "ECB", Source.MANUAL: "manual", Source.BASE: "base"}


@dataclass(frozen=True)
class Presentation:
    """The currency a report's amounts are shown in: the base currency, or another one converted from base at each
    entry's locked rate date (`rates`: units of `currency` per unit of `base`, by rate date)."""

    base: str
    currency: str
    rates: dict[date, Decimal] = field(default_factory=dict)
    sources: frozenset[str] = frozenset()

    @property
    def converting(self) -> bool:
        return self.currency != self.base

    @property
    def places(self) -> int:
        return minor_units(self.currency) or 0

    def note(self) -> str:
        """What the report's amounts are, printed in its header."""
        if not self.converting:
            return (
                f"Amounts in {self.base}, the base currency; an entry in another currency counts at the rate locked "
                "when it was submitted."
            )
        names = "/".join(sorted(_SOURCE_NAMES.get(source, source) for source in self.sources)) or "no"
        return (
            f"Amounts in {self.currency}, converted from {self.base} at each entry's rate date ({names} rates); "
            f"originals and {self.base} amounts as locked when each entry was submitted."
        )


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: list[tuple[str, list[Decimal]]]
    more: list[Chart] = field(default_factory=list)  # drawn below it in the PDF (the other formats keep the first)


# Where a budget report's scope keeps the budgets its requester may see, beside the entries' scope.
BUDGETS_KEY = "budgets"


def budget_scope_dict(budgets: BudgetScope) -> dict[str, Any]:
    """The JSON form of a budget scope (its viewer is the report's `viewer_id`)."""
    return {"everyone": budgets.everyone, "team_ids": list(budgets.team_ids)}


@dataclass(frozen=True)
class ReportScope:
    """The scope carried from request time: everyone, or a fixed set of owners; for a budget report also the
    budgets its requester may see (`domain.budgets.service.Scope`, decided at request time like the owners)."""

    everyone: bool
    owner_ids: tuple[int, ...] = ()
    viewer_id: int | None = None
    budgets: BudgetScope | None = None

    @classmethod
    def from_dict(cls, scope: dict[str, Any], *, budget_report: bool = False) -> ReportScope:
        viewer = scope.get("viewer_id")
        viewer_id = int(viewer) if viewer is not None else None
        budgets = _budget_scope(scope, viewer_id) if budget_report else None
        if scope.get("kind") == "all":
            return cls(True, (), viewer_id, budgets)
        owners = tuple(sorted(int(owner) for owner in scope.get("owner_ids", [])))
        return cls(False, owners, viewer_id, budgets)

    def owner_filter(
        self, column: ColumnElement[int] | InstrumentedAttribute[int], wanted: Sequence[int] = ()
    ) -> ColumnElement[bool]:
        """Restrict `column` to the scope, and to `wanted` owners when the filters name some."""
        if wanted:
            allowed = sorted(set(wanted) if self.everyone else set(wanted) & set(self.owner_ids))
            return column.in_(allowed)
        if self.everyone:
            return true()
        return column.in_(list(self.owner_ids))

    def allows_all(self, owner_ids: Sequence[int]) -> bool:
        return self.everyone or set(owner_ids) <= set(self.owner_ids)

    def budget_scope(self) -> BudgetScope:
        """The budgets this report may show (none but the viewer's own when no budget scope was carried)."""
        return self.budgets or BudgetScope(self.viewer_id or 0, False, ())


def _budget_scope(scope: dict[str, Any], viewer_id: int | None) -> BudgetScope:
    """A budget report's stored budget scope. A scheduled report (organisation-wide, `kind` all) carries none and
    sees every budget; any other report without one sees only budgets its requester owns (no user has id 0)."""
    viewer = viewer_id if viewer_id is not None else 0
    stored = scope.get(BUDGETS_KEY)
    if isinstance(stored, dict):
        teams = tuple(sorted(int(team) for team in stored.get("team_ids", [])))
        return BudgetScope(viewer, bool(stored.get("everyone")), teams)
    return BudgetScope(viewer, scope.get("kind") == "all", ())


@dataclass(frozen=True)
class ReportQuery:
    type: ReportType
    period_from: date
    period_to: date
    scope: ReportScope
    filters: ReportFilters = field(default_factory=ReportFilters)
    timezone: str = "UTC"
    base_currency: str = "USD"
    presentation_currency: str | None = None  # None: the base currency
    max_stale_days: int = 7  # how old a rate may be on an entry's rate date (FX_MAX_STALE_DAYS)
    as_of: date | None = None  # the day a budget period's elapsed share is measured on; None: today, at generation

    def today(self) -> date:
        """`as_of`, or today in the report's time zone (the generation date)."""
        return self.as_of or datetime.now(ZoneInfo(self.timezone)).date()

    @property
    def presented(self) -> str:
        return self.presentation_currency or self.base_currency

    def period_bounds(self) -> tuple[datetime, datetime]:
        """The period as [start, end) instants in the report's time zone (for timestamp columns)."""
        zone = ZoneInfo(self.timezone)
        start = datetime.combine(self.period_from, datetime.min.time(), zone)
        end = datetime.combine(self.period_to + timedelta(days=1), datetime.min.time(), zone)
        return start, end


class Dataset(ABC):
    """Columns, rows in batches, then (once the rows are exhausted) totals, a chart and sections.

    `columns` on the class are the report's shape in the base currency; an instance's columns say the currency its
    money is in. Call `prepare` before the rows: it finds the conversion rates when the report is presented in
    another currency (and refuses the report when one is missing)."""

    basis = APPROVED_BASIS
    counts_money = True
    money_kind: str | None = None  # the kind of entries counted (None: both)
    subject = "entries"  # what the report lists, for the description of its scope
    title: str | None = None  # the report's title when not its type's (a report template's name)

    def __init__(self, query: ReportQuery) -> None:
        self.query = query
        self.totals: list[Row] = []
        self.chart: Chart | None = None
        self.sections: list[Section] = []
        self.presentation = Presentation(query.base_currency, query.presented)
        self._rates: TableValuedAlias | None = None
        self.columns = self.columns_for(self.presentation)

    columns: list[Column] = []

    def columns_for(self, presentation: Presentation) -> list[Column]:
        return [replace(c, currency=presentation.currency) if c.kind == "money" else c for c in type(self).columns]

    @abstractmethod
    def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        """The report's rows, a batch at a time (an async generator)."""

    def counted_conditions(self) -> list[ColumnElement[bool]]:
        """The entries whose amounts the report adds up."""
        return self.entry_conditions(self.money_kind)

    def shown_conditions(self) -> list[ColumnElement[bool]]:
        """The entries whose amounts the report shows (the ledger lists more than it counts)."""
        return self.counted_conditions()

    async def prepare(self, tx: Tx) -> None:
        """Find the rate for each rate date of the entries shown (one query), when presenting in another currency:
        422 naming the rate dates without one."""
        presentation = self.presentation
        if not self.counts_money or not presentation.converting:
            return
        days = list(
            await tx.session.scalars(
                select(Entry.rate_date)
                .where(*self.shown_conditions(), Entry.rate_date.is_not(None))
                .distinct()
                .order_by(Entry.rate_date)
            )
        )
        wanted = {(presentation.base, presentation.currency, day) for day in days if day is not None}
        found = await rates_on(tx.sql, wanted, self.query.max_stale_days)
        missing = [
            day for day in days if day is not None and (presentation.base, presentation.currency, day) not in found
        ]
        if missing:
            shown = ", ".join(day.isoformat() for day in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise ValidationFailed(
                f"no exchange rate from {presentation.base} to {presentation.currency} for the rate date(s) {shown} "
                f"(or up to {self.query.max_stale_days} days before): import the ECB rates, or add a manual rate",
                field="presentation_currency",
                reason="rate_missing",
                missing_dates=[day.isoformat() for day in missing],
            )
        rates = {day: found[(presentation.base, presentation.currency, day)] for day in days if day is not None}
        self.presentation = replace(
            presentation,
            rates={day: rate.rate for day, rate in rates.items()},
            sources=frozenset(rate.source for rate in rates.values()),
        )
        self._rates = (
            func.unnest(
                bindparam("fx_days", list(rates), type_=ARRAY(Date)),
                bindparam("fx_rates", [rate.rate for rate in rates.values()], type_=ARRAY(Numeric(28, 12))),
            )
            .table_valued("day", "rate")
            .render_derived(name="fx_rate")
        )

    def presented_amount(self) -> ColumnElement[Decimal]:
        """An entry's amount in the presentation currency: its base amount, or that converted at its rate date and
        rounded half-up to the currency's minor units (amounts are positive: round() is half-up)."""
        if self._rates is None:
            return Entry.base_amount  # type: ignore[return-value]
        return func.round(Entry.base_amount * self._rates.c.rate, self.presentation.places)

    def with_rates(self, statement: _S) -> _S:
        """The statement joined to the rates `presented_amount` reads (when converting)."""
        if self._rates is None:
            return statement
        return statement.outerjoin(self._rates, self._rates.c.day == Entry.rate_date)

    async def currency_section(self, tx: Tx) -> Section:
        """Per currency and kind of the entries counted: how many, the originals' total, the base total (and the
        presented total)."""
        presentation = self.presentation
        presented = func.sum(self.presented_amount())
        statement = self.with_rates(
            select(
                Entry.currency, Entry.kind, func.count(), func.sum(Entry.amount), func.sum(Entry.base_amount), presented
            )
            .where(*self.counted_conditions())
            .group_by(Entry.currency, Entry.kind)
            .order_by(Entry.kind.desc(), Entry.currency)
        )
        columns = [
            Column("currency", "Currency", "text", 1.0),
            Column("kind", "Kind", "text", 1.0),
            Column("entries", "Entries", "int", 1.0),
            Column("original_total", "Original total", "amount", 1.5),
            Column("base_total", f"Total in {presentation.base}", "money", 1.5, presentation.base),
        ]
        if presentation.converting:
            columns.append(
                Column("presented_total", f"Total in {presentation.currency}", "money", 1.5, presentation.currency)
            )
        rows: list[Row] = []
        for currency, kind, n, original, base, converted in (await tx.session.execute(statement)).all():
            row: Row = (currency, kind, int(n), in_minor_units(original, currency), base)
            rows.append((*row, converted) if presentation.converting else row)
        # No grand total: revenue and expenses do not add, and the report's own totals give each kind's.
        totals: list[Row] = []
        return Section("By currency", columns, rows, totals)

    # shared WHERE clauses for entry-based reports
    def entry_conditions(self, kind: str | None, approved_only: bool = True) -> list[ColumnElement[bool]]:
        q = self.query
        conditions: list[ColumnElement[bool]] = [
            Entry.entry_date >= q.period_from,
            Entry.entry_date <= q.period_to,
            q.scope.owner_filter(Entry.owner_id, q.filters.owner_ids),
        ]
        if kind is not None:
            conditions.append(Entry.kind == kind)
        if approved_only:
            conditions.append(Entry.status == EntryStatus.APPROVED.value)
        if q.filters.categories:
            conditions.append(Entry.category.in_(q.filters.categories))
        return conditions


def _months(start: date, end: date) -> list[date]:
    months = []
    current = start.replace(day=1)
    while current <= end:
        months.append(current)
        current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return months


def _sum(values: Sequence[Decimal]) -> Decimal:
    return sum(values, Decimal("0.00"))


class SummaryDataset(Dataset):
    """An aggregate report: few rows, computed in one query and handed out in batches."""

    async def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        rows = await self.all_rows(tx)
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]

    @abstractmethod
    async def all_rows(self, tx: Tx) -> list[Row]:
        """Every row of the report."""


class ProfitAndLoss(SummaryDataset):
    columns = [
        Column("month", "Month", "month", 1.0),
        Column("revenue", "Revenue", "money", 1.5),
        Column("expenses", "Expenses", "money", 1.5),
        Column("net", "Net", "money", 1.5),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        month = cast(func.date_trunc("month", Entry.entry_date), Date)
        statement = self.with_rates(
            select(month, Entry.kind, func.sum(self.presented_amount()))
            .where(*self.counted_conditions())
            .group_by(month, Entry.kind)
        )
        sums: dict[tuple[date, str], Decimal] = {}
        for row_month, kind, amount in (await tx.session.execute(statement)).all():
            sums[(row_month, kind)] = amount
        rows: list[Row] = []
        revenue_series: list[Decimal] = []
        expense_series: list[Decimal] = []
        for first in _months(self.query.period_from, self.query.period_to):
            revenue = sums.get((first, EntryKind.REVENUE.value), Decimal("0.00"))
            expenses = sums.get((first, EntryKind.EXPENSE.value), Decimal("0.00"))
            rows.append((first, revenue, expenses, revenue - expenses))
            revenue_series.append(revenue)
            expense_series.append(expenses)
        total_revenue, total_expenses = _sum(revenue_series), _sum(expense_series)
        self.totals = [("Total", total_revenue, total_expenses, total_revenue - total_expenses)]
        self.chart = Chart(
            "Revenue and expenses by month",
            [first.strftime("%Y-%m") for first in _months(self.query.period_from, self.query.period_to)],
            [("Revenue", revenue_series), ("Expenses", expense_series)],
        )
        self.sections = [await self.currency_section(tx)]
        return rows


class ExpensesByCategory(SummaryDataset):
    money_kind = EntryKind.EXPENSE.value
    columns = [
        Column("category", "Category", "text", 3.0),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
        Column("share", "Share %", "percent", 1.0),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        amount = func.sum(self.presented_amount())
        statement = self.with_rates(
            select(Entry.category, func.count(), amount)
            .where(*self.counted_conditions())
            .group_by(Entry.category)
            .order_by(amount.desc(), Entry.category)
        )
        found = (await tx.session.execute(statement)).all()
        total = _sum([row[2] for row in found])
        count = sum(int(row[1]) for row in found)
        rows: list[Row] = [(category, int(n), value, _share(value, total)) for category, n, value in found]
        self.totals = [("Total", count, total, Decimal("100.00") if total else Decimal("0.00"))]
        self.chart = Chart("Expenses by category", [str(r[0]) for r in found], [("Expenses", [r[2] for r in found])])
        self.sections = [await self.currency_section(tx)]
        return rows


def _share(value: Decimal, total: Decimal) -> Decimal:
    if not total:
        return Decimal("0.00")
    return (value * 100 / total).quantize(CENT)


class ExpensesByOwner(SummaryDataset):
    money_kind = EntryKind.EXPENSE.value
    columns = [
        Column("owner", "Owner", "text", 2.5),
        Column("username", "Username", "text", 1.5),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        amount = func.sum(self.presented_amount())
        statement = self.with_rates(
            select(User.full_name, User.username, func.count(Entry.id), amount)
            .join(User, User.id == Entry.owner_id)
            .where(*self.counted_conditions())
            .group_by(User.id, User.full_name, User.username)
            .order_by(amount.desc(), User.username)
        )
        found = (await tx.session.execute(statement)).all()
        rows: list[Row] = [(name, username, int(n), value) for name, username, n, value in found]
        self.totals = [("Total", "", sum(int(r[2]) for r in found), _sum([r[3] for r in found]))]
        self.chart = Chart("Expenses by owner", [str(r[1]) for r in found], [("Expenses", [r[3] for r in found])])
        self.sections = [await self.currency_section(tx)]
        return rows


class RevenueByCategory(SummaryDataset):
    money_kind = EntryKind.REVENUE.value
    columns = [
        Column("category", "Category", "text", 2.0),
        Column("source", "Source", "text", 2.0),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        source = func.coalesce(Entry.source, "")
        statement = self.with_rates(
            select(Entry.category, source, func.count(), func.sum(self.presented_amount()))
            .where(*self.counted_conditions())
            .group_by(Entry.category, source)
            .order_by(Entry.category, source)
        )
        found = (await tx.session.execute(statement)).all()
        rows: list[Row] = [(category, src, int(n), value) for category, src, n, value in found]
        by_category: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for category, _src, _n, value in found:
            by_category[category] += value
        self.totals = [("Total", "", sum(int(r[2]) for r in found), _sum([r[3] for r in found]))]
        self.chart = Chart("Revenue by category", list(by_category), [("Revenue", list(by_category.values()))])
        self.sections = [await self.currency_section(tx)]
        return rows


class ApprovalAging(SummaryDataset):
    basis = AGING_BASIS
    counts_money = False
    columns = [
        Column("level", "Step level", "int", 1.0),
        Column("steps", "Steps", "int", 1.0),
        Column("decided", "Decided", "int", 1.0),
        Column("median_hours", "Median hours", "hours", 1.2),
        Column("p90_hours", "90th pct hours", "hours", 1.2),
        Column("pending", "Pending", "int", 1.0),
        Column("oldest_pending_hours", "Oldest pending hours", "hours", 1.4),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        start, end = self.query.period_bounds()
        cycle = ApprovalStep.decided_at - ApprovalStep.created_at
        decided = ApprovalStep.decided_at.is_not(None)
        pending = ApprovalStep.status == "pending"

        def hours(interval: Any) -> Any:
            return func.round(func.extract("epoch", interval) / 3600, 2)

        statement: Select[Any] = (
            select(
                ApprovalStep.level,
                func.grouping(ApprovalStep.level),
                func.count(),
                func.count().filter(decided),
                hours(func.percentile_cont(0.5).within_group(cycle).filter(decided)),
                hours(func.percentile_cont(0.9).within_group(cycle).filter(decided)),
                func.count().filter(pending),
                hours(func.max(func.now() - ApprovalStep.created_at).filter(pending)),
            )
            .join(ApprovalRequest, ApprovalRequest.id == ApprovalStep.request_id)
            .where(
                ApprovalStep.created_at >= start,
                ApprovalStep.created_at < end,
                self.query.scope.owner_filter(ApprovalRequest.requester_id, self.query.filters.owner_ids),
            )
            .group_by(func.rollup(ApprovalStep.level))
            .order_by(func.grouping(ApprovalStep.level), ApprovalStep.level)
        )
        rows: list[Row] = []
        self.totals = [("All levels", 0, 0, None, None, 0, None)]
        for level, grouped, steps, n_decided, median, p90, n_pending, oldest in (
            await tx.session.execute(statement)
        ).all():
            values = (int(steps), int(n_decided), _hours(median), _hours(p90), int(n_pending), _hours(oldest))
            if grouped:
                self.totals = [("All levels", *values)]
            else:
                rows.append((int(level), *values))
        self.chart = Chart(
            "Cycle time per step level (hours)",
            [f"Level {row[0]}" for row in rows],
            [
                ("Median", [row[3] or Decimal("0") for row in rows]),  # type: ignore[misc]
                ("90th percentile", [row[4] or Decimal("0") for row in rows]),  # type: ignore[misc]
            ],
            more=[await self._sla_chart(tx, start, end)],
        )
        return rows

    async def _sla_chart(self, tx: Tx, start: datetime, end: datetime) -> Chart:
        """The analytics' step facts (migration 0017) closed in the period: per level, the steps closed, those closed
        after their reminder time (SLA breaches) and the escalations, on requests in the report's scope."""
        facts = AnalyticsStepCycle
        statement = (
            select(
                facts.level,
                func.count(),
                func.count().filter(facts.breached),
                func.count().filter(facts.status == "escalated"),
            )
            .where(
                facts.closed_at >= start,
                facts.closed_at < end,
                self.query.scope.owner_filter(facts.requester_id, self.query.filters.owner_ids),
            )
            .group_by(facts.level)
            .order_by(facts.level)
        )
        found = (await tx.session.execute(statement)).all()
        return Chart(
            "Approval steps closed, SLA breaches and escalations per step level",
            [f"Level {level}" for level, *_ in found],
            [
                ("Closed", [Decimal(row[1]) for row in found]),
                ("SLA breaches", [Decimal(row[2]) for row in found]),
                ("Escalations", [Decimal(row[3]) for row in found]),
            ],
        )


def _hours(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


class Ledger(Dataset):
    """Every entry in the period, streamed from a server-side cursor, with its approval trail."""

    basis = LEDGER_BASIS
    columns = [
        Column("id", "ID", "int", 0.8),
        Column("date", "Date", "date", 1.1),
        Column("kind", "Kind", "text", 0.9),
        Column("category", "Category", "text", 1.3),
        Column("counterparty", "Source / vendor", "text", 1.4),
        Column("description", "Description", "text", 2.0),
        Column("owner", "Owner", "text", 1.1),
        Column("status", "Status", "text", 1.1),
        Column("amount", "Amount", "amount", 1.2),
        Column("currency", "Currency", "text", 0.8),
        Column("base_amount", "Base amount", "money", 1.2),
        Column("approval_trail", "Approval trail", "text", 3.0),
    ]
    AMOUNT, CURRENCY, BASE = 8, 9, 10  # positions in a row

    def columns_for(self, presentation: Presentation) -> list[Column]:
        """The original (amount and currency) and the base amount; when presented in another currency, that too."""
        columns = list(type(self).columns)
        columns[self.BASE] = replace(
            columns[self.BASE], label=f"Amount in {presentation.base}", currency=presentation.base
        )
        if presentation.converting:
            presented = Column("presented_amount", f"Amount in {presentation.currency}", "money", 1.2)
            columns.insert(self.BASE + 1, replace(presented, currency=presentation.currency))
        return columns

    def counted_conditions(self) -> list[ColumnElement[bool]]:
        return self.entry_conditions(self.query.filters.kind)

    def shown_conditions(self) -> list[ColumnElement[bool]]:
        return self.entry_conditions(self.query.filters.kind, approved_only=False)

    def statement(self) -> Select[*tuple[Any, ...]]:
        approver = aliased(User)
        decider = aliased(User)
        request_id = func.coalesce(
            Entry.approval_request_id,
            select(ApprovalRequest.id).where(ApprovalRequest.entry_id == Entry.id).limit(1).scalar_subquery(),
        )
        step_text = case(
            (
                ApprovalStep.decided_at.is_not(None),
                func.concat_ws(
                    " ",
                    func.concat("L", ApprovalStep.level),
                    ApprovalStep.status,
                    "by",
                    func.coalesce(decider.username, approver.username),
                    case(
                        (
                            and_(
                                ApprovalStep.decided_by_id.is_not(None),
                                ApprovalStep.decided_by_id != ApprovalStep.approver_id,
                            ),
                            func.concat("for ", approver.username),
                        )
                    ),
                    "on",
                    func.to_char(ApprovalStep.decided_at, "YYYY-MM-DD"),
                ),
            ),
            else_=func.concat_ws(
                " ", func.concat("L", ApprovalStep.level), ApprovalStep.status, "with", approver.username
            ),
        )
        trail = (
            select(func.string_agg(step_text, aggregate_order_by(literal_column("'; '"), ApprovalStep.sequence)))
            .select_from(ApprovalStep)
            .join(approver, approver.id == ApprovalStep.approver_id)
            .outerjoin(decider, decider.id == ApprovalStep.decided_by_id)
            .where(ApprovalStep.request_id == request_id)
            .correlate(Entry)
            .scalar_subquery()
        )
        amounts: list[ColumnElement[Any]] = [Entry.amount, Entry.currency, Entry.base_amount]  # type: ignore[list-item]
        if self.presentation.converting:
            amounts.append(self.presented_amount())
        return self.with_rates(
            select(
                Entry.id,
                Entry.entry_date,
                Entry.kind,
                Entry.category,
                func.coalesce(Entry.source, Entry.vendor, ""),
                Entry.description,
                User.username,
                Entry.status,
                *amounts,
                func.coalesce(trail, ""),
            )
            .join(User, User.id == Entry.owner_id)
            .where(*self.shown_conditions())
            .order_by(Entry.entry_date, Entry.id)
        )

    async def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        amount_at, currency_at, base_at = self.AMOUNT, self.CURRENCY, self.BASE
        counted_at = base_at + 1 if self.presentation.converting else base_at  # the amount the totals add
        zero = Decimal("0")
        revenue = [zero, zero]  # base, presented
        expenses = [zero, zero]
        monthly: dict[date, list[Decimal]] = {first: [zero, zero] for first in self._months()}
        result = await tx.session.stream(self.statement().execution_options(yield_per=batch_size))
        async for partition in result.partitions(batch_size):
            batch: list[Row] = []
            for row in partition:
                # The original as its currency writes it (NUMERIC(19, 4) keeps four places: JPY 1250, not 1250.0000).
                values: Row = (*row[:amount_at], in_minor_units(row[amount_at], row[currency_at]), *row[currency_at:])
                batch.append(values)
                if row[7] == EntryStatus.APPROVED.value:
                    bucket = monthly.setdefault(row[1].replace(day=1), [zero, zero])
                    counted = row[counted_at]
                    if row[2] == EntryKind.REVENUE.value:
                        revenue[0] += row[base_at]
                        revenue[1] += counted
                        bucket[0] += counted
                    else:
                        expenses[0] += row[base_at]
                        expenses[1] += counted
                        bucket[1] += counted
            yield batch
        blank: tuple[None, ...] = (None,) * (base_at - 1)
        trail: tuple[None, ...] = (None,)

        def total(label: str, base: Decimal, presented: Decimal) -> Row:
            money: Row = (base, presented) if self.presentation.converting else (base,)
            return (label, *blank, *money, *trail)

        self.totals = [
            total("Approved revenue", revenue[0], revenue[1]),
            total("Approved expenses", expenses[0], expenses[1]),
            total("Net (approved)", revenue[0] - expenses[0], revenue[1] - expenses[1]),
        ]
        months = sorted(monthly)
        self.chart = Chart(
            "Approved revenue and expenses by month",
            [first.strftime("%Y-%m") for first in months],
            [("Revenue", [monthly[m][0] for m in months]), ("Expenses", [monthly[m][1] for m in months])],
        )
        self.sections = [await self.currency_section(tx)]

    def _months(self) -> list[date]:
        return _months(self.query.period_from, self.query.period_to)


BUDGET_CHART_BUDGETS = 12  # the chart shows the budgets with the largest amounts in the period


class BudgetVsActual(SummaryDataset):
    """Each budget period overlapping the report's period, among the budgets its requester may see: the amount,
    what is committed and spent, what is left, and how spending runs against the time gone by."""

    counts_money = False  # budget sums are kept in the base currency: nothing to convert
    columns = [
        Column("budget", "Budget", "text", 2.0),
        Column("team_manager", "Team manager", "text", 1.6),
        Column("team_manager_id", "Manager ID", "int", 0.8),
        Column("category", "Category", "text", 1.3),
        Column("period", "Period", "text", 1.5),
        Column("amount", "Amount", "money", 1.2),
        Column("committed", "Committed", "money", 1.2),
        Column("actual", "Actual", "money", 1.2),
        Column("available", "Available", "money", 1.2),
        Column("spent_percent", "Spent %", "percent", 0.8),
        Column("used_percent", "Used %", "percent", 0.8),
        Column("elapsed_percent", "Elapsed %", "percent", 0.8),
        Column("burn", "Burn", "ratio", 0.7),
        Column("status", "Status", "text", 1.1),
    ]

    def __init__(self, query: ReportQuery) -> None:
        super().__init__(query)
        # Budgets are kept in the base currency; a presentation currency does not apply (the request refuses one).
        self.presentation = Presentation(query.base_currency, query.base_currency)
        self.columns = self.columns_for(self.presentation)
        self.as_of = query.today()
        self.basis = (
            "One row per budget period overlapping the report's period, among the budgets the requester may see. "
            "Committed: held by expenses waiting for approval; actual: approved expenses; available = amount - "
            "committed - actual. Spent % = actual / amount; used % = (committed + actual) / amount; elapsed % is "
            f"the share of the period gone by on {self.as_of.isoformat()}; burn = spent share / elapsed share "
            "(empty before the period starts). Status: over when available is below zero, ahead of plan when burn "
            "is above 1 (or money is spent before the period starts), else on track. The totals add the rows: a "
            "team's budget and a category's may count the same expense."
        )

    async def all_rows(self, tx: Tx) -> list[Row]:
        q = self.query
        condition, params = q.scope.budget_scope().where("b")
        categories = ""
        if q.filters.categories:
            categories = " AND b.category = ANY(%s)"
            params = (*params, list(q.filters.categories))
        found = await tx.sql.all(
            "SELECT b.id, b.name, b.period_kind, b.team_manager_id, m.full_name, b.category, p.starts_on, p.ends_on, "
            "p.amount, p.committed, p.actual FROM budgets b JOIN budget_periods p ON p.budget_id = b.id "
            "LEFT JOIN users m ON m.id = b.team_manager_id "
            f"WHERE p.starts_on <= %s AND p.ends_on > %s AND {condition}{categories} "
            "ORDER BY b.name, b.id, p.starts_on",
            (q.period_to, q.period_from, *params),
            prepare=False,  # a team of one or of hundreds: plan for this list
        )
        base = q.base_currency
        zero = in_minor_units(Decimal(0), base)
        sums = [zero, zero, zero]  # amount, committed, actual
        by_budget: dict[int, tuple[str, list[Decimal]]] = {}
        rows: list[Row] = []
        for (
            budget_id,
            name,
            kind,
            manager_id,
            manager,
            category,
            starts_on,
            ends_on,
            amount,
            committed,
            actual,
        ) in found:
            period = BudgetPeriod(starts_on, ends_on)
            available = amount - committed - actual
            elapsed = elapsed_share(period, self.as_of)
            burn = burn_rate(actual, amount, elapsed)
            rows.append(
                (
                    name,
                    manager or "",
                    manager_id,
                    category or "",
                    period.label(kind),
                    in_minor_units(amount, base),
                    in_minor_units(committed, base),
                    in_minor_units(actual, base),
                    in_minor_units(available, base),
                    share_percent(actual, amount),
                    share_percent(committed + actual, amount),
                    Decimal(repr(elapsed * 100)).quantize(CENT, rounding=ROUND_HALF_UP),
                    burn,
                    budget_status(available, actual, burn),
                )
            )
            for index, value in enumerate((amount, committed, actual)):
                sums[index] += value
            charted = by_budget.setdefault(budget_id, (name, [zero, zero, zero]))[1]
            for index, value in enumerate((amount, committed, actual)):
                charted[index] += value
        amount, committed, actual = (in_minor_units(value, base) for value in sums)
        self.totals = [
            (
                "Total",
                "",
                None,
                "",
                "",
                amount,
                committed,
                actual,
                amount - committed - actual,
                share_percent(actual, amount),
                share_percent(committed + actual, amount),
                None,
                None,
                "",
            )
        ]
        largest = sorted(by_budget.values(), key=lambda item: (-item[1][0], item[0]))[:BUDGET_CHART_BUDGETS]
        title = "Budget, committed and actual by budget"
        if len(by_budget) > BUDGET_CHART_BUDGETS:
            title += f" (the {BUDGET_CHART_BUDGETS} largest)"
        self.chart = Chart(
            title,
            [label for label, _ in largest],
            [
                (series, [in_minor_units(values[index], base) for _, values in largest])
                for index, series in enumerate(("Amount", "Committed", "Actual"))
            ],
        )
        return rows


class ReceivablesAging(Dataset):
    """Every open invoice (sent or partly paid, something still due) among those the requester may see, aged on the
    generation day, the longest overdue first; totals per bucket and per currency from the same statement; and the
    realized FX gains and losses of the payments dated in the report's period."""

    counts_money = False  # balances in their invoice's currency and in base at its locked rate: nothing to convert
    subject = "invoices"
    columns = [
        Column("customer", "Customer", "text", 2.0),
        Column("number", "Invoice", "text", 1.3),
        Column("issue_date", "Issue date", "date", 1.0),
        Column("due_date", "Due date", "date", 1.0),
        Column("days_overdue", "Days overdue", "int", 0.8),
        Column("bucket", "Bucket", "text", 0.8),
        Column("currency", "Currency", "text", 0.7),
        Column("balance", "Balance", "amount", 1.2),
        Column("base_balance", "Balance in base", "money", 1.2),
    ]

    def __init__(self, query: ReportQuery) -> None:
        super().__init__(query)
        # The request refuses another presentation currency: an invoice's balance is shown in its own and in base.
        self.presentation = Presentation(query.base_currency, query.base_currency)
        self.columns = self.columns_for(self.presentation)
        self.as_of = query.today()
        self.basis = (
            "Open invoices (sent or partly paid, with something still due) among those the requester may see, aged "
            f"on {self.as_of.isoformat()}: days overdue are the days past the due date; buckets current (not yet "
            "due), 1-30, 31-60, 61-90 and over_90 days. A balance is total - paid - credited, in the invoice's "
            f"currency and in {query.base_currency} at the rate locked when it was submitted, rounded once per "
            "invoice; the totals add those amounts. The period selects the payments whose realized FX gains and "
            "losses are shown (their base amount at the payment's rate less the amount booked at the invoice's rate)."
        )

    def columns_for(self, presentation: Presentation) -> list[Column]:
        columns = super().columns_for(presentation)
        columns[-1] = replace(columns[-1], label=f"Balance in {presentation.base}")
        return columns

    def invoice_scope(self) -> ReceivablesScope:
        scope = self.query.scope
        return ReceivablesScope(scope.viewer_id or 0, scope.everyone, scope.owner_ids).narrowed(
            self.query.filters.owner_ids
        )

    async def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        q, base = self.query, self.query.base_currency
        scope = self.invoice_scope()
        listing = OpenInvoices(scope, base, self.as_of)
        async for batch in listing.batches(tx.sql, batch_size):
            yield [
                (i.customer, i.number or "", i.issue_date, i.due_date, i.days_overdue, i.bucket, i.currency,
                 i.balance, i.base_balance)
                for i in batch
            ]  # fmt: skip
        aged = listing.aging
        assert aged is not None, "the listing sets its totals once read to the end"

        def total(label: str, bucket: str, amount: Decimal) -> Row:
            return (label, "", None, None, None, bucket, "", None, amount)

        self.totals = [
            *(total(f"Total {b.bucket}: {b.invoices} invoice{'' if b.invoices == 1 else 's'}", b.bucket, b.amount)
              for b in aged.buckets),
            total(f"Total: {aged.invoices} invoice{'' if aged.invoices == 1 else 's'}", "", aged.total),
        ]  # fmt: skip
        self.chart = Chart(
            f"Open receivables by days past due ({base})",
            list(BUCKETS),
            [("Balance", [b.amount for b in aged.buckets])],
        )
        fx = await fx_realized(tx.sql, scope, base, q.period_from, q.period_to)
        self.sections = [
            Section(
                "By currency",
                [
                    Column("currency", "Currency", "text", 1.0),
                    Column("invoices", "Invoices", "int", 1.0),
                    Column("balance", "Balance", "amount", 1.5),
                    Column("base_balance", f"Balance in {base}", "money", 1.5, base),
                ],
                [(c.currency, c.invoices, c.balance, c.base_balance) for c in listing.by_currency],
                [],  # balances in different currencies do not add; the report's totals give the base total
            ),
            Section(
                "Realized FX gains and losses",
                [
                    Column("result", "Result", "text", 1.5),
                    Column("payments", "Payments", "int", 1.0),
                    Column("amount", f"Amount in {base}", "money", 1.5, base),
                ],
                [("Gains", fx.gain_payments, fx.gains), ("Losses", fx.loss_payments, fx.losses)],
                [("Net", fx.gain_payments + fx.loss_payments, fx.net)],
            ),
        ]


DATASETS: dict[ReportType, type[Dataset]] = {
    ReportType.PNL: ProfitAndLoss,
    ReportType.EXPENSES_BY_CATEGORY: ExpensesByCategory,
    ReportType.EXPENSES_BY_OWNER: ExpensesByOwner,
    ReportType.REVENUE_BY_CATEGORY: RevenueByCategory,
    ReportType.APPROVAL_AGING: ApprovalAging,
    ReportType.LEDGER: Ledger,
    ReportType.BUDGET_VS_ACTUAL: BudgetVsActual,
    ReportType.RECEIVABLES: ReceivablesAging,
}


def dataset_for(query: ReportQuery) -> Dataset:
    return DATASETS[query.type](query)


async def describe_scope(tx: Tx, scope: ReportScope, subject: str = "entries") -> str:
    """A human description of whose data (`subject`: entries, invoices) the report holds (printed on the report)."""
    if scope.budgets is not None:
        return await _describe_budget_scope(tx, scope.budgets)
    if scope.everyone:
        return f"All {subject} (organisation-wide)"
    viewer = await tx.session.get(User, scope.viewer_id) if scope.viewer_id is not None else None
    if viewer is not None and scope.owner_ids == (viewer.id,):
        return f"Own {subject} of {viewer.full_name} ({viewer.username})"
    if viewer is not None:
        return f"{viewer.full_name} ({viewer.username}) and their team: {len(scope.owner_ids)} people"
    return f"{subject.capitalize()} of {len(scope.owner_ids)} people"


async def _describe_budget_scope(tx: Tx, budgets: BudgetScope) -> str:
    if budgets.everyone:
        return "All budgets (organisation-wide)"
    viewer = await tx.session.get(User, budgets.viewer_id)
    if viewer is None:
        return "No budgets"
    who = f"{viewer.full_name} ({viewer.username})"
    teams = set(budgets.team_ids) - {viewer.id}
    if not teams:
        return f"Budgets owned by {who} or for their own team"
    return f"Budgets owned by {who} or for teams in their subtree ({len(teams)} people under them)"
