"""Request and response shapes of the ledger: accounts, their mapping, periods and journals (amounts in the base
currency unless a field says otherwise)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from domain.entries.schemas import Storable
from domain.money import AmountOut, RateOut
from domain.pagination import PageInfo

AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
MappingKind = Literal["category", "source", "payable", "receivable", "cash", "tax", "fx_gain", "fx_loss", "rounding"]
# Codes as the accounting products import them: DATEV's numbers, Xero's and QuickBooks' codes (letters, digits, and
# `.`, `-`, `_` inside).
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,18}[A-Za-z0-9])?$")
]
AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
TaxCode = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20, pattern=r"^[A-Za-z0-9._ -]*$")]
MappingKey = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), Storable]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]
MAX_MAPPINGS = 1000


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: AccountName
    type: AccountType
    tax_code: TaxCode | None = Field(default=None, description="what the importing product books the line's tax as")
    active: StrictBool = True


class AccountUpdate(BaseModel):
    """Send only what changes. A mapped account keeps a type that fits its role and stays active (409)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # a change of something

    code: Code | SkipJsonSchema[None] = None
    name: AccountName | SkipJsonSchema[None] = None
    type: AccountType | SkipJsonSchema[None] = None
    tax_code: TaxCode | None = None
    active: StrictBool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> AccountUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set - {"tax_code"}:  # tax_code null: the account has none
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class AccountOut(BaseModel):
    id: int
    code: str
    name: str
    type: AccountType
    tax_code: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class AccountPage(PageInfo):
    items: list[AccountOut]


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MappingKind
    key: MappingKey = Field(
        default="",
        description="category and source: the category or revenue source (case does not matter), or `*` for every "
        "one not mapped; empty for the other kinds",
    )
    account_code: Code


class MappingsIn(BaseModel):
    """The whole mapping: it replaces the one in force."""

    model_config = ConfigDict(extra="forbid")

    mappings: list[MappingIn] = Field(max_length=MAX_MAPPINGS)


class MappingOut(BaseModel):
    kind: MappingKind
    key: str
    account_code: str
    account_name: str
    account_type: AccountType


class MappingsOut(BaseModel):
    mappings: list[MappingOut]


class PeriodOut(BaseModel):
    month: str = Field(description="YYYY-MM")
    status: Literal["open", "closed"]
    closings: int = Field(description="how often it was closed; the journals of the last closing are in force")
    closed_by_id: int | None
    closed_at: datetime | None
    reopened_by_id: int | None
    reopened_at: datetime | None


class PeriodPage(PageInfo):
    items: list[PeriodOut]


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ClosedOut(BaseModel):
    """A closed month: what its closing wrote."""

    period: PeriodOut
    closing: int
    journals: int
    lines: int
    base_currency: str
    debit_total: AmountOut
    credit_total: AmountOut


class JournalLineOut(BaseModel):
    line_no: int
    account_code: str
    account_name: str
    debit: AmountOut
    credit: AmountOut
    currency: str = Field(description="the currency of the amount behind the line")
    original_amount: AmountOut = Field(description="in `currency`")
    rate: RateOut = Field(description="units of the base currency for one unit of `currency`")
    tax_code: str
    cost_center: str
    description: str


class JournalOut(BaseModel):
    number: str
    journal_date: date
    source_kind: Literal["entry", "invoice", "payment", "credit_note"]
    source_id: int
    description: str
    counterparty: str
    approved_by: str
    approved_at: datetime | None
    audit_hash: str
    link: str
    lines: list[JournalLineOut]


class JournalPage(PageInfo):
    month: str
    status: Literal["open", "closed"]
    closing: int | None = Field(description="the closing the journals were frozen by; null: computed now (open)")
    base_currency: str
    items: list[JournalOut]
    debit_total: AmountOut = Field(description="of every journal of the month, not only this page")
    credit_total: AmountOut
