"""Request and response shapes for the approvals inbox, generic approval requests and delegation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.budgets.checks import BudgetFlag
from domain.dates import AwareInstant
from domain.duplicates.schemas import PossibleDuplicate
from domain.entries.schemas import HistoryStep, Storable
from domain.json_numbers import BodyId
from domain.models.rows import RequestRow
from domain.money import AmountOut, PositiveMoney, RateOut, in_minor_units
from domain.pagination import PageInfo

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Justification = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), Storable]


class GenericRequestCreate(BaseModel):
    """A request for approval of anything (a purchase, an exception): the same chain and rules as entries."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    amount: PositiveMoney | None = None
    justification: Justification


class Priced(BaseModel):
    """What a request is for, as every approver sees it: the base amount its limits compare, locked at submit, and
    the entry's own amount and currency with the rate that made the one from the other."""

    amount: AmountOut | None = Field(description="in base_currency; an entry's amount at the rate locked at submit")
    base_currency: str
    currency: str | None = Field(None, description="the entry's own currency (None: a request without an entry)")
    original_amount: AmountOut | None = Field(None, description="the entry's own amount, in `currency`")
    fx_rate: RateOut | None = Field(None, description="units of base_currency for one unit of currency")
    rate_date: date | None = None
    rate_source: str | None = Field(None, description="base (same currency), ecb or manual")

    @classmethod
    def money_of(cls, request: RequestRow, base_currency: str) -> dict[str, object]:
        """The fields above from a request row (amounts stored with four places, shown with their currency's)."""
        return {
            "amount": None if request.amount is None else in_minor_units(request.amount, base_currency),
            "base_currency": base_currency,
            "currency": request.currency,
            "original_amount": None
            if request.original_amount is None or request.currency is None
            else in_minor_units(request.original_amount, request.currency),
            "fx_rate": request.fx_rate,
            "rate_date": request.rate_date,
            "rate_source": request.rate_source,
        }


class InboxItem(Priced):
    request_id: int
    step_id: int
    step: int
    round: int
    subject_kind: str
    entry_id: int | None
    invoice_id: int | None = Field(None, description="an invoice's approval before it is sent")
    title: str
    requester_id: int
    approver_id: int
    delegate_id: int | None
    waiting_since: datetime
    remind_at: datetime | None
    escalate_at: datetime | None
    link: str
    workflow_id: str
    budgets: list[BudgetFlag] = Field(
        [], description="the budgets this round is charged to; `over` with policy warn or extra_approval flags it"
    )
    budget_id: int | None = Field(
        None, description="set when this step is the extra approval an over-budget budget asks for"
    )
    possible_duplicates: int = Field(
        0, description="possible duplicates of the request's expense nobody has dismissed (GET /approvals/{id} lists)"
    )


class InboxPage(PageInfo):
    items: list[InboxItem]


class LiveView(BaseModel):
    """What the workflow itself says right now (absent when the workflow engine cannot answer)."""

    status: str
    round: int
    current_approver_id: int | None
    step: int | None
    remind_at: datetime | None
    escalate_at: datetime | None
    expires_at: datetime | None


class ApprovalRequestOut(Priced):
    id: int
    subject_kind: str
    entry_id: int | None
    invoice_id: int | None = Field(None, description="an invoice's approval before it is sent")
    title: str
    justification: str
    requester_id: int
    status: str
    round: int
    workflow_id: str
    workflow_url: str
    policy_version: str
    chain: list[dict[str, object]]
    submitted_at: datetime | None
    decided_at: datetime | None
    steps: list[HistoryStep] = []
    live: LiveView | None = None
    budgets: list[BudgetFlag] = Field([], description="the budgets the current round is charged to")
    possible_duplicates: list[PossibleDuplicate] = Field(
        [], description="the possible duplicates of the request's expense found at submit, dismissed ones included"
    )


class DelegationSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delegate_id: BodyId
    starts: AwareInstant
    ends: AwareInstant


class DelegationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    delegate_id: int
    starts: datetime
    ends: datetime
    active: bool = False
    rerouted: list[str] = Field(default=[], description="workflows whose waiting step now goes to the delegate")
    reroute_failed: list[str] = Field(
        default=[], description="workflows not reached (engine away): the delegate may still decide; retry to notify"
    )
