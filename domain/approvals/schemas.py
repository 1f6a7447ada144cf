"""Request and response shapes for the approvals inbox, generic approval requests and delegation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from domain.entries.schemas import HistoryStep, Storable
from domain.money import MoneyOut, PositiveMoney

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Justification = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), Storable]


class GenericRequestCreate(BaseModel):
    """A request for approval of anything (a purchase, an exception): the same chain and rules as entries."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    amount: PositiveMoney | None = None
    justification: Justification


class InboxItem(BaseModel):
    request_id: int
    step_id: int
    step: int
    round: int
    subject_kind: str
    entry_id: int | None
    title: str
    amount: MoneyOut | None
    requester_id: int
    approver_id: int
    delegate_id: int | None
    waiting_since: datetime
    remind_at: datetime | None
    escalate_at: datetime | None
    link: str
    workflow_id: str


class InboxPage(BaseModel):
    items: list[InboxItem]
    total: int
    limit: int
    offset: int


class LiveView(BaseModel):
    """What the workflow itself says right now (absent when the workflow engine cannot answer)."""

    status: str
    round: int
    current_approver_id: int | None
    step: int | None
    remind_at: datetime | None
    escalate_at: datetime | None
    expires_at: datetime | None


class ApprovalRequestOut(BaseModel):
    id: int
    subject_kind: str
    entry_id: int | None
    title: str
    justification: str
    amount: MoneyOut | None
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


class DelegationSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delegate_id: int = Field(gt=0)
    starts: AwareDatetime
    ends: AwareDatetime


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
