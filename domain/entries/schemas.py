"""Request and response shapes for revenue and expense entries (one shape, a kind-specific field each)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import core_schema

from domain.budgets.checks import BudgetFlag
from domain.dates import BusinessDate
from domain.duplicates.schemas import PossibleDuplicate
from domain.models import EntryStatus
from domain.money import AmountOut, CurrencyCode, PositiveMoney, RateOut, in_minor_units


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here answers clearly instead of failing deep in a transaction
    # (or in a workflow's activity, for comments carried into the approval).
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


class _StorableText:
    """Text PostgreSQL can keep: refused with a clear message when it holds NUL, and declared so in the document (a
    pattern), so clients and schema-driven tests do not send it as valid."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json = handler(schema)
        # Blanks are stripped first, so a required text needs something besides them.
        pattern = NOT_BLANK_PATTERN if json.get("minLength", 0) >= 1 else NO_NUL_PATTERN
        return {**json, "pattern": pattern}


NO_NUL_PATTERN = "^[^\\u0000]*$"
# Something besides blanks, and no NUL (no lookahead: generators draw from lookaheads slowly). Blanks as Python's
# strip() has them: ECMA's \\s and the separators U+001C to U+001F and U+0085.
NOT_BLANK_PATTERN = "^[^\\u0000]*[^\\s\\u0000\\u001c-\\u001f\\u0085][^\\u0000]*$"
Storable = _StorableText()
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000), Storable]
Party = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Currency = CurrencyCode
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), Storable]
RequiredText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]


class EntryCreate(BaseModel):
    """A new draft. Revenue names its `source`, an expense its `vendor`."""

    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    currency: Currency | None = Field(default=None, description="ISO 4217; the base currency when left out")
    category: Category
    description: Description = ""
    entry_date: BusinessDate


class RevenueCreate(EntryCreate):
    source: Party | None = None


class ExpenseCreate(EntryCreate):
    vendor: Party | None = None


class EntryUpdate(BaseModel):
    """A change to a draft (or an entry returned for changes); send only the fields that change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # a change of something

    amount: PositiveMoney | SkipJsonSchema[None] = None
    currency: Currency | SkipJsonSchema[None] = None
    category: Category | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    entry_date: BusinessDate | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> EntryUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set & {"amount", "currency", "category", "entry_date", "description"}:
            if getattr(self, name) is None:  # refused here, before the version is compared: a 422, not a 412
                raise ValueError(f"{name} cannot be empty")
        return self


class RevenueUpdate(EntryUpdate):
    source: Party | None = None


class ExpenseUpdate(EntryUpdate):
    vendor: Party | None = None


class EntryOut(BaseModel):
    """An entry in its own currency and, once submitted, in the base currency at the rate its submit locked."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    amount: AmountOut = Field(description="in `currency`, with its decimal places (JPY none, USD two, BHD three)")
    currency: str
    base_currency: str | None = Field(None, description="the books' currency, once submitted")
    base_amount: AmountOut | None = Field(None, description="amount x fx_rate, locked at submit; what limits compare")
    fx_rate: RateOut | None = Field(None, description="units of base_currency for one unit of currency")
    rate_date: date | None = Field(None, description="the date of the rate locked (on or before the entry date)")
    rate_source: str | None = Field(None, description="base (same currency), ecb or manual")
    indicative_base_amount: AmountOut | None = Field(
        None, description="a draft's amount at the rate a submit would lock now (None: no rate, or not a draft)"
    )
    indicative_rate: RateOut | None = None
    budget_check: list[BudgetFlag] | None = Field(
        None,
        description="on a new expense draft: the budgets it falls in, what each has available now and whether the "
        "draft would go over (a submit then follows each budget's policy: block refuses, extra_approval adds a level)",
    )
    possible_duplicates: list[PossibleDuplicate] | None = Field(
        None,
        description="an expense's possible duplicates found at submit (dismissed ones included), on its own page "
        "and in its submit's answer; null in lists and other answers",
    )
    category: str
    description: str
    entry_date: date
    source: str | None = None
    vendor: str | None = None
    owner_id: int
    status: EntryStatus
    version: int = Field(description="send it back in If-Match to change the entry")
    workflow_id: str | None
    approval_request_id: int | None
    submitted_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="after")
    def _in_minor_units(self) -> EntryOut:
        # Stored with four places (NUMERIC(19, 4), any currency); shown with the currency's own.
        self.amount = in_minor_units(self.amount, self.currency)
        if self.base_amount is not None and self.base_currency is not None:
            self.base_amount = in_minor_units(self.base_amount, self.base_currency)
        return self


class EntryPage(BaseModel):
    items: list[EntryOut]
    total: int = Field(description="matching entries, counted up to 1,000 (see total_exact)")
    total_exact: bool = Field(description="false when more than 1,000 entries match: total is then 1,000")
    limit: int
    offset: int = Field(description="0 on a page read with a cursor")
    next_cursor: str | None = Field(
        None, description="send it as `cursor` for the next page; null on the last page (or with no cursor support)"
    )
    next_updated_since: datetime | None = Field(
        None,
        description="with `updated_since`: the time to send as `updated_since` on your next sync (it overlaps this "
        "one a little, so a change committed while this one read is not missed)",
    )
    deleted_ids: list[int] | None = Field(
        None,
        description="with `updated_since`: ids of drafts deleted since then (of either kind; ids are unique across "
        "both): drop them if you hold them. Only drafts can be deleted; every other change shows in `items`",
    )


class EntrySort(StrEnum):
    DATE = "date"
    AMOUNT = "amount"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class EntryFilters(BaseModel):
    status: EntryStatus | None = None
    category: str | None = None
    owner_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    sort: EntrySort = EntrySort.DATE
    order: SortOrder = SortOrder.DESC
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)
    updated_since: datetime | None = None


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RequiredText


class ChangesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: RequiredText


class DismissDuplicateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RequiredText


class HistoryEvent(BaseModel):
    """One line of the trail: what happened, who did it, when, and their comment."""

    at: datetime
    action: str
    actor_id: int | None
    actor_name: str | None
    summary: str
    comment: str | None = None
    step: int | None = None


class HistoryStep(BaseModel):
    sequence: int
    round: int
    level: int
    status: str
    approver_id: int
    approver_name: str | None
    delegate_id: int | None
    decided_by_id: int | None
    decided_by_name: str | None
    on_behalf_of_id: int | None = Field(description="set when a delegate decided for the approver")
    comment: str | None
    rule: str | None
    opened_at: datetime
    remind_at: datetime | None
    escalate_at: datetime | None
    decided_at: datetime | None
    summary: str
    budget_id: int | None = Field(
        None, description="the over-budget budget whose extra approval this level is (the current round's chain)"
    )


class ApprovalHistory(BaseModel):
    request_id: int | None
    status: str
    round: int | None
    workflow_id: str | None
    workflow_url: str | None = Field(description="the workflow in the Temporal UI")
    policy_version: str | None
    chain: list[dict[str, object]]
    steps: list[HistoryStep]
    events: list[HistoryEvent]
