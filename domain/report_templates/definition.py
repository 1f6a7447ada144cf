"""A template's definition: the JSON a finance lead saves, its shape (pydantic) and its meaning (`check`).

The shape bounds every list and string; `check` then reads it against the dataset's whitelist (sources.py) and the
formula language (formulas.py), and refuses what does not make sense with a `ValidationFailed` naming the field
(`definition.filters[1].value`): a 422 when saved, so a template that was saved always runs.

Two kinds of template:
- a listing (`columns`, no aggregates): one row per record, the chosen fields, filtered, with a totals row;
- a summary (`aggregates`): rows grouped by up to three levels (fields, or one time bucket of the dataset's date),
  with comparison columns (prior period, same period last year, budget), calculated columns and rows, subtotals
  and a totals row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.dates import EARLIEST, LATEST
from domain.errors import ValidationFailed
from domain.report_templates.formulas import NAME, Formula, FormulaError, compile_formula
from domain.report_templates.sources import SOURCES, Source, SourceField

Key = Annotated[str, Field(min_length=1, max_length=63, pattern=NAME.pattern)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Literal_ = str | int | None
Bucket = Literal["week", "month", "quarter", "year"]
AggregateFunction = Literal["sum", "count", "average", "min", "max"]
Operator = Literal["eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte"]
ParameterType = Literal["text", "int", "number", "money", "date"]
ComparisonKind = Literal["prior_period", "same_period_last_year", "budget"]
CalculatedKind = Literal["money", "number", "percent"]

MAX_TEXT = 200
MAX_NUMBER = Decimal("1e15")  # beyond any NUMERIC(19, 4) amount
MAX_INT = 2**31 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupLevel(Strict):
    """One grouping level: a field of the dataset, or a time bucket of the dataset's date."""

    field: Key | None = Field(default=None, description="a groupable field of the dataset")
    bucket: Bucket | None = Field(default=None, description="week, month, quarter or year of the dataset's date")
    label: Label | None = None

    @model_validator(mode="after")
    def _one_of(self) -> GroupLevel:
        if (self.field is None) == (self.bucket is None):
            raise ValueError("a group level names either a field or a bucket")
        return self


class Aggregate(Strict):
    key: Key
    label: Label | None = None
    function: AggregateFunction
    field: Key | None = Field(default=None, description="a numeric field; count may leave it out (counts rows)")


class FilterRule(Strict):
    field: Key
    op: Operator
    value: Literal_ | list[str | int] = Field(default=None, description="a literal (a list for in and not_in)")
    param: Key | None = Field(default=None, description="the name of a parameter that gives the value when run")

    @model_validator(mode="after")
    def _value_or_param(self) -> FilterRule:
        if (self.value is None) == (self.param is None):
            raise ValueError("a filter has either a value or a param")
        if isinstance(self.value, list) and len(self.value) > 100:
            raise ValueError("a filter's list holds at most 100 values")
        return self


class ParameterSpec(Strict):
    name: Key
    label: Label | None = None
    type: ParameterType
    required: bool = False
    default: str | int | None = None
    min: str | int | None = Field(default=None, description="int, number, money and date parameters")
    max: str | int | None = None
    choices: list[str] = Field(default_factory=list, max_length=50, description="text parameters")
    max_length: int = Field(default=MAX_TEXT, ge=1, le=MAX_TEXT, description="text parameters")


class Comparison(Strict):
    kind: ComparisonKind
    aggregates: list[Key] = Field(
        default_factory=list, max_length=20, description="the aggregates compared (default all); not for budget"
    )


class CalculatedColumn(Strict):
    key: Key
    label: Label | None = None
    formula: str = Field(min_length=1, max_length=300)
    kind: CalculatedKind = "number"


class CalculatedRow(Strict):
    key: Key
    label: Label | None = None
    formula: str = Field(min_length=1, max_length=300)


class TemplateDefinition(Strict):
    """The versioned JSON of a report template (see docs/api.md, "Report templates")."""

    dataset: Literal["entries", "approvals", "budgets", "invoices", "payments"]
    columns: list[Key] = Field(default_factory=list, max_length=30, description="a listing's fields, in order")
    group_by: list[GroupLevel] = Field(default_factory=list, max_length=3)
    aggregates: list[Aggregate] = Field(default_factory=list, max_length=20)
    filters: list[FilterRule] = Field(default_factory=list, max_length=30)
    parameters: list[ParameterSpec] = Field(default_factory=list, max_length=20)
    comparisons: list[Comparison] = Field(default_factory=list, max_length=3)
    calculated_columns: list[CalculatedColumn] = Field(default_factory=list, max_length=10)
    calculated_rows: list[CalculatedRow] = Field(default_factory=list, max_length=10)
    subtotals: bool = Field(default=False, description="a subtotal row after each group of the outer levels")
    chart: bool = Field(
        default=True,
        description="a summary whose first group level is a time bucket charts its first aggregate by bucket in the "
        "PDF; false: no chart",
    )


# --- meaning -------------------------------------------------------------------------------------------------------

OPERATORS_BY_KIND: dict[str, frozenset[str]] = {
    "text": frozenset({"eq", "ne", "in", "not_in", "contains"}),
    "money": frozenset({"eq", "ne", "gt", "gte", "lt", "lte"}),
    "hours": frozenset({"eq", "ne", "gt", "gte", "lt", "lte"}),
    "int": frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"}),
    "date": frozenset({"eq", "ne", "gt", "gte", "lt", "lte"}),
}
# Which parameter types may give a field of each kind its value.
PARAMETERS_BY_KIND: dict[str, frozenset[str]] = {
    "text": frozenset({"text"}),
    "money": frozenset({"money", "number", "int"}),
    "hours": frozenset({"number", "int"}),
    "int": frozenset({"int"}),
    "date": frozenset({"date"}),
}
COMPARISON_SUFFIX = {"prior_period": "prior", "same_period_last_year": "last_year"}
BUDGET_KEY = "budget"


def fail(message: str, where: str, **details: object) -> ValidationFailed:
    return ValidationFailed(message, field=where, **details)


def coerce(kind: str, value: object, where: str) -> str | int | Decimal | date:
    """A literal as a field of `kind` (or a parameter of that type) holds it; 422 naming `where` when it cannot."""
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise fail(f"must be text of at most {MAX_TEXT} characters", where)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT:
            raise fail(f"must be a whole number of at most {MAX_INT} in size", where)
        return value
    if kind in ("money", "number", "hours"):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail('must be a decimal number, as a string (such as "100.00")', where)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as error:
            raise fail(f"{value!r} is not a decimal number", where) from error
        if not number.is_finite() or abs(number) >= MAX_NUMBER or number.as_tuple().exponent < -4:  # type: ignore[operator]
            raise fail("must be a decimal number below 10^15 with at most 4 decimal places", where)
        return number
    if kind == "date":
        if not isinstance(value, str):
            raise fail("must be a date, YYYY-MM-DD", where)
        try:
            day = date.fromisoformat(value)
        except ValueError as error:
            raise fail(f"{value!r} is not a date (YYYY-MM-DD)", where) from error
        if not EARLIEST <= day <= LATEST:
            raise fail(f"must be between {EARLIEST} and {LATEST}", where)
        return day
    raise fail(f"unknown kind {kind}", where)  # pragma: no cover - the kinds are the sources'


@dataclass(frozen=True)
class Measure:
    """A value column of a summary: an aggregate, a comparison of one, the budget, or a calculated column."""

    key: str
    label: str
    kind: str  # money | int | hours | ratio | percent (the renderers' column kinds)
    role: Literal["aggregate", "comparison", "budget", "calculated"]
    function: str | None = None  # aggregates: sum, count, average, min, max
    field: str | None = None
    compares: str | None = None  # comparisons: the aggregate's key
    comparison: str | None = None  # comparisons: prior_period | same_period_last_year
    formula: Formula | None = None


@dataclass(frozen=True)
class Checked:
    """A definition that passed `check`, with what running it needs resolved."""

    definition: TemplateDefinition
    source: Source
    listing: list[SourceField] = field(default_factory=list)
    levels: list[GroupLevel] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    calculated_rows: list[tuple[CalculatedRow, Formula]] = field(default_factory=list)
    calculated_columns: list[tuple[CalculatedColumn, Formula]] = field(default_factory=list)

    @property
    def bucket(self) -> str | None:
        return next((level.bucket for level in self.levels if level.bucket is not None), None)

    @property
    def summary(self) -> bool:
        return bool(self.definition.aggregates)

    @property
    def charted(self) -> list[Measure]:
        """What the PDF's chart plots by bucket: the first aggregate, its comparisons, and the budget when it is
        money (one unit on one axis); nothing unless the first group level is a time bucket and `chart` is on."""
        if not self.definition.chart or not self.levels or self.levels[0].bucket is None:
            return []
        first = self.first_aggregate
        return [
            m for m in self.measures
            if m is first or m.compares == first.key or (m.role == "budget" and first.kind == "money")
        ]  # fmt: skip

    @property
    def first_aggregate(self) -> Measure:
        """The measure a chart plots (a summary has at least one aggregate)."""
        return next(m for m in self.measures if m.role == "aggregate")

    @property
    def chart_title(self) -> str:
        label = self.first_aggregate.label
        return f"{label} by {self.levels[0].bucket}" if self.levels else label


def _aggregate_kind(function: str, field_kind: str | None) -> str:
    if function == "count":
        return "int"
    if function == "average" and field_kind == "int":
        return "ratio"
    return field_kind or "int"


def check(definition: TemplateDefinition) -> Checked:
    """The definition's meaning, or a 422 naming the first field that does not make sense."""
    source = SOURCES[definition.dataset]
    fields = source.fields
    known = ", ".join(fields)

    def field_of(key: str, where: str) -> SourceField:
        if key not in fields:
            raise fail(f"{definition.dataset} has no field {key!r} (its fields: {known})", where)
        return fields[key]

    parameters: dict[str, ParameterSpec] = {}
    for index, spec in enumerate(definition.parameters):
        where = f"definition.parameters[{index}]"
        if spec.name in parameters:
            raise fail(f"parameter {spec.name!r} is named twice", f"{where}.name")
        _check_parameter(spec, where)
        parameters[spec.name] = spec

    for index, rule in enumerate(definition.filters):
        where = f"definition.filters[{index}]"
        found = field_of(rule.field, f"{where}.field")
        if rule.op not in OPERATORS_BY_KIND[found.kind]:
            allowed = ", ".join(sorted(OPERATORS_BY_KIND[found.kind]))
            raise fail(f"{rule.op} does not apply to {found.kind} field {rule.field!r} (use {allowed})", f"{where}.op")
        if rule.param is not None:
            spec_ = parameters.get(rule.param)
            if spec_ is None:
                raise fail(f"no parameter named {rule.param!r} is defined", f"{where}.param")
            if rule.op in ("in", "not_in"):
                raise fail("in and not_in take a list value, not a parameter", f"{where}.param")
            if spec_.type not in PARAMETERS_BY_KIND[found.kind]:
                raise fail(
                    f"a {spec_.type} parameter cannot give {found.kind} field {rule.field!r} its value",
                    f"{where}.param",
                )
        elif rule.op in ("in", "not_in"):
            if not isinstance(rule.value, list) or not rule.value:
                raise fail(f"{rule.op} takes a list of values", f"{where}.value")
            for position, item in enumerate(rule.value):
                coerce(found.kind, item, f"{where}.value[{position}]")
        else:
            if isinstance(rule.value, list):
                raise fail(f"{rule.op} takes one value, not a list", f"{where}.value")
            coerce(found.kind, rule.value, f"{where}.value")

    if not definition.aggregates:
        return _check_listing(definition, source, field_of)
    return _check_summary(definition, source, field_of)


def _check_parameter(spec: ParameterSpec, where: str) -> None:
    value_kind = {"text": "text", "int": "int", "number": "number", "money": "money", "date": "date"}[spec.type]
    if spec.type != "text" and (spec.choices or spec.max_length != MAX_TEXT):
        raise fail("choices and max_length are for text parameters", where)
    if spec.type == "text" and (spec.min is not None or spec.max is not None):
        raise fail("min and max are for int, number, money and date parameters", f"{where}.min")
    for position, choice in enumerate(spec.choices):
        if len(choice) > spec.max_length:
            raise fail("a choice is longer than max_length", f"{where}.choices[{position}]")
    low = coerce(value_kind, spec.min, f"{where}.min") if spec.min is not None else None
    high = coerce(value_kind, spec.max, f"{where}.max") if spec.max is not None else None
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise fail("min is above max", f"{where}.min")
    if spec.default is not None:
        resolve_parameter(spec, spec.default, f"{where}.default")


def resolve_parameter(spec: ParameterSpec, value: object, where: str) -> str | int | Decimal | date:
    """A parameter's value checked against its type and bounds (422 naming `where`)."""
    kind = "number" if spec.type == "number" else spec.type
    resolved = coerce(kind, value, where)
    if spec.type == "text":
        assert isinstance(resolved, str)
        if len(resolved) > spec.max_length:
            raise fail(f"at most {spec.max_length} characters", where)
        if spec.choices and resolved not in spec.choices:
            raise fail(f"must be one of: {', '.join(spec.choices)}", where)
        return resolved
    if spec.min is not None and resolved < coerce(kind, spec.min, where):  # type: ignore[operator]
        raise fail(f"must be at least {spec.min}", where)
    if spec.max is not None and resolved > coerce(kind, spec.max, where):  # type: ignore[operator]
        raise fail(f"must be at most {spec.max}", where)
    return resolved


def resolve_parameters(
    definition: TemplateDefinition, given: dict[str, object], where: str = "parameters"
) -> dict[str, str | int | Decimal | date | None]:
    """The run's parameter values: given, else the default; a required one missing, an unknown one, a value out of
    type or bounds: 422 naming `parameters.<name>`."""
    specs = {spec.name: spec for spec in definition.parameters}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise fail(f"unknown parameter(s): {', '.join(unknown)}", f"{where}.{unknown[0]}", known=sorted(specs))
    values: dict[str, str | int | Decimal | date | None] = {}
    for name, spec in specs.items():
        value = given.get(name, spec.default)
        if value is None:
            if spec.required:
                raise fail(f"parameter {name!r} is required", f"{where}.{name}")
            values[name] = None
            continue
        values[name] = resolve_parameter(spec, value, f"{where}.{name}")
    return values


FieldLookup = Callable[[str, str], SourceField]  # (key, where) -> the field, or a 422 naming `where`


def _check_listing(definition: TemplateDefinition, source: Source, lookup: FieldLookup) -> Checked:
    if not definition.columns:
        raise fail("a template lists columns, or aggregates them: give columns or aggregates", "definition.columns")
    for name in ("group_by", "comparisons", "calculated_rows"):
        if getattr(definition, name):
            raise fail(f"{name} needs aggregates (a listing shows one row per record)", f"definition.{name}")
    listing = []
    for index, key in enumerate(definition.columns):
        if key in definition.columns[:index]:
            raise fail(f"column {key!r} is listed twice", f"definition.columns[{index}]")
        listing.append(lookup(key, f"definition.columns[{index}]"))
    numeric = [column.key for column in listing if column.numeric]
    calculated = _check_calculated_columns(definition, set(numeric), set(definition.columns))
    return Checked(definition, source, listing=listing, calculated_columns=calculated)


def _check_summary(definition: TemplateDefinition, source: Source, lookup: FieldLookup) -> Checked:
    if definition.columns:
        raise fail(
            "columns are for listings: a summary's columns are its group levels and aggregates", "definition.columns"
        )
    levels = definition.group_by
    buckets = [index for index, level in enumerate(levels) if level.bucket is not None]
    if len(buckets) > 1:
        raise fail("at most one group level is a time bucket", f"definition.group_by[{buckets[1]}].bucket")
    seen: set[str] = set()
    for index, level in enumerate(levels):
        if level.field is not None:
            found = lookup(level.field, f"definition.group_by[{index}].field")
            if not found.groupable:
                raise fail(
                    f"{level.field!r} has a value per record: list it (columns) rather than group by it",
                    f"definition.group_by[{index}].field",
                )
            if level.field in seen:
                raise fail(f"{level.field!r} is grouped twice", f"definition.group_by[{index}].field")
            seen.add(level.field)
    measures: list[Measure] = []
    keys: set[str] = set(level.field for level in levels if level.field) | {"bucket"}
    for index, aggregate in enumerate(definition.aggregates):
        where = f"definition.aggregates[{index}]"
        if aggregate.key in keys:
            raise fail(f"the key {aggregate.key!r} is taken", f"{where}.key")
        kind = None
        if aggregate.field is None:
            if aggregate.function != "count":
                raise fail(f"{aggregate.function} needs a field", f"{where}.field")
        else:
            found = lookup(aggregate.field, f"{where}.field")
            if aggregate.function != "count" and not found.numeric:
                raise fail(
                    f"{aggregate.function} needs a numeric field; {aggregate.field!r} is {found.kind}", f"{where}.field"
                )
            kind = found.kind
        keys.add(aggregate.key)
        label = aggregate.label or f"{aggregate.function.capitalize()} of {aggregate.field or 'rows'}"
        measures.append(
            Measure(aggregate.key, label, _aggregate_kind(aggregate.function, kind), "aggregate",
                    function=aggregate.function, field=aggregate.field)
        )  # fmt: skip
    aggregates = {measure.key: measure for measure in measures}
    kinds_seen: set[str] = set()
    for index, comparison in enumerate(definition.comparisons):
        where = f"definition.comparisons[{index}]"
        if comparison.kind in kinds_seen:
            raise fail(f"{comparison.kind} is compared twice", f"{where}.kind")
        kinds_seen.add(comparison.kind)
        if comparison.kind == "budget":
            _check_budget_comparison(definition, comparison, where)
            keys.add(BUDGET_KEY)
            measures.append(Measure(BUDGET_KEY, "Budget", "money", "budget"))
            continue
        compared = comparison.aggregates or list(aggregates)
        for position, key in enumerate(compared):
            if key not in aggregates:
                raise fail(f"no aggregate named {key!r}", f"{where}.aggregates[{position}]")
            base = aggregates[key]
            suffix = COMPARISON_SUFFIX[comparison.kind]
            compared_key = f"{key}_{suffix}"
            if compared_key in keys:
                raise fail(f"the key {compared_key!r} is taken", f"{where}.aggregates[{position}]")
            keys.add(compared_key)
            label = f"{base.label} ({'prior period' if suffix == 'prior' else 'last year'})"
            measures.append(
                Measure(compared_key, label, base.kind, "comparison", function=base.function, field=base.field,
                        compares=key, comparison=comparison.kind)
            )  # fmt: skip
    value_keys = {measure.key for measure in measures}
    calculated = _check_calculated_columns(definition, value_keys, keys)
    for column, formula in calculated:
        kind = {"money": "money", "number": "ratio", "percent": "percent"}[column.kind]
        measures.append(Measure(column.key, column.label or column.key, kind, "calculated", formula=formula))
    rows: list[tuple[CalculatedRow, Formula]] = []
    if definition.calculated_rows:
        if not levels or levels[-1].field is None:
            raise fail(
                "calculated rows refer to the values of the innermost group level, which must be a field",
                "definition.calculated_rows",
            )
        row_keys: set[str] = set()
        for index, row in enumerate(definition.calculated_rows):
            where = f"definition.calculated_rows[{index}]"
            if row.key in row_keys:
                raise fail(f"the row {row.key!r} is defined twice", f"{where}.key")
            row_keys.add(row.key)
            try:
                rows.append((row, compile_formula(row.formula)))
            except FormulaError as error:
                raise fail(str(error), f"{where}.formula") from error
    return Checked(
        definition, source, levels=list(levels), measures=measures, calculated_rows=rows, calculated_columns=calculated
    )


def _check_calculated_columns(
    definition: TemplateDefinition, numeric_keys: set[str], taken: set[str]
) -> list[tuple[CalculatedColumn, Formula]]:
    checked: list[tuple[CalculatedColumn, Formula]] = []
    readable = set(numeric_keys)
    for index, column in enumerate(definition.calculated_columns):
        where = f"definition.calculated_columns[{index}]"
        if column.key in taken:
            raise fail(f"the key {column.key!r} is taken", f"{where}.key")
        try:
            formula = compile_formula(column.formula, readable)
        except FormulaError as error:
            raise fail(str(error), f"{where}.formula") from error
        checked.append((column, formula))
        taken.add(column.key)
        readable.add(column.key)  # a later calculated column may use an earlier one
    return checked


def _check_budget_comparison(definition: TemplateDefinition, comparison: Comparison, where: str) -> None:
    if definition.dataset != "entries":
        raise fail("a budget comparison is for the entries dataset", f"{where}.kind")
    if comparison.aggregates:
        raise fail("a budget comparison adds one column, the budget: it names no aggregates", f"{where}.aggregates")
    others = [level.field for level in definition.group_by if level.field not in (None, "category")]
    if others:
        raise fail(
            "a budget comparison groups by category and a time bucket only (budgets have no other dimension)",
            f"{where}.kind",
            fields=others,
        )


SLUG = re.compile(r"[^a-z0-9]+")


def row_name(value: object) -> str:
    """The name a calculated row uses for a group value: lower case, runs of other characters as `_`
    ("Office supplies" -> office_supplies); a value starting with a digit gets a leading `v` (2024 -> v2024)."""
    slug = SLUG.sub("_", str(value).lower()).strip("_")
    return f"v{slug}" if slug[:1].isdigit() else slug
