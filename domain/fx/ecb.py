"""The European Central Bank's euro foreign exchange reference rates, in the format it publishes them: one `Cube` a
day (`time`), holding one `Cube` a currency with its rate as "1 EUR = rate units of the currency".

    https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml     (the last working day)
    https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml  (the last 90 days, newest first)

No rates are published on weekends and TARGET holidays: a day missing from a file is a day without rates, not an
error. A day with anything unreadable is refused as a whole (never half a day's rates), and said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree

from domain.money import is_currency

_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
MAX_BYTES = 2_000_000  # the 90-day file is about 30 KB; anything far larger is not what we asked for


class EcbFormatError(ValueError):
    """The document is not an ECB reference rates file at all."""


@dataclass(frozen=True)
class DayRates:
    day: date
    rates: dict[str, Decimal]  # currency -> units of it for 1 EUR


@dataclass
class Parsed:
    days: list[DayRates] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # the day as written -> why its rates were not taken


def parse(document: bytes) -> Parsed:
    """The days of an ECB file, oldest first; a day with an unreadable date, currency or rate is refused whole."""
    if len(document) > MAX_BYTES:
        raise EcbFormatError(f"the file is {len(document)} bytes; an ECB rates file is far smaller")
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - expat refuses external entities and entity bombs
    except ElementTree.ParseError as error:
        raise EcbFormatError(f"not XML: {error}") from None
    outer = root.find(f"{_NS}Cube")
    if outer is None:
        raise EcbFormatError("no Cube element: not an ECB reference rates file")
    parsed = Parsed()
    for day_cube in outer.findall(f"{_NS}Cube"):
        written = day_cube.get("time", "")
        try:
            parsed.days.append(DayRates(date.fromisoformat(written), _rates(day_cube)))
        except ValueError as error:
            parsed.refused[written or "(no time)"] = str(error)
    parsed.days.sort(key=lambda day: day.day)
    return parsed


def _rates(day_cube: ElementTree.Element) -> dict[str, Decimal]:
    rates: dict[str, Decimal] = {}
    for cube in day_cube.findall(f"{_NS}Cube"):
        currency, written = cube.get("currency", ""), cube.get("rate", "")
        if not is_currency(currency):
            raise ValueError(f"unknown currency {currency!r}")
        try:
            rate = Decimal(written)
        except InvalidOperation:
            raise ValueError(f"{currency}: the rate {written!r} is not a number") from None
        if not rate.is_finite() or rate <= 0:
            raise ValueError(f"{currency}: the rate {written!r} is not a positive number")
        rates[currency] = rate
    if not rates:
        raise ValueError("no rates")
    return rates
