"""Export batch request and response models (the API's shapes; the workflow's payloads live in workflows.contracts)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.models.ledger import EXPORT_FORMATS, EXPORT_STATUSES
from domain.pagination import PageInfo

EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 1)


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

Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-03"])]


def first_day(month: str) -> date:
    """`YYYY-MM` as its first day."""
    return date(int(month[:4]), int(month[5:7]), 1)


class ExportRequest(BaseModel):
    """A closed month and a format."""

    model_config = ConfigDict(extra="forbid")

    month: Month
    format: ExportFormat

    @field_validator("month")
    @classmethod
    def _within_bounds(cls, value: str) -> str:
        if not EARLIEST <= first_day(value) <= LATEST:
            raise ValueError("month must be between 2000-01 and 2100-12")
        return value

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
