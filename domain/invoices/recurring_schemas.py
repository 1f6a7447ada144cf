"""Request and response shapes of recurring invoices: a template invoice issued on a schedule."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.dates import BusinessDate
from domain.entries.schemas import Currency
from domain.invoices.schemas import MAX_LINES, InvoiceOut, LineIn, Notes
from domain.json_numbers import JSON_INTEGER, BodyId
from domain.pagination import PageInfo

Frequency = Literal["weekly", "monthly", "quarterly", "yearly"]
RecurringStatus = Literal["draft", "pending_approval", "active", "ended", "cancelled"]
MAX_COUNT = 1000


class TemplateIn(BaseModel):
    """What every run's invoice copies: the customer, the currency (the customer's when left out), the lines and
    the notes. Each run is dated its own day and due after the customer's payment terms."""

    model_config = ConfigDict(extra="forbid")

    customer_id: BodyId
    currency: Currency | None = Field(None, description="ISO 4217; the customer's currency when left out")
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    notes: Notes = ""


class RecurringInvoiceCreate(BaseModel):
    """A recurring invoice: the template is approved once (submit), then a schedule issues an invoice every period
    from `starts_on`, `count` times (null: until cancelled)."""

    model_config = ConfigDict(extra="forbid")

    template: TemplateIn
    frequency: Frequency
    starts_on: BusinessDate = Field(
        description="the first run's date (today or later); monthly, quarterly and yearly runs fall on its day of "
        "the month (the 29th to 31st: the month's last day in shorter months), weekly ones on its weekday",
    )
    count: Annotated[int, Field(ge=1, le=MAX_COUNT), JSON_INTEGER] | None = Field(
        None, description="how many invoices; null: until cancelled"
    )


class RecurringInvoiceOut(BaseModel):
    id: int
    status: RecurringStatus = Field(
        description="draft -> pending_approval (the template's approval) -> active (scheduled) -> ended (count "
        "reached); cancelled at any point but while waiting on approval"
    )
    frequency: Frequency
    starts_on: date
    count: int | None
    runs: int = Field(description="invoices issued so far")
    owner_id: int
    template: InvoiceOut
    schedule_id: str | None = Field(None, description="the Temporal Schedule (recurring-invoice-<id>), once active")
    next_runs: list[datetime] = Field(
        [],
        description="the schedule's next times (UTC): on GET /recurring-invoices/{id} of an active one, when the "
        "workflow engine can tell",
    )
    version: int
    created_at: datetime
    updated_at: datetime


class RecurringInvoicePage(PageInfo):
    items: list[RecurringInvoiceOut]
