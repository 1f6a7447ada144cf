"""Series a client can plot: one list of labels and, per series, one value for each label (a decimal string, or null
where there is nothing to show). Shared by the analytics and the dashboard, and drawn as-is in the PDF reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from domain.money import plain_str


class Unit(StrEnum):
    MONEY = "money"  # in the base currency, to its minor units
    PERCENT = "percent"  # two places
    COUNT = "count"
    HOURS = "hours"
    DAYS = "days"


class PlotSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    unit: Unit
    values: list[str | None] = Field(description="one per label, as decimal strings; null: no figure for that label")


class Chart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    labels: list[str]
    series: list[PlotSeries]


def values_of(numbers: Iterable[Decimal | int | str | None]) -> list[str | None]:
    """Decimal strings as written (money already in minor units), counts as integers' strings."""
    found: list[str | None] = []
    for number in numbers:
        if number is None:
            found.append(None)
        elif isinstance(number, Decimal):
            found.append(plain_str(number))
        else:
            found.append(str(number))
    return found


def series(name: str, unit: Unit, numbers: Iterable[Decimal | int | str | None]) -> PlotSeries:
    return PlotSeries(name=name, unit=unit, values=values_of(numbers))


class MonthFigures(Protocol):
    month: str
    revenue: Decimal
    expenses: Decimal
    net: Decimal


def money_by_month(rows: Sequence[MonthFigures]) -> Chart:
    """Revenue, expenses and net by month: the trends' and the dashboard KPI's first chart."""
    return Chart(
        title="Revenue, expenses and net by month",
        labels=[row.month for row in rows],
        series=[
            series("revenue", Unit.MONEY, [row.revenue for row in rows]),
            series("expenses", Unit.MONEY, [row.expenses for row in rows]),
            series("net", Unit.MONEY, [row.net for row in rows]),
        ],
    )
