"""Report and schedule request/response models (the API's shapes; workflow payloads live in workflows.contracts)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from domain.dates import BusinessDate
from domain.entries.schemas import Category
from domain.json_numbers import JSON_INTEGER, BodyId
from domain.money import CurrencyCode
from domain.pagination import PageInfo


class ReportType(StrEnum):
    PNL = "pnl"
    EXPENSES_BY_CATEGORY = "expenses_by_category"
    EXPENSES_BY_OWNER = "expenses_by_owner"
    REVENUE_BY_CATEGORY = "revenue_by_category"
    APPROVAL_AGING = "approval_aging"
    LEDGER = "ledger"
    BUDGET_VS_ACTUAL = "budget_vs_actual"
    RECEIVABLES = "receivables"
    TEMPLATE = "template"  # a report template's version (domain/report_templates): template_id names it


class ReportFormat(StrEnum):
    PDF = "pdf"
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"


class ReportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"  # the file was pruned by the retention policy


class RelativePeriod(StrEnum):
    """The period a scheduled run covers, relative to the run's time in the schedule's time zone."""

    PREVIOUS_MONTH = "previous_month"
    PREVIOUS_WEEK = "previous_week"
    PREVIOUS_DAY = "previous_day"
    MONTH_TO_DATE = "month_to_date"
    YEAR_TO_DATE = "year_to_date"
    PREVIOUS_YEAR = "previous_year"


CONTENT_TYPES: dict[ReportFormat, str] = {
    ReportFormat.PDF: "application/pdf",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.JSON: "application/json",
}

TITLES: dict[ReportType, str] = {
    ReportType.PNL: "Profit and loss by month",
    ReportType.EXPENSES_BY_CATEGORY: "Expenses by category",
    ReportType.EXPENSES_BY_OWNER: "Expenses by owner",
    ReportType.REVENUE_BY_CATEGORY: "Revenue by category and source",
    ReportType.APPROVAL_AGING: "Approval aging and cycle time",
    ReportType.LEDGER: "Entries ledger",
    ReportType.BUDGET_VS_ACTUAL: "Budget versus actual",
    ReportType.RECEIVABLES: "Receivables aging",
    ReportType.TEMPLATE: "Report template",
}

_Name = Category  # an entry category: no NUL, not blank, 100 characters at most


class ReportFilters(BaseModel):
    """Optional narrowing inside the requester's visibility."""

    model_config = ConfigDict(extra="forbid")

    categories: list[_Name] = Field(
        default_factory=list,
        max_length=100,
        description="budget_vs_actual: the budgets of these categories; not for receivables",
    )
    owner_ids: list[BodyId] = Field(
        default_factory=list, max_length=100, description="receivables: the invoices they own; not for budget_vs_actual"
    )
    kind: str | None = Field(default=None, pattern="^(revenue|expense)$", description="ledger only")


# Reports cover business dates (domain/dates.py: a bound far inside date's range also keeps month arithmetic, the
# P&L's month after the last, from overflowing in the activity). The longest period allowed is a setting
# (REPORT_MAX_PERIOD_DAYS), checked by the service.
_ReportDate = BusinessDate


class Period(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: _ReportDate = Field(alias="from")
    to: _ReportDate


TemplateParameters = dict[str, str | int | None]
_TemplateVersion = Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER]


class TemplateChoice(BaseModel):
    """Which report template a report (or a schedule) runs: type `template` only."""

    template_id: BodyId | None = Field(default=None, description="type template: the report template to run")
    template_version: _TemplateVersion | None = Field(
        default=None, description="type template: the version to run (default: the current one, when run)"
    )
    parameters: TemplateParameters = Field(
        default_factory=dict, max_length=20, description="type template: values of the template's parameters"
    )

    def _check_template(self, report_type: ReportType | None) -> None:
        if report_type == ReportType.TEMPLATE and self.template_id is None:
            raise ValueError("type template needs template_id")
        if report_type not in (None, ReportType.TEMPLATE) and (
            self.template_id is not None or self.template_version is not None or self.parameters
        ):
            raise ValueError("template_id, template_version and parameters are for type template only")


class ReportRequest(TemplateChoice):
    model_config = ConfigDict(extra="forbid")

    type: ReportType
    format: ReportFormat
    period: Period
    filters: ReportFilters = Field(default_factory=ReportFilters)
    presentation_currency: CurrencyCode | None = Field(
        default=None,
        description="show the amounts in this currency (ISO 4217), converted from the base currency at each entry's "
        "locked rate date; default the base currency",
        examples=["GBP"],
    )

    @model_validator(mode="after")
    def _template(self) -> ReportRequest:
        self._check_template(self.type)
        return self


# Where a report row keeps its presentation currency: beside the filters, in the same JSON (no column of its own).
PRESENTATION_KEY = "presentation_currency"


class ReportOut(BaseModel):
    id: uuid.UUID
    type: str
    format: str
    period: dict[str, date]
    filters: dict[str, Any]
    scope: dict[str, Any]
    base_currency: str | None = Field(default=None, description="the books' currency: every total is in it")
    presentation_currency: str | None = Field(
        default=None, description="the currency the amounts are shown in, when not the base currency"
    )
    status: str
    rows: int | None
    progress_rows: int | None = Field(default=None, description="rows processed so far (while running)")
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    error: str | None
    requested_by_id: int | None
    schedule_id: int | None
    workflow_id: str | None
    created_at: datetime
    completed_at: datetime | None
    download_url: str | None = None


class ReportAccepted(BaseModel):
    id: uuid.UUID
    status: str
    workflow_id: str
    status_url: str


class ReportPage(PageInfo):
    items: list[ReportOut]


# In the document: a cron expression's five fields (its values are the workflow engine's to judge).
CRON_PATTERN = r"^[ \t]*[!-~]+(?:[ \t]+[!-~]+){4}[ \t]*$"  # five fields of printable ASCII


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not re.match(CRON_PATTERN, value):
        raise ValueError("cron must have five fields: minute hour day-of-month month day-of-week")
    return " ".join(fields)


class ScheduleIn(TemplateChoice):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: ReportType
    format: ReportFormat
    cron: str = Field(min_length=9, max_length=100, examples=["0 6 1 * *"], json_schema_extra={"pattern": CRON_PATTERN})
    timezone: str = Field(default="UTC", max_length=64, description="an IANA time zone, such as Europe/Berlin")
    period: RelativePeriod = RelativePeriod.PREVIOUS_MONTH
    recipients: list[EmailStr] = Field(default_factory=list, max_length=50)
    filters: ReportFilters = Field(default_factory=ReportFilters)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @model_validator(mode="after")
    def _template(self) -> ScheduleIn:
        self._check_template(self.type)
        return self


class SchedulePatch(TemplateChoice):
    """A left-out field keeps its value; for a template schedule, template_id, template_version and parameters,
    when sent, replace the template's choice as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = None
    type: ReportType | SkipJsonSchema[None] = None
    format: ReportFormat | SkipJsonSchema[None] = None
    cron: (
        Annotated[str, Field(min_length=9, max_length=100, json_schema_extra={"pattern": CRON_PATTERN})]
        | SkipJsonSchema[None]
    ) = None
    timezone: Annotated[str, Field(max_length=64)] | SkipJsonSchema[None] = None
    period: RelativePeriod | SkipJsonSchema[None] = None
    recipients: Annotated[list[EmailStr], Field(max_length=50)] | SkipJsonSchema[None] = None
    filters: ReportFilters | SkipJsonSchema[None] = None

    @field_validator("name", "type", "format", "cron", "timezone", "period", "recipients", "filters", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # A left-out field keeps its value; null is not a value any of them can take.
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its current value")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)


class ScheduleOut(BaseModel):
    id: int
    name: str
    type: str
    format: str
    cron: str
    timezone: str
    period: str
    recipients: list[str]
    filters: dict[str, Any]
    paused: bool
    schedule_id: str = Field(description="the Temporal Schedule id (see the Temporal UI's Schedules page)")
    next_runs: list[datetime] = Field(default_factory=list)
    recent_runs: list[datetime] = Field(default_factory=list)
    created_at: datetime
