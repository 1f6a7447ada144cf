"""Export batch request and response models (the API's shapes; the workflow's payloads live in workflows.contracts)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.ledger import months
from domain.models.ledger import EXPORT_FORMATS, EXPORT_STATUSES
from domain.pagination import PageInfo


class ExportFormat(StrEnum):
    JOURNAL_CSV = "journal_csv"  # our own balanced journal CSV
    XERO = "xero"  # Xero's manual journal import
    QUICKBOOKS = "quickbooks"  # QuickBooks Online's journal entry import
    DATEV = "datev"  # DATEV's EXTF booking batch (Buchungsstapel)


class ExportStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


assert {f.value for f in ExportFormat} == set(EXPORT_FORMATS)
assert {s.value for s in ExportStatus} == set(EXPORT_STATUSES)

# The years the books are kept in (domain/ledger/months.py), in the query as in the body: `0000-01` is no month.
Month = Annotated[str, Field(pattern=months.PATTERN, examples=["2026-03"])]


def first_day(month: str) -> date:
    """`YYYY-MM` as its first day."""
    return date(int(month[:4]), int(month[5:7]), 1)


class ExportRequest(BaseModel):
    """A closed month and a format."""

    model_config = ConfigDict(extra="forbid")

    month: Month
    format: ExportFormat

    @property
    def first_day(self) -> date:
        return first_day(self.month)


class ExportOut(BaseModel):
    id: int
    number: int  # gap-free, one series for all exports
    month: str  # YYYY-MM
    closing: int  # which closing of the month the journals are from
    format: ExportFormat
    status: ExportStatus
    workflow_id: str
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    journals: int | None
    error: str | None
    created_by_id: int
    created_at: datetime
    completed_at: datetime | None
    download_url: str | None


class ExportPage(PageInfo):
    items: list[ExportOut]
