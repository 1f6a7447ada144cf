"""Request and response shapes for budgets (amounts in the base currency)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from domain.dates import MonthStart
from domain.entries.schemas import Category, Storable
from domain.json_numbers import JSON_INTEGER, BodyId
from domain.money import AmountOut, PositiveMoney
from domain.pagination import PageInfo

Policy = Literal["ignore", "warn", "extra_approval", "block"]
PeriodKind = Literal["month", "quarter", "year"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), Storable]
Threshold = Annotated[int, Field(ge=1, le=1000, description="percent of the period's amount"), JSON_INTEGER]
MAX_PERIODS = 60


def _thresholds(values: list[int] | None) -> list[int] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("thresholds must differ from each other")
    return sorted(values) if values is not None else None


class BudgetCreate(BaseModel):
    """A budget for a team (a manager and everyone below them), a category, or a category within a team."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    team_manager_id: BodyId | None = Field(None, description="the manager whose team subtree the budget covers")
    category: Category | None = Field(None, description="the expense category the budget covers")
    period: PeriodKind
    starts_on: MonthStart = Field(description="the first day of a month; quarters and years count from it")
    amounts: list[PositiveMoney] = Field(min_length=1, max_length=MAX_PERIODS, description="one per period")
    policy: Policy = "warn"
    thresholds: list[Threshold] = Field(default=[80, 100], max_length=10, json_schema_extra={"uniqueItems": True})
    owner_id: BodyId | None = Field(None, description="who is alerted and approves over-budget spend")

    _distinct = field_validator("thresholds")(_thresholds)

    @model_validator(mode="after")
    def _scoped(self) -> BudgetCreate:
        if self.team_manager_id is None and self.category is None:
            raise ValueError("a budget needs a scope: team_manager_id, category, or both")
        return self


class BudgetRevision(BaseModel):
    """A new version: send only what changes. `amounts` lists every period (it may add periods at the end)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # a change of something

    name: Name | SkipJsonSchema[None] = None
    amounts: Annotated[list[PositiveMoney], Field(min_length=1, max_length=MAX_PERIODS)] | SkipJsonSchema[None] = None
    policy: Policy | SkipJsonSchema[None] = None
    thresholds: (
        Annotated[list[Threshold], Field(max_length=10, json_schema_extra={"uniqueItems": True})] | SkipJsonSchema[None]
    ) = None
    owner_id: BodyId | SkipJsonSchema[None] = None

    _distinct = field_validator("thresholds")(_thresholds)

    @model_validator(mode="after")
    def _something(self) -> BudgetRevision:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be empty")
        return self


class BudgetPeriodOut(BaseModel):
    """One period of a budget (named apart from the ledger's PeriodOut: one name per API schema)."""

    starts_on: date
    ends_on: date = Field(description="exclusive")
    label: str
    amount: AmountOut
    committed: AmountOut = Field(description="held by expenses waiting for approval")
    actual: AmountOut = Field(description="spent: approved expenses")
    available: AmountOut = Field(description="amount - committed - actual (negative when over)")
    used_percent: float


class BudgetOut(BaseModel):
    id: int
    name: str
    team_manager_id: int | None
    category: str | None
    period: PeriodKind
    starts_on: date
    policy: Policy
    thresholds: list[int]
    owner_id: int
    version: int = Field(description="send it back in If-Match to revise the budget")
    currency: str = Field(description="the base currency: budgets are kept in it")
    created_by_id: int
    created_at: datetime
    updated_at: datetime
    periods: list[BudgetPeriodOut]


class BudgetPage(PageInfo):
    items: list[BudgetOut]


class BudgetVersionOut(BaseModel):
    budget_id: int
    version: int
    created_by_id: int
    created_at: datetime
    budget: dict[str, Any] = Field(description="the budget as this version saved it (amounts per period)")
