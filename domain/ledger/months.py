"""A month of the books, written `YYYY-MM` (2026-11) and kept as its first day.

Its bounds are dates for what is dated (entries, invoices, payments) and UTC instants for what is timestamped
(credit notes, late fees, voids): a month is the same 24-hour days for every source.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from domain.errors import ValidationFailed

FIRST = date(2000, 1, 1)
LAST = date(2100, 12, 1)
# What a path or query parameter must look like (the years the API accepts dates in).
PATTERN = r"^(20\d\d|2100)-(0[1-9]|1[0-2])$"
_PATTERN = re.compile(PATTERN)


def parse(text: str) -> date:
    """`YYYY-MM` as its first day; 422 for anything else."""
    if not _PATTERN.match(text):
        raise ValidationFailed(f"a month is written YYYY-MM between 2000-01 and 2100-12, not {text!r}", field="month")
    return date(int(text[:4]), int(text[5:7]), 1)


def label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def following(month: date) -> date:
    """The first day of the next month."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def start(month: date) -> datetime:
    """The month's first instant (UTC)."""
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def lock_key(month: date) -> int:
    """The month's number in its advisory lock (the trigger's `year * 12 + month - 1`, migration 0014)."""
    return month.year * 12 + month.month - 1
