"""Running a template: a `Dataset` of the report machinery (domain/reports/datasets.py), so a template's report is
generated, rendered in the four formats, stored and mailed like every other report.

A summary is computed in SQL: the dataset's rows inside the runner's scope, the template's filters and the period
are joined to the period's time buckets (one bucket for the whole period when the template has none), and grouped by
GROUPING SETS: the detail rows, the subtotals, the innermost level's totals (for calculated rows over the totals)
and the grand total, in one statement. A comparison runs the same statement over each bucket's comparison range.
Calculated rows and columns are then evaluated in Python, on Decimals, by the formula language.

Comparison ranges: a bucket (clipped to the period) compared with the prior period is the same stretch of the
bucket before (a month's days in the month before; a week's in the week before); with the same period last year,
the same stretch a year before (52 weeks before, for a week). Without a time bucket the whole period is compared:
with the period as long just before it (whole months move by months), or a year before. An end on the last day of a
month stays on the last day of the month it moves to (February's 29th compares with January's 31st).

The budget comparison adds what the budgets the runner may see hold for a row: each budget period's amount shared
among the buckets by its calendar days in each (a quarter's budget against months: January 31/91 of it, February
29/91, March 31/91; rounded to the currency's minor units so that the parts add up to the amount exactly: prorata.py),
of the row's category when grouped by category (team budgets, without a category, count where the rows are not split
by category); the template's filters on `category` apply to the budgets too. The days of a budget period outside the
report's period keep their part out of it.

A summary whose first group level is a time bucket charts its first aggregate by bucket (with that aggregate's
comparisons, and the budget when it is money) unless its definition says `chart: false`: the reports' chart
(domain/reports/charts.py) in the default PDF, plain data and that picture for an admin's layout.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Date,
    Numeric,
    Select,
    Text,
    and_,
    bindparam,
    func,
    literal,
    not_,
    select,
    text,
)
from sqlalchemy.sql.selectable import TableValuedAlias

from core.db import Tx
from domain.errors import NotFound, ValidationFailed
from domain.models import Budget, BudgetPeriod, ReportTemplate, ReportTemplateVersion
from domain.money import minor_units
from domain.report_templates.definition import (
    BUDGET_KEY,
    Checked,
    FilterRule,
    Measure,
    TemplateDefinition,
    check,
    coerce,
    resolve_parameters,
    row_name,
)
from domain.report_templates.formulas import Formula
from domain.report_templates.prorata import overlap_days, pro_rata
from domain.report_templates.sources import Context, Source, SourceField
from domain.reports.datasets import Chart, Column, Dataset, ReportQuery, ReportScope, Row

TEMPLATE_KEY = "template"  # where a report row keeps the template it runs, beside its filters
MAX_GROUPS = 20_000  # a summary with more groups than this is a listing: refuse it with a clear message
TOTAL = "Total"
SUBTOTAL = "Subtotal"
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class TemplateRun:
    """What a report row says about the template it runs: which version, with which parameters."""

    template_id: int
    version: int
    name: str
    dataset: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.template_id,
            "version": self.version,
            "name": self.name,
            "dataset": self.dataset,
            "parameters": self.parameters,
        }

    @classmethod
    def from_filters(cls, filters: dict[str, Any] | None) -> TemplateRun | None:
        stored = (filters or {}).get(TEMPLATE_KEY)
        if not isinstance(stored, dict):
            return None
        return cls(
            int(stored["id"]),
            int(stored["version"]),
            str(stored.get("name", "")),
            str(stored.get("dataset", "")),
            dict(stored.get("parameters") or {}),
        )


# --- time buckets ------------------------------------------------------------------------------------------------


def bucket_start(bucket: str, day: date) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    if bucket == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _add_months(day: date, months: int) -> date:
    """`day` moved by whole months; the last day of a month stays the last day (and a 31st becomes a 30th)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    at_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return date(year, month + 1, last if at_end else min(day.day, last))


def next_bucket(bucket: str, start: date) -> date:
    if bucket == "week":
        return start + timedelta(days=7)
    return _add_months(start, {"month": 1, "quarter": 3, "year": 12}[bucket])


def bucket_label(bucket: str | None, start: date) -> str:
    if bucket == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if bucket == "month":
        return start.strftime("%Y-%m")
    if bucket == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


@dataclass(frozen=True)
class Stretch:
    """One bucket of the period: its key (the bucket's first day), and the days of it inside the period."""

    key: date
    first: date
    last: date


def stretches(bucket: str | None, start: date, end: date) -> list[Stretch]:
    if bucket is None:
        return [Stretch(start, start, end)]
    found = []
    current = bucket_start(bucket, start)
    while current <= end:
        following = next_bucket(bucket, current)
        found.append(Stretch(current, max(current, start), min(following - timedelta(days=1), end)))
        current = following
    return found


def _whole_months(start: date, end: date) -> int | None:
    """How many whole calendar months [start, end] spans, or None when it is not whole months."""
    if start.day != 1 or end.day != calendar.monthrange(end.year, end.month)[1]:
        return None
    return (end.year - start.year) * 12 + end.month - start.month + 1


def shifted(kind: str, bucket: str | None, stretch: Stretch, period: tuple[date, date]) -> Stretch:
    """The stretch a comparison reads for `stretch` (see the module's docstring)."""
    if kind == "same_period_last_year":
        if bucket == "week":
            return Stretch(stretch.key, stretch.first - timedelta(weeks=52), stretch.last - timedelta(weeks=52))
        return Stretch(stretch.key, _add_months(stretch.first, -12), _add_months(stretch.last, -12))
    if bucket == "week":
        return Stretch(stretch.key, stretch.first - timedelta(days=7), stretch.last - timedelta(days=7))
    if bucket is not None:
        step = {"month": 1, "quarter": 3, "year": 12}[bucket]
        return Stretch(stretch.key, _add_months(stretch.first, -step), _add_months(stretch.last, -step))
    months = _whole_months(*period)
    if months is not None:
        return Stretch(stretch.key, _add_months(stretch.first, -months), _add_months(stretch.last, -months))
    length = (period[1] - period[0]).days + 1
    return Stretch(stretch.key, stretch.first - timedelta(days=length), stretch.last - timedelta(days=length))


def spread(
    amount: Decimal, starts_on: date, ends_on: date, found: Sequence[Stretch], query: ReportQuery, places: int
) -> list[tuple[Stretch, Decimal]]:
    """The stretches of `found` a budget period [starts_on, ends_on) has days in, each with its part by those days
    (prorata.py); the days before and after the report's period keep theirs, so that all parts add up to the
    amount."""
    inside = [overlap_days(starts_on, ends_on, stretch.first, stretch.last) for stretch in found]
    before = overlap_days(starts_on, ends_on, date.min, query.period_from - timedelta(days=1))
    after = overlap_days(starts_on, ends_on, query.period_to + timedelta(days=1), date.max)
    parts = pro_rata(amount, [before, *inside, after], places)[1:-1]
    return [(stretch, part) for stretch, days, part in zip(found, inside, parts, strict=True) if days]


def _ranges(found: Sequence[Stretch]) -> TableValuedAlias:
    return (
        func.unnest(
            bindparam("bucket_keys", [s.key for s in found], type_=ARRAY(Date)),
            bindparam("bucket_firsts", [s.first for s in found], type_=ARRAY(Date)),
            bindparam("bucket_lasts", [s.last for s in found], type_=ARRAY(Date)),
        )
        .table_valued("key", "first", "last")
        .render_derived(name="bucket_range")
    )


# --- the dataset -------------------------------------------------------------------------------------------------

Key = tuple[Any, ...]  # (grouping bitmask, level values...)
Values = dict[str, Decimal | int | None]

OUTPUT_KINDS = {"text": "text", "money": "money", "int": "int", "hours": "hours", "date": "date"}


class TemplateDataset(Dataset):
    """A report template's version, run for one report (see the module's docstring)."""

    counts_money = False  # in the base currency (the request refuses another presentation currency)

    def __init__(self, query: ReportQuery, run: TemplateRun, raw_scope: dict[str, Any]) -> None:
        super().__init__(query)
        self.run = run
        self.raw_scope = raw_scope
        self.title: str | None = run.name or f"Report template {run.template_id}"
        self.layout: str | None = None
        self.context = Context(query.timezone, query.base_currency)
        self.checked: Checked | None = None
        self.values: dict[str, Any] = {}
        self.subject = "records"

    # --- preparing: the pinned version, checked again, with its parameters ---------------------------------------

    async def prepare(self, tx: Tx) -> None:
        template = await tx.session.get(ReportTemplate, self.run.template_id)
        if template is not None and template.archived_at is not None:
            raise ValidationFailed(f"report template {self.run.template_id} is archived: it is not run any more")
        stored = await tx.session.get(ReportTemplateVersion, (self.run.template_id, self.run.version))
        if stored is None:
            raise NotFound(
                f"report template {self.run.template_id} has no version {self.run.version}",
                template_id=self.run.template_id,
                version=self.run.version,
            )
        definition = TemplateDefinition.model_validate(stored.definition)
        self.checked = check(definition)
        self.values = resolve_parameters(definition, self.run.parameters)
        self.layout = stored.layout
        self.title = f"{stored.name} (v{stored.version})"
        self.subject = self.checked.source.subject
        self.columns = template_columns(self.checked, self.query.base_currency)
        self.basis = self._basis(self.checked)

    def _basis(self, checked: Checked) -> str:
        definition = checked.definition
        parts = [
            f"Template {self.run.template_id}, version {self.run.version}, over {definition.dataset}.",
            "Amounts in the base currency, as locked when each record was submitted.",
        ]
        given = {name: value for name, value in self.values.items() if value is not None}
        if given:
            parts.append("Parameters: " + ", ".join(f"{name} = {value}" for name, value in sorted(given.items())) + ".")
        if definition.comparisons:
            parts.append(
                "Comparisons: a bucket against the same stretch of the bucket before (prior period) or a year before; "
                "budget: each budget period's amount shared among the buckets by its days in each."
            )
        return " ".join(parts)

    # --- the statements ------------------------------------------------------------------------------------------

    def _conditions(self, source: Source) -> list[ColumnElement[bool]]:
        assert self.checked is not None
        scope = self.query.scope
        conditions: list[ColumnElement[bool]] = [*source.where, source.visible(scope)]
        for rule in self.checked.definition.filters:
            condition = self._filter(source.fields[rule.field], rule)
            if condition is not None:
                conditions.append(condition)
        return conditions

    def _filter(self, source_field: SourceField, rule: FilterRule) -> ColumnElement[bool] | None:
        return filter_condition(source_field.build(self.context), source_field.kind, rule, self.values)

    def _inner(self, checked: Checked, ranges: TableValuedAlias) -> Select[Any]:
        """One row per record in scope, filtered, in a bucket: its level values (l0..) and aggregated fields (v_)."""
        source = checked.source
        day = source.day(self.context)
        projected: list[ColumnElement[Any]] = []
        for index, level in enumerate(checked.levels):
            if level.bucket is not None:
                projected.append(ranges.c.key.label(f"l{index}"))
            else:
                assert level.field is not None
                projected.append(source.fields[level.field].build(self.context).label(f"l{index}"))
        for name in sorted({m.field for m in checked.measures if m.role == "aggregate" and m.field}):
            projected.append(source.fields[name].build(self.context).label(f"v_{name}"))
        projected.append(literal(1).label("one"))
        joined = source.from_().join(ranges, and_(day >= ranges.c.first, day <= ranges.c.last))
        return select(*projected).select_from(joined).where(*self._conditions(source))

    def _grouping_sets(self, count: int) -> tuple[list[int], str]:
        """The GROUPING SETS over l0..l{count-1} (names this module made) and the grouping bitmask of each."""
        assert self.checked is not None
        if count == 0:
            return [0], "()"
        names = [f"l{index}" for index in range(count)]
        sets: list[tuple[int, list[str]]] = [(0, names)]
        if self.checked.definition.subtotals:
            for length in range(1, count):
                sets.append(((1 << (count - length)) - 1, names[:length]))
        elif self.checked.charted and count > 1:  # the chart's values: by bucket alone (a subtotal's set otherwise)
            sets.append(((1 << (count - 1)) - 1, names[:1]))
        if self.checked.calculated_rows and count > 1:
            sets.append((((1 << count) - 1) ^ 1, [names[-1]]))
        sets.append(((1 << count) - 1, []))
        return [mask for mask, _ in sets], ", ".join(f"({', '.join(group)})" for _, group in sets)

    async def _aggregated(
        self, tx: Tx, checked: Checked, found: Sequence[Stretch], measures: Sequence[Measure]
    ) -> dict[Key, Values]:
        """The measures' values by (grouping, level values), over the stretches `found`."""
        ranges = _ranges(found)
        inner = self._inner(checked, ranges).subquery("t")
        count = len(checked.levels)
        levels = [inner.c[f"l{index}"] for index in range(count)]
        aggregates = [aggregate_of(measure, inner).label(f"m{index}") for index, measure in enumerate(measures)]
        grouping = func.grouping(*levels) if levels else literal(0)
        _, sets = self._grouping_sets(count)
        statement = select(grouping.label("g"), *levels, *aggregates).group_by(text(f"GROUPING SETS ({sets})"))
        statement = statement.limit(MAX_GROUPS + 1)
        rows = (await tx.session.execute(statement)).all()
        if len(rows) > MAX_GROUPS:
            raise ValidationFailed(
                f"the template makes more than {MAX_GROUPS} groups in this period: group by fewer or coarser levels, "
                "filter it, or choose a shorter period",
                max_groups=MAX_GROUPS,
            )
        return {
            (int(row[0]), *row[1 : 1 + count]): {m.key: row[1 + count + i] for i, m in enumerate(measures)}
            for row in rows
        }

    async def _budgets(self, tx: Tx, checked: Checked, found: Sequence[Stretch]) -> dict[Key, Values]:
        """The budget column: each budget period overlapping the report's period shared among the stretches by its
        days in each (prorata.py), then grouped by the same keys as the rows (see the module's docstring)."""
        q = self.query
        category = func.coalesce(Budget.category, "")
        budgets = ReportScope.from_dict(self.raw_scope, budget_report=True).budget_scope()
        conditions: list[ColumnElement[bool]] = [
            BudgetPeriod.starts_on <= q.period_to,
            BudgetPeriod.ends_on > q.period_from,  # a period's end is the next one's start
        ]
        if not budgets.everyone:
            conditions.append(
                (Budget.owner_id == budgets.viewer_id) | Budget.team_manager_id.in_(list(budgets.team_ids))
            )
        for rule in checked.definition.filters:
            if rule.field == "category":
                condition = filter_condition(category, "text", rule, self.values)
                if condition is not None:
                    conditions.append(condition)
        if any(level.field == "category" for level in checked.levels):
            conditions.append(Budget.category.is_not(None))
        periods = (
            select(category, BudgetPeriod.starts_on, BudgetPeriod.ends_on, BudgetPeriod.amount)
            .select_from(BudgetPeriod)
            .join(Budget, Budget.id == BudgetPeriod.budget_id)
            .where(*conditions)
        )
        places = minor_units(q.base_currency) or 0
        keys: list[date] = []
        categories: list[str] = []
        amounts: list[Decimal] = []
        for name, starts_on, ends_on, amount in await tx.session.execute(periods):
            for stretch, part in spread(amount, starts_on, ends_on, found, q, places):
                keys.append(stretch.key)
                categories.append(name)
                amounts.append(part)
        shares = (
            func.unnest(
                bindparam("share_keys", keys, type_=ARRAY(Date)),
                bindparam("share_categories", categories, type_=ARRAY(Text)),
                bindparam("share_amounts", amounts, type_=ARRAY(Numeric)),
            )
            .table_valued("key", "category", "amount")
            .render_derived(name="share")
        )
        projected = [
            (shares.c.key if level.bucket is not None else shares.c.category).label(f"l{index}")
            for index, level in enumerate(checked.levels)
        ]
        inner = select(*projected, shares.c.amount.label("amount")).select_from(shares).subquery("t")
        count = len(checked.levels)
        levels = [inner.c[f"l{index}"] for index in range(count)]
        grouping = func.grouping(*levels) if levels else literal(0)
        _, sets = self._grouping_sets(count)
        statement = select(
            grouping.label("g"), *levels, func.coalesce(func.sum(inner.c.amount), 0).label("budget")
        ).group_by(text(f"GROUPING SETS ({sets})"))
        return {
            (int(row[0]), *row[1 : 1 + count]): {BUDGET_KEY: row[-1]} for row in (await tx.session.execute(statement))
        }

    # --- rows ---------------------------------------------------------------------------------------------------

    async def batches(self, tx: Tx, batch_size: int = 2000) -> AsyncIterator[list[Row]]:
        checked = self.checked
        if checked is None:
            raise ValueError("prepare() the template dataset before reading its rows")
        if not checked.summary:
            async for batch in self._listing(tx, checked, batch_size):
                yield batch
            return
        rows = await self._summary(tx, checked)
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]

    async def _listing(self, tx: Tx, checked: Checked, batch_size: int) -> AsyncIterator[list[Row]]:
        source = checked.source
        q = self.query
        day = source.day(self.context)
        statement = (
            select(*(f.build(self.context) for f in checked.listing))
            .select_from(source.from_())
            .where(*self._conditions(source), day >= q.period_from, day <= q.period_to)
            .order_by(*source.order)
        )
        summed = {f.key for f in checked.listing if f.kind in ("money", "hours")}
        sums: dict[str, Decimal] = {key: Decimal(0) for key in summed}
        count = 0
        result = await tx.session.stream(statement.execution_options(yield_per=batch_size))
        async for partition in result.partitions(batch_size):
            batch: list[Row] = []
            for record in partition:
                values: dict[str, Any] = {}
                for f, value in zip(checked.listing, record, strict=True):
                    values[f.key] = self._shown(f.kind, value)
                    if f.key in summed and value is not None:
                        sums[f.key] += value
                self._calculate_columns(checked, values)
                batch.append(tuple(values[c.key] for c in self.columns))
                count += 1
            yield batch
        totals: dict[str, Any] = {key: self._shown("money" if f.kind == "money" else "hours", sums[f.key])
                                  for f in checked.listing if (key := f.key) in summed}  # fmt: skip
        self._calculate_columns(checked, totals)
        label = f"{TOTAL}: {count} row{'' if count == 1 else 's'}"
        row: list[Any] = []
        for column in self.columns:
            value = totals.get(column.key)
            if value is None and label and column.key not in summed:
                row.append(label)
                label = ""
            else:
                row.append(value)
        self.totals = [tuple(row)]

    async def _summary(self, tx: Tx, checked: Checked) -> list[Row]:
        q = self.query
        bucket = checked.bucket
        period = (q.period_from, q.period_to)
        found = stretches(bucket, *period)
        aggregates = [m for m in checked.measures if m.role == "aggregate"]
        merged: dict[Key, Values] = defaultdict(dict)
        for key, values in (await self._aggregated(tx, checked, found, aggregates)).items():
            merged[key].update(values)
        for kind in {m.comparison for m in checked.measures if m.role == "comparison"}:
            assert kind is not None
            compared = [m for m in checked.measures if m.comparison == kind]
            bases = [next(a for a in aggregates if a.key == m.compares) for m in compared]
            moved = [shifted(kind, bucket, stretch, period) for stretch in found]
            results = await self._aggregated(tx, checked, moved, bases)
            for key, values in results.items():
                merged[key].update({m.key: values[m.compares] for m in compared if m.compares is not None})
        if any(m.role == "budget" for m in checked.measures):
            for key, values in (await self._budgets(tx, checked, found)).items():
                merged[key].update(values)
        rows = self._arrange(checked, merged)
        self.chart = self._chart(checked, merged, found)
        return rows

    def _chart(self, checked: Checked, merged: dict[Key, Values], found: Sequence[Stretch]) -> Chart | None:
        """The charted measures (`Checked.charted`) by bucket, every bucket of the period in order, as the cells
        show them."""
        charted = checked.charted
        if not charted:
            return None
        bucket = checked.levels[0].bucket
        assert bucket is not None
        count = len(checked.levels)
        by_bucket = (1 << (count - 1)) - 1  # the grouping of the set by the first level alone
        rest = (None,) * (count - 1)
        series: list[tuple[str, list[Decimal]]] = []
        for measure in charted:
            values: list[Decimal] = []
            for stretch in found:
                found_values = merged.get((by_bucket, stretch.key, *rest))
                value = found_values.get(measure.key) if found_values is not None else _missing(measure)
                shown = self._shown(measure.kind, value)
                values.append(Decimal(0) if shown is None else Decimal(shown))  # no figure (an empty average): no bar
            series.append((measure.label, values))
        return Chart(checked.chart_title, [bucket_label(bucket, stretch.key) for stretch in found], series)

    def _arrange(self, checked: Checked, merged: dict[Key, Values]) -> list[Row]:
        """Detail rows in level order, calculated rows after each innermost group, subtotals after each outer one;
        the totals (and the calculated rows over them) in `self.totals`."""
        count = len(checked.levels)
        full = (1 << count) - 1
        measures = [m for m in checked.measures if m.role != "calculated"]
        for values in merged.values():
            for m in measures:
                values.setdefault(m.key, _missing(m))
        detail = sorted((key[1:] for key in merged if key[0] == 0 and count), key=_order)
        below: dict[tuple[Any, ...], list[Any]] = defaultdict(list)  # a prefix of levels -> its next values, in order
        for key in detail:
            for depth in range(count):
                values_below = below[tuple(key[:depth])]
                if not values_below or values_below[-1] != key[depth]:
                    values_below.append(key[depth])
        rows: list[Row] = []

        def shown(prefix: Sequence[Any], label: str | None, values: Values) -> Row:
            cells: list[Any] = []
            for index, level in enumerate(checked.levels):
                if index < len(prefix):
                    value = prefix[index]
                    cells.append(bucket_label(level.bucket, value) if level.bucket and value is not None else value)
                elif index == len(prefix) and label is not None:
                    cells.append(label)
                else:
                    cells.append("")
            return (*cells, *self._measured(checked, values))

        def emit(prefix: tuple[Any, ...]) -> None:
            depth = len(prefix)
            children = below[prefix]
            if depth == count - 1:
                siblings: list[tuple[Any, Values]] = []
                for child in children:
                    values = merged[(0, *prefix, child)]
                    rows.append(shown((*prefix, child), None, values))
                    siblings.append((child, values))
                for row, formula in checked.calculated_rows:
                    values = self._row_formula(measures, formula, siblings)
                    siblings.append((row.key, values))
                    rows.append(shown(prefix, row.label or row.key, values))
                return
            for child in children:
                emit((*prefix, child))
                if checked.definition.subtotals:
                    mask = (1 << (count - depth - 1)) - 1
                    values = merged.get((mask, *prefix, child, *([None] * (count - depth - 1)))) or _empty(measures)
                    rows.append(shown((*prefix, child), SUBTOTAL, values))

        if count:
            emit(())
        grand = merged.get((full, *([None] * count))) or _empty(measures)
        self.totals = [shown((), TOTAL, grand) if count else tuple(self._measured(checked, grand))]
        if checked.calculated_rows and count:
            if count == 1:
                siblings = [(key[0], merged[(0, *key)]) for key in detail]
            else:
                mask = full ^ 1
                siblings = [
                    (key[-1], values)
                    for key, values in sorted(merged.items(), key=lambda item: _order(item[0][1:]))
                    if key[0] == mask
                ]
            for row, formula in checked.calculated_rows:
                values = self._row_formula(measures, formula, siblings)
                siblings.append((row.key, values))
                self.totals.append(shown((), f"{row.label or row.key} ({TOTAL.lower()})", values))
        return rows

    def _row_formula(
        self, measures: Sequence[Measure], formula: Formula, siblings: Sequence[tuple[Any, Values]]
    ) -> Values:
        """A calculated row: the formula per measure, over the sibling rows named by `row_name` of their values."""
        result: Values = {}
        for m in measures:
            names: dict[str, Decimal | None] = {}
            additive = _additive(m)
            for value, values in siblings:
                name = row_name(value)
                number = _decimal(values.get(m.key))
                if name in names:  # two values of one name ("Travel", "travel"): they add, where adding means anything
                    previous = names[name]
                    names[name] = (
                        previous + number if additive and previous is not None and number is not None else None
                    )
                else:
                    names[name] = number
            for name in formula.names - set(names):
                names[name] = Decimal(0) if additive else None
            result[m.key] = formula.evaluate(names)
        return result

    def _measured(self, checked: Checked, values: Values) -> list[Any]:
        computed: dict[str, Any] = {m.key: values.get(m.key) for m in checked.measures if m.role != "calculated"}
        self._calculate_columns(checked, computed)
        return [self._shown(m.kind, computed.get(m.key)) for m in checked.measures]

    def _calculate_columns(self, checked: Checked, values: dict[str, Any]) -> None:
        for column, formula in checked.calculated_columns:
            numbers = {name: _decimal(values.get(name)) for name in formula.names}
            values[column.key] = formula.evaluate(numbers)

    def _shown(self, kind: str, value: Any) -> Any:
        """A cell as the renderers print it: money to the base currency's minor units, other decimals to cents."""
        if value is None or isinstance(value, (str, date)):
            return value
        if kind == "int" and isinstance(value, int):
            return value
        number = value if isinstance(value, Decimal) else Decimal(value)
        if kind == "int" and number == number.to_integral_value():
            return int(number)
        if kind == "money":
            places = minor_units(self.query.base_currency) or 0
            return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return number.quantize(_CENT, rounding=ROUND_HALF_UP)


def template_columns(checked: Checked, base_currency: str) -> list[Column]:
    """A checked definition's columns: a listing's fields, or a summary's levels and measures, then the calculated
    columns; money in `base_currency`."""

    def money(kind: str) -> str | None:
        return base_currency if kind == "money" else None

    if not checked.summary:
        columns = [Column(f.key, f.label, OUTPUT_KINDS[f.kind], 1.0, money(f.kind)) for f in checked.listing]
        for calculated, _ in checked.calculated_columns:
            kind = {"money": "money", "number": "ratio", "percent": "percent"}[calculated.kind]
            columns.append(Column(calculated.key, calculated.label or calculated.key, kind, 1.0, money(kind)))
        return columns
    fields = checked.source.fields
    columns = []
    for level in checked.levels:
        if level.bucket is not None:
            columns.append(Column("bucket", level.label or level.bucket.capitalize(), "text", 1.0))
        else:
            assert level.field is not None
            source_field = fields[level.field]
            kind = OUTPUT_KINDS[source_field.kind]
            columns.append(Column(level.field, level.label or source_field.label, kind, 1.5, money(kind)))
    return columns + [Column(m.key, m.label, m.kind, 1.0, money(m.kind)) for m in checked.measures]


def sample_chart(checked: Checked) -> Chart | None:
    """A layout's `chart` on the sample it is tried on when saved: one bucket, each charted measure 1."""
    if not checked.charted:
        return None
    return Chart(checked.chart_title, ["2024-01"], [(m.label, [Decimal(1)]) for m in checked.charted])


def filter_condition(
    column: ColumnElement[Any], kind: str, rule: FilterRule, parameters: dict[str, Any]
) -> ColumnElement[bool] | None:
    """A filter rule as a condition on `column`: the value bound as a parameter, never written into the SQL. A rule
    whose parameter was given no value (and has no default) does not filter."""
    if rule.param is not None:
        value: Any = parameters.get(rule.param)
        if value is None:
            return None
    elif isinstance(rule.value, list):
        value = [coerce(kind, item, "filter") for item in rule.value]
    else:
        value = coerce(kind, rule.value, "filter")
    match rule.op:
        case "eq":
            return column == value
        case "ne":
            return column != value
        case "in":
            return column.in_(value)
        case "not_in":
            return not_(column.in_(value))
        case "contains":
            escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return column.ilike(f"%{escaped}%", escape="\\")
        case "gt":
            return column > value
        case "gte":
            return column >= value
        case "lt":
            return column < value
        case "lte":
            return column <= value
    raise ValueError(rule.op)  # pragma: no cover - the operators are a Literal


def aggregate_of(measure: Measure, inner: Any) -> ColumnElement[Any]:
    if measure.function == "count":
        return func.count(inner.c[f"v_{measure.field}"]) if measure.field else func.count()
    column = inner.c[f"v_{measure.field}"]
    if measure.function == "sum":
        return func.coalesce(func.sum(column), 0)
    if measure.function == "average":
        return func.avg(column)
    if measure.function == "min":
        return func.min(column)
    return func.max(column)


def _additive(measure: Measure) -> bool:
    return measure.role == "budget" or measure.function in ("sum", "count")


def _missing(measure: Measure) -> Decimal | int | None:
    """A measure's value for a row that has no records of its own (it exists for a comparison's sake)."""
    if measure.role == "budget" or measure.function == "sum":
        return Decimal(0)
    if measure.function == "count":
        return 0
    return None


def _empty(measures: Iterable[Measure]) -> Values:
    return {m.key: _missing(m) for m in measures}


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(value)


def _order_value(value: Any) -> tuple[int, Any]:
    # None last; values of one level share a type (dates for buckets, text, numbers).
    return (1, "") if value is None else (0, value)


def _order(key: Sequence[Any]) -> tuple[tuple[int, Any], ...]:
    return tuple(_order_value(value) for value in key)
