"""Request and response shapes for customers and invoices (amounts in the invoice's own currency)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from domain.dates import BusinessDate
from domain.entries.schemas import Currency, Storable
from domain.json_numbers import JSON_INTEGER, BodyId
from domain.money import AmountOut, MoneyError, PositiveMoney, RateOut, decimal_input_schema, parse_amount
from domain.pagination import PageInfo

MAX_LINES = 200

InvoiceStatus = Literal["draft", "pending_approval", "approved", "sent", "partially_paid", "paid", "void"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), Storable]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000), Storable]
LineText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Storable]
Terms = Annotated[int, Field(ge=0, le=365, description="days from the issue date to the due date"), JSON_INTEGER]


def _decimal(value: object, what: str, *, positive: bool) -> Decimal:
    try:
        number = parse_amount(value)
    except MoneyError as error:
        raise ValueError(str(error).replace("amount", what, 1)) from error
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{what} must be {'greater than 0' if positive else 'at least 0'}")
    return number


# --- customers ----------------------------------------------------------------------------------------------------


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    billing_email: EmailStr
    currency: Currency = Field(description="ISO 4217: the currency the customer is invoiced in by default")
    payment_terms_days: Terms = 30
    address: Address = ""


class CustomerUpdate(BaseModel):
    """Send only what changes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # a change of something

    name: Name | SkipJsonSchema[None] = None
    billing_email: EmailStr | SkipJsonSchema[None] = None
    currency: Currency | SkipJsonSchema[None] = None
    payment_terms_days: Terms | SkipJsonSchema[None] = None
    address: Address | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> CustomerUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CustomerOut(BaseModel):
    id: int
    name: str
    billing_email: str
    currency: str
    payment_terms_days: int
    address: str
    version: int
    created_by_id: int
    created_at: datetime
    updated_at: datetime


class CustomerPage(PageInfo):
    items: list[CustomerOut]


# --- invoices -----------------------------------------------------------------------------------------------------


PERCENT_PATTERN = r"^(?:100(?:\.0{1,4})?|[0-9]{1,2}(?:\.[0-9]{1,4})?)$"  # 0 to 100, four places at most


class LineIn(BaseModel):
    """A line: quantity x unit price, taxed at `tax_rate` percent (19 for 19%)."""

    model_config = ConfigDict(extra="forbid")

    description: LineText
    quantity: Annotated[Decimal, decimal_input_schema(positive=True)] = Field(
        description="greater than 0, at most four decimal places"
    )
    unit_price: Annotated[Decimal, decimal_input_schema(positive=False)] = Field(
        description="in the invoice's currency, at most its decimal places"
    )
    tax_rate: Annotated[Decimal, decimal_input_schema(positive=False, maximum=100, pattern=PERCENT_PATTERN)] = Field(
        Decimal(0), description="percent, 0 to 100"
    )

    @field_validator("quantity", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> Decimal:
        return _decimal(value, "quantity", positive=True)

    @field_validator("unit_price", mode="before")
    @classmethod
    def _price(cls, value: object) -> Decimal:
        return _decimal(value, "unit_price", positive=False)

    @field_validator("tax_rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> Decimal:
        rate = _decimal(value, "tax_rate", positive=False)
        if rate > 100:
            raise ValueError("tax_rate is a percent: 0 to 100")
        return rate


class InvoiceCreate(BaseModel):
    """A new draft. The due date defaults to the issue date plus the customer's payment terms."""

    model_config = ConfigDict(extra="forbid")

    customer_id: BodyId
    currency: Currency | None = Field(None, description="ISO 4217; the customer's currency when left out")
    issue_date: BusinessDate
    due_date: BusinessDate | None = None
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    notes: Notes = ""

    @model_validator(mode="after")
    def _due_after_issue(self) -> InvoiceCreate:
        if self.due_date is not None and self.due_date < self.issue_date:
            raise ValueError("due_date must not be before issue_date")
        return self


class InvoiceUpdate(BaseModel):
    """A change to a draft; send only what changes (`lines` replaces every line)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # a change of something

    customer_id: BodyId | SkipJsonSchema[None] = None
    currency: Currency | SkipJsonSchema[None] = None
    issue_date: BusinessDate | SkipJsonSchema[None] = None
    due_date: BusinessDate | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)] | SkipJsonSchema[None] = None
    notes: Notes | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> InvoiceUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set:
            if getattr(self, name) is None and name != "due_date":
                raise ValueError(f"{name} cannot be null")
        return self


class LineOut(BaseModel):
    position: int
    kind: Literal["item", "late_fee"]
    description: str
    quantity: Decimal
    unit_price: AmountOut
    tax_rate: Decimal
    net: AmountOut
    tax: AmountOut
    reminder_step: int | None = None


class InvoiceOut(BaseModel):
    id: int
    number: str | None = Field(description="INV-YYYY-NNNN, given at approval (gap-free per year)")
    status: InvoiceStatus
    overdue: bool = Field(description="sent, not fully paid, and past its due date (computed, never stored)")
    days_overdue: int
    is_template: bool
    customer_id: int
    customer_name: str
    owner_id: int
    currency: str
    issue_date: date
    due_date: date
    notes: str
    lines: list[LineOut]
    subtotal: AmountOut
    tax_total: AmountOut
    total: AmountOut
    amount_paid: AmountOut
    amount_credited: AmountOut
    balance_due: AmountOut
    base_currency: str | None
    base_total: AmountOut | None
    fx_rate: RateOut | None
    rate_date: date | None
    approval_request_id: int | None
    workflow_id: str | None = Field(None, description="the sent invoice's reminder workflow (invoice-<id>)")
    version: int = Field(description="send it back in If-Match to change a draft")
    submitted_at: datetime | None
    approved_at: datetime | None
    sent_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None
    created_at: datetime
    updated_at: datetime


class InvoicePage(PageInfo):
    items: list[InvoiceOut]


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]


_FX_RATE = r"[0-9]{1,15}(\.[0-9]{1,12})?"  # plain notation, as stored
POSITIVE_RATE_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": rf"^(?=.*[1-9]){_FX_RATE}$"},
            {"type": "number", "exclusiveMinimum": 0, "maximum": 999_999_999_999_999, "multipleOf": 0.0001},
        ],
        "examples": ["1.0854"],
    }
)


class PaymentIn(BaseModel):
    """A payment received, in the invoice's currency. `fx_rate`: units of the base currency for one unit of the
    invoice's, as the bank converted it (else the rate stored for `paid_on`)."""

    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    paid_on: BusinessDate
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), Storable] = ""
    fx_rate: Annotated[Decimal, POSITIVE_RATE_SCHEMA] | None = Field(
        None, description="positive; at most 12 decimal places"
    )

    @field_validator("fx_rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise ValueError("fx_rate must be a plain decimal")
        text = value.strip() if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        if not re.fullmatch(_FX_RATE, text) or Decimal(text) <= 0:
            raise ValueError("fx_rate must be a positive decimal with at most 12 decimal places")
        return Decimal(text)


class PaymentOut(BaseModel):
    id: int
    invoice_id: int
    amount: AmountOut
    currency: str
    paid_on: date
    reference: str
    fx_rate: RateOut
    rate_source: str = Field(
        description="base (the invoice is in the base currency), payment (the rate sent with "
        "it), ecb or manual (the rate stored for paid_on)"
    )
    base_currency: str
    base_amount: AmountOut = Field(description="at the payment's own rate")
    booked_base: AmountOut = Field(description="at the invoice's locked rate")
    fx_difference: AmountOut = Field(description="realized FX gain (positive) or loss (negative), base currency")
    entry_id: int | None = Field(description="the approved revenue entry the payment booked (cash basis)")
    created_by_id: int
    created_at: datetime


class PaymentPage(PageInfo):
    items: list[PaymentOut]


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]


class CreditNoteTaxOut(BaseModel):
    """The part of a credit note at one tax rate of its invoice."""

    tax_rate: Decimal = Field(description="percent, as on the invoice's lines")
    net: AmountOut
    tax: AmountOut


class CreditNoteOut(BaseModel):
    id: int
    invoice_id: int
    number: str = Field(description="CN-YYYY-NNNN, gap-free per year of the credit note's date")
    amount: AmountOut
    currency: str
    net: AmountOut = Field(description="the amount less the tax it reverses")
    tax: AmountOut = Field(description="the tax it reverses: the parts' tax, added")
    by_tax_rate: list[CreditNoteTaxOut] = Field(
        description="the amount split in the invoice's proportions per tax rate (net and tax), adding up to it"
    )
    reason: str
    created_by_id: int
    created_at: datetime


class CreditNotePage(PageInfo):
    items: list[CreditNoteOut]
