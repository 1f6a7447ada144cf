"""What each report type counts: its columns, its rows (streamed in batches), its totals and its chart.

Amounts count approved entries only (the ledger lists every entry and totals the approved ones). Money is
`Decimal` from NUMERIC columns all the way to the renderers. The data is limited to the scope decided when the
report was requested (`Visibility.as_scope()`), narrowed further by the report's filters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, Select, and_, case, cast, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import InstrumentedAttribute, aliased

from core.db import Tx
from domain.models import ApprovalRequest, ApprovalStep, Entry, EntryKind, EntryStatus, User
from domain.money import CENT
from domain.reports.schemas import ReportFilters, ReportType

Cell = str | int | Decimal | date | None
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
    kind: str = "text"  # text | money | int | date | month | hours | percent
    width: float = 1.0  # relative width in the PDF (fixed table layout)

    @property
    def numeric(self) -> bool:
        return self.kind in {"money", "int", "hours", "percent"}


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: list[tuple[str, list[Decimal]]]


@dataclass(frozen=True)
class ReportScope:
    """The scope carried from request time: everyone, or a fixed set of owners."""

    everyone: bool
    owner_ids: tuple[int, ...] = ()
    viewer_id: int | None = None

    @classmethod
    def from_dict(cls, scope: dict[str, Any]) -> ReportScope:
        viewer = scope.get("viewer_id")
        if scope.get("kind") == "all":
            return cls(True, (), int(viewer) if viewer is not None else None)
        owners = tuple(sorted(int(owner) for owner in scope.get("owner_ids", [])))
        return cls(False, owners, int(viewer) if viewer is not None else None)

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


@dataclass(frozen=True)
class ReportQuery:
    type: ReportType
    period_from: date
    period_to: date
    scope: ReportScope
    filters: ReportFilters = field(default_factory=ReportFilters)
    timezone: str = "UTC"

    def period_bounds(self) -> tuple[datetime, datetime]:
        """The period as [start, end) instants in the report's time zone (for timestamp columns)."""
        zone = ZoneInfo(self.timezone)
        start = datetime.combine(self.period_from, datetime.min.time(), zone)
        end = datetime.combine(self.period_to + timedelta(days=1), datetime.min.time(), zone)
        return start, end


class Dataset(ABC):
    """Columns, rows in batches, then (once the rows are exhausted) totals and a chart."""

    basis = APPROVED_BASIS

    def __init__(self, query: ReportQuery) -> None:
        self.query = query
        self.totals: list[Row] = []
        self.chart: Chart | None = None

    columns: list[Column] = []

    @abstractmethod
    def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        """The report's rows, a batch at a time (an async generator)."""

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
        statement = (
            select(month, Entry.kind, func.sum(Entry.amount))
            .where(*self.entry_conditions(None))
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
        return rows


class ExpensesByCategory(SummaryDataset):
    columns = [
        Column("category", "Category", "text", 3.0),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
        Column("share", "Share %", "percent", 1.0),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        amount = func.sum(Entry.amount)
        statement = (
            select(Entry.category, func.count(), amount)
            .where(*self.entry_conditions(EntryKind.EXPENSE.value))
            .group_by(Entry.category)
            .order_by(amount.desc(), Entry.category)
        )
        found = (await tx.session.execute(statement)).all()
        total = _sum([row[2] for row in found])
        count = sum(int(row[1]) for row in found)
        rows: list[Row] = [(category, int(n), value, _share(value, total)) for category, n, value in found]
        self.totals = [("Total", count, total, Decimal("100.00") if total else Decimal("0.00"))]
        self.chart = Chart("Expenses by category", [str(r[0]) for r in found], [("Expenses", [r[2] for r in found])])
        return rows


def _share(value: Decimal, total: Decimal) -> Decimal:
    if not total:
        return Decimal("0.00")
    return (value * 100 / total).quantize(CENT)


class ExpensesByOwner(SummaryDataset):
    columns = [
        Column("owner", "Owner", "text", 2.5),
        Column("username", "Username", "text", 1.5),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        amount = func.sum(Entry.amount)
        statement = (
            select(User.full_name, User.username, func.count(Entry.id), amount)
            .join(User, User.id == Entry.owner_id)
            .where(*self.entry_conditions(EntryKind.EXPENSE.value))
            .group_by(User.id, User.full_name, User.username)
            .order_by(amount.desc(), User.username)
        )
        found = (await tx.session.execute(statement)).all()
        rows: list[Row] = [(name, username, int(n), value) for name, username, n, value in found]
        self.totals = [("Total", "", sum(int(r[2]) for r in found), _sum([r[3] for r in found]))]
        self.chart = Chart("Expenses by owner", [str(r[1]) for r in found], [("Expenses", [r[3] for r in found])])
        return rows


class RevenueByCategory(SummaryDataset):
    columns = [
        Column("category", "Category", "text", 2.0),
        Column("source", "Source", "text", 2.0),
        Column("entries", "Entries", "int", 1.0),
        Column("amount", "Amount", "money", 1.5),
    ]

    async def all_rows(self, tx: Tx) -> list[Row]:
        source = func.coalesce(Entry.source, "")
        statement = (
            select(Entry.category, source, func.count(), func.sum(Entry.amount))
            .where(*self.entry_conditions(EntryKind.REVENUE.value))
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
        return rows


class ApprovalAging(SummaryDataset):
    basis = AGING_BASIS
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
        )
        return rows


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
        Column("amount", "Amount", "money", 1.2),
        Column("approval_trail", "Approval trail", "text", 3.0),
    ]

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
        conditions = self.entry_conditions(self.query.filters.kind, approved_only=False)
        return (
            select(
                Entry.id,
                Entry.entry_date,
                Entry.kind,
                Entry.category,
                func.coalesce(Entry.source, Entry.vendor, ""),
                Entry.description,
                User.username,
                Entry.status,
                Entry.amount,
                func.coalesce(trail, ""),
            )
            .join(User, User.id == Entry.owner_id)
            .where(*conditions)
            .order_by(Entry.entry_date, Entry.id)
        )

    async def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        revenue = Decimal("0.00")
        expenses = Decimal("0.00")
        monthly: dict[date, list[Decimal]] = {first: [Decimal("0.00"), Decimal("0.00")] for first in self._months()}
        result = await tx.session.stream(self.statement().execution_options(yield_per=batch_size))
        async for partition in result.partitions(batch_size):
            batch: list[Row] = []
            for row in partition:
                values: Row = tuple(row)
                batch.append(values)
                if row[7] == EntryStatus.APPROVED.value:
                    bucket = monthly.setdefault(row[1].replace(day=1), [Decimal("0.00"), Decimal("0.00")])
                    if row[2] == EntryKind.REVENUE.value:
                        revenue += row[8]
                        bucket[0] += row[8]
                    else:
                        expenses += row[8]
                        bucket[1] += row[8]
            yield batch
        blank: tuple[None, ...] = (None,) * 7
        self.totals = [
            ("Approved revenue", *blank, revenue, None),
            ("Approved expenses", *blank, expenses, None),
            ("Net (approved)", *blank, revenue - expenses, None),
        ]
        months = sorted(monthly)
        self.chart = Chart(
            "Approved revenue and expenses by month",
            [first.strftime("%Y-%m") for first in months],
            [("Revenue", [monthly[m][0] for m in months]), ("Expenses", [monthly[m][1] for m in months])],
        )

    def _months(self) -> list[date]:
        return _months(self.query.period_from, self.query.period_to)


DATASETS: dict[ReportType, type[Dataset]] = {
    ReportType.PNL: ProfitAndLoss,
    ReportType.EXPENSES_BY_CATEGORY: ExpensesByCategory,
    ReportType.EXPENSES_BY_OWNER: ExpensesByOwner,
    ReportType.REVENUE_BY_CATEGORY: RevenueByCategory,
    ReportType.APPROVAL_AGING: ApprovalAging,
    ReportType.LEDGER: Ledger,
}


def dataset_for(query: ReportQuery) -> Dataset:
    return DATASETS[query.type](query)


async def describe_scope(tx: Tx, scope: ReportScope) -> str:
    """A human description of whose data the report holds (printed on the report)."""
    if scope.everyone:
        return "All entries (organisation-wide)"
    viewer = await tx.session.get(User, scope.viewer_id) if scope.viewer_id is not None else None
    if viewer is not None and scope.owner_ids == (viewer.id,):
        return f"Own entries of {viewer.full_name} ({viewer.username})"
    if viewer is not None:
        return f"{viewer.full_name} ({viewer.username}) and their team: {len(scope.owner_ids)} people"
    return f"Entries of {len(scope.owner_ids)} people"
