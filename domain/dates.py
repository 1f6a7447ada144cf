"""The business dates a client sends: an ISO 8601 calendar date (`2026-03-31`) from 2000-01-01 to 2100-12-31.

Pydantic's own `date` takes a number as a Unix time (`0` is 1970-01-01) and any year from 1 to 9999; neither is a
date anyone keeps books for, and a year far out overflows month arithmetic in reports. So every date field of a
request, and every date query parameter, is a `BusinessDate` (or a `MonthStart`): a string of that shape, in the
range, or a 422 that says so. The range is in the OpenAPI document as a pattern (JSON Schema has no keyword for a
date range), so clients and schema-driven tests generate only dates the API takes.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)

_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEAR = r"(?:20[0-9]{2}|2100)"  # EARLIEST.year to LATEST.year
_LEAP_YEAR = r"(?:20(?:[02468][048]|[13579][26]))"  # 2000 to 2096 by fours (2100 is no leap year)
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"  # the months of 31 days
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"  # of 30
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"  # February, the 29th below
)
DATE_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)$"
MONTH_START_PATTERN = rf"^{_YEAR}-(?:0[1-9]|1[0-2])-01$"


def _calendar_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # from Python code (a service, a test), already a date
    if not isinstance(value, str) or not _SHAPE.match(value):
        raise ValueError("a date is a string YYYY-MM-DD, such as 2026-03-31")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is no calendar date") from None


_INSTANT_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_instant(value: Any) -> Any:
    # Pydantic would read `0` or `"0.5"` as a Unix time; an instant is written in ISO 8601 (a datetime from Python
    # code passes as it is).
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _INSTANT_SHAPE.match(value):
        raise ValueError("a time is an ISO 8601 string such as 2026-03-31T09:30:00Z")
    return value


def _in_range(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"dates must be between {EARLIEST} and {LATEST}")
    return value


def _month_start(value: date) -> date:
    if value.day != 1:
        raise ValueError("the date must be the first day of a month")
    return value


BusinessDate = Annotated[
    date,
    BeforeValidator(_calendar_date),
    AfterValidator(_in_range),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN, "examples": ["2026-03-31"]}),
]
# A point in time, ISO 8601 (`2026-03-31T09:30:00Z`); `AwareInstant` also needs its offset.
Instant = Annotated[datetime, BeforeValidator(_iso_instant)]
AwareInstant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]
# The first day of a month (a budget's start).
MonthStart = Annotated[
    date,
    BeforeValidator(_calendar_date),
    AfterValidator(_in_range),
    AfterValidator(_month_start),
    WithJsonSchema({"type": "string", "format": "date", "pattern": MONTH_START_PATTERN, "examples": ["2026-01-01"]}),
]
