"""Request and response shapes of the exchange rates API (`/fx/rates`)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)

from domain.dates import BusinessDate
from domain.entries.schemas import Storable
from domain.fx.rates import EUR
from domain.money import CURRENCIES, CurrencyCode, RateOut, rate_str
from domain.pagination import PageInfo

EARLIEST = date(1999, 1, 4)  # the ECB's first reference rates (the euro's first day)
_RATE_PATTERN = r"^[0-9]{1,16}(\.[0-9]{1,12})?$"
# What the document says: the same, and not zero (a digit other than 0 somewhere).
_POSITIVE_RATE_PATTERN = r"^(?=.*[1-9])[0-9]{1,16}(\.[0-9]{1,12})?$"


def _rated_currency(value: Any) -> str:
    code = TypeAdapter(CurrencyCode).validate_python(value)
    if code == EUR:
        raise ValueError("EUR is the reference of every rate (1 EUR = rate units of a currency)")
    return code


def _positive_rate(value: Any) -> Decimal:
    # A string or a number, written plainly: no exponent, NaN or Infinity; at most 12 places, as fx_rates keeps it.
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        text = ""
    if not re.match(_RATE_PATTERN, text):
        raise ValueError('rate must be a plain decimal such as "1.0854" (at most 16 digits before the point, 12 after)')
    rate = Decimal(text)
    if rate <= 0:
        raise ValueError("rate must be greater than 0")
    return rate


PositiveRate = Annotated[
    Decimal,
    BeforeValidator(_positive_rate),
    PlainSerializer(rate_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _POSITIVE_RATE_PATTERN, "examples": ["1.0854", "162.34"]}),
]
# A rate is for one unit of EUR (the ECB's form), so EUR itself has none.
RatedCurrency = Annotated[
    str,
    BeforeValidator(_rated_currency),
    WithJsonSchema({"type": "string", "enum": [code for code in CURRENCIES if code != EUR]}),
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), Storable]


class ManualRateIn(BaseModel):
    """A rate set by hand, in the ECB's form: 1 EUR = `rate` units of `currency`. On its day it wins over the imported
    rate, for submits from now on (what is already submitted keeps its locked rate)."""

    model_config = ConfigDict(extra="forbid")

    currency: RatedCurrency
    rate_date: BusinessDate
    rate: PositiveRate = Field(description="units of `currency` for 1 EUR")
    note: Note = Field("", description="where the rate comes from (a bank's quote, a central bank's fixing)")


class RateRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    currency: str
    rate_date: date
    rate: RateOut = Field(description="units of `currency` for 1 EUR")
    source: str = Field(description="ecb (imported) or manual")
    note: str | None
    created_by_id: int | None
    created_at: datetime
    in_effect: bool = Field(description="false for an imported rate that a manual rate of the same day overrides")
    to_base: RateOut | None = Field(None, description="units of the base currency for one unit of `currency` that day")


class ManualRateOut(RateRow):
    overrides: RateRow | None = Field(None, description="the imported rate of the same day this one wins over")
    replaced: RateRow | None = Field(None, description="the manual rate of the same day this one replaced")


class RatePage(PageInfo):
    items: list[RateRow]
    base_currency: str


class RateFilters(BaseModel):
    currency: CurrencyCode | None = None
    source: str | None = Field(None, pattern="^(ecb|manual)$")
    date_from: date | None = None
    date_to: date | None = None
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=100_000)
