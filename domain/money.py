"""Money: `Decimal`, in a currency with the minor units ISO 4217 gives it (JPY 0, BHD 3, most 2). Parsing,
validation and every rounding live here and nowhere else; each rounding names its rule (half-up unless said).

The currencies are ISO 4217's list as the maintained `iso4217` package carries it (its table is the ISO
maintenance agency's), not a table typed here.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from iso4217 import Currency
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
MAX_PLACES = 4  # ISO 4217's largest minor unit (CLF, UYW)
# Plain decimal notation only: no exponent, no NaN/Infinity, no thousands separators.
# Fifteen digits before the point: what NUMERIC(19, 4) holds.
_AMOUNT_PATTERN = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$")  # ASCII digits only (`\d` takes any script's)


@functools.cache
def minor_units(currency: str) -> int | None:
    """The currency's decimal places (JPY 0, USD 2, BHD 3), or None when it is no ISO 4217 currency with minor units
    (an unknown code, or a metal or fund code such as XAU, which has none)."""
    try:
        return Currency(currency.upper()).exponent  # type: ignore[no-any-return]
    except ValueError:
        return None


def is_currency(code: str) -> bool:
    """A currency money can be kept in: known to ISO 4217, with minor units."""
    return len(code) == 3 and minor_units(code) is not None


# Every code money can be kept in, for the OpenAPI document's enum.
CURRENCIES = tuple(sorted(currency.code for currency in Currency if currency.exponent is not None))


def _currency_code(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(code := value.strip().upper()):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code with minor units (such as EUR, USD, JPY)")
    return code


# In requests: an ISO 4217 code with minor units, in any case (`usd` is USD); the document lists them.
CurrencyCode = Annotated[
    str,
    BeforeValidator(_currency_code),
    WithJsonSchema({"type": "string", "enum": list(CURRENCIES), "description": "ISO 4217, with minor units"}),
]


def places_of(amount: Decimal) -> int:
    """How many decimal places the amount is written with (12.50 has two)."""
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def fits(amount: Decimal, currency: str) -> bool:
    """The amount needs no more places than the currency allows (12.345 fits BHD, not USD; 1234.5 not JPY; 12.500
    fits USD: trailing zeros are not cents)."""
    units = minor_units(currency)
    return units is not None and places_of(amount.normalize()) <= units


def in_minor_units(amount: Decimal, currency: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    """The amount to the currency's minor units (JPY 1235, USD 12.35, BHD 12.345): half-up unless a rule says
    otherwise (a converted amount is rounded once, here)."""
    units = minor_units(currency)
    if units is None:
        raise ValueError(f"{currency} is not a currency money can be kept in")
    return amount.quantize(Decimal(1).scaleb(-units), rounding=rounding)


class MoneyError(ValueError):
    pass


def parse_amount(value: Any) -> Decimal:
    """Parse a client's amount (string or number) into a Decimal, as written (up to four places: whether they fit
    the amount's currency is checked where the currency is known, `fits`).

    Floats are accepted only because JSON numbers arrive as floats; their shortest repr is checked
    against the same pattern as strings, so 0.1 + 0.2 noise or 1e3 never slips through.
    """
    if isinstance(value, bool) or value is None:
        raise MoneyError('amount must be a decimal string such as "12.50"')
    if isinstance(value, Decimal):
        text = format(value, "f") if value.is_finite() else str(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise MoneyError('amount must be a decimal string such as "12.50"')
    if not _AMOUNT_PATTERN.match(text):
        raise MoneyError(
            f"amount must be a plain decimal with at most {MAX_PLACES} decimal places (no exponent, NaN or Infinity)"
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise MoneyError("amount is not a number") from exc


def positive_amount(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount <= 0:
        raise MoneyError("amount must be greater than 0")
    return amount


def money_str(amount: Decimal, currency: str | None = None) -> str:
    """As a string with the currency's places (two when no currency is given: a total in cents)."""
    if currency is not None and minor_units(currency) is not None:
        return format(in_minor_units(amount, currency), "f")
    return format(amount.quantize(CENT, rounding=ROUND_HALF_EVEN), "f")


def trimmed(value: Decimal) -> Decimal:
    """A quantity or rate without the zeros its column pads it with: 2.5, 10, 19 (`normalize` alone turns 10 into
    1E+1, which JSON and a PDF would show as such)."""
    return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()


def plain_str(amount: Decimal) -> str:
    """As stored, already in its currency's minor units (an entry's amount as the service put it out)."""
    return format(amount, "f")


_amount_schema = WithJsonSchema(
    {"type": "string", "pattern": r"^-?\d+(\.\d{1,4})?$", "examples": ["125.00", "1250", "12.345"]}
)
_LARGEST = 999_999_999_999_999.9999  # fifteen digits and four places: what NUMERIC(19, 4) holds


def decimal_input_schema(
    *, positive: bool, integer_digits: int = 15, maximum: float = _LARGEST, pattern: str | None = None
) -> WithJsonSchema:
    """A decimal a client sends, as a string (or a number) of at most `integer_digits` digits and four places; more
    than 0 when `positive` (the string then has a digit other than 0: a lookahead, as JSON Schema has no minimum
    for strings)."""
    nonzero = "(?=.*[1-9])" if positive else ""
    bound = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": pattern or rf"^{nonzero}[0-9]{{1,{integer_digits}}}(\.[0-9]{{1,4}})?$"},
                {"type": "number", **bound, "maximum": maximum, "multipleOf": 0.0001},
            ],
            "examples": ["125.00"],
        }
    )


_money_input_schema = decimal_input_schema(positive=True)

# In responses: an amount already in its currency's minor units (JPY "1250", USD "125.00", BHD "12.345").
AmountOut = Annotated[Decimal, PlainSerializer(plain_str, return_type=str), _amount_schema]


def rate_str(rate: Decimal) -> str:
    """An exchange rate without its trailing zeros (1.0854, not 1.085400000000)."""
    text = format(rate, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_rate_schema = WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["1.0854", "0.00613"]})
# In responses: an exchange rate (units of one currency for one unit of another).
RateOut = Annotated[Decimal, PlainSerializer(rate_str, return_type=str), _rate_schema]
# In requests: a positive amount with at most four places, as a string or a number (its currency's own places are
# checked where the currency is known).
PositiveMoney = Annotated[
    Decimal, BeforeValidator(positive_amount), PlainSerializer(plain_str, return_type=str), _money_input_schema
]
