"""Money: `Decimal` with exactly two places. Parsing and validation live here and nowhere else."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
# Plain decimal notation only: no exponent, no NaN/Infinity, no thousands separators.
_AMOUNT_PATTERN = re.compile(r"^-?\d{1,16}(\.\d{1,2})?$")


class MoneyError(ValueError):
    pass


def parse_amount(value: Any) -> Decimal:
    """Parse a client's amount (string or number) into a Decimal with two places.

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
            "amount must be a plain decimal with at most two decimal places (no exponent, NaN or Infinity)"
        )
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise MoneyError("amount is not a number") from exc
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def positive_amount(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount <= 0:
        raise MoneyError("amount must be greater than 0")
    return amount


def money_str(amount: Decimal) -> str:
    return format(amount.quantize(CENT), "f")


_money_schema = WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["125.00"]})
_money_input_schema = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\d{1,16}(\.\d{1,2})?$"},
            {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
        ],
        "examples": ["125.00"],
    }
)

# In responses: always a string with two places.
MoneyOut = Annotated[Decimal, PlainSerializer(money_str, return_type=str), _money_schema]
# In requests: a positive amount with at most two places, as a string or a number.
PositiveMoney = Annotated[
    Decimal, BeforeValidator(positive_amount), PlainSerializer(money_str, return_type=str), _money_input_schema
]
