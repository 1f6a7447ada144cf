"""The approval path's tables as plain rows (frozen dataclasses), read and written with SQL (core/sql.py).

Entries, approval requests and their steps are what every submission and decision touches, so their services work on
these instead of ORM objects. The fields are the tables' columns (tests/foundation/test_rows.py holds them to the
models above), and the row's attribute names match the ORM model's, so schemas read either with `from_attributes`.
A row is what the database had when it was read: a change is an UPDATE that returns the new row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def approval_title(category: str, description: str, vendor: str | None, source: str | None) -> str:
    """How an entry is named in its approval request, notifications and emails."""
    party = vendor or source
    text = f"{category}: {description}" if description else category
    return f"{text} ({party})" if party else text


@dataclass(frozen=True)
class EntryRow:
    id: int
    kind: str
    amount: Decimal
    currency: str
    category: str
    description: str
    entry_date: date
    source: str | None
    vendor: str | None
    owner_id: int
    status: str
    workflow_id: str | None
    approval_request_id: int | None
    version: int
    submitted_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    base_currency: str | None  # the rate locked at submit (None for a draft)
    fx_rate: Decimal | None
    rate_date: date | None
    rate_source: str | None
    base_amount: Decimal | None

    @property
    def approval_title(self) -> str:
        return approval_title(self.category, self.description, self.vendor, self.source)


@dataclass(frozen=True)
class RequestRow:
    id: int
    subject_kind: str
    entry_id: int | None
    title: str
    justification: str
    amount: Decimal | None
    requester_id: int
    status: str
    workflow_id: str
    policy_version: str
    chain: list[Any]
    round: int
    submitted_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    limits: dict[str, Any] | None  # pinned at submit (None: opened before they were kept with the request)
    currency: str | None  # the entry's own currency and amount, and the rate that made `amount` (its base amount)
    original_amount: Decimal | None
    fx_rate: Decimal | None
    rate_date: date | None
    rate_source: str | None
    invoice_id: int | None  # an invoice's approval (subject_kind `invoice`)


@dataclass(frozen=True)
class StepRow:
    id: int
    request_id: int
    sequence: int
    round: int
    level: int
    approver_id: int
    delegate_id: int | None
    decided_by_id: int | None
    status: str
    comment: str | None
    rule: str | None
    remind_at: datetime | None
    escalate_at: datetime | None
    reminded_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    opened_at: datetime  # when it began waiting, on the opener's clock (its cycle time counts from it)


@dataclass(frozen=True)
class DelegationRow:
    id: int
    user_id: int
    delegate_id: int
    starts: datetime
    ends: datetime
    revoked_at: datetime | None
    created_at: datetime
