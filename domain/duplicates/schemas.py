"""A possible duplicate as the requester and the approvers see it (on the expense, on its approval request)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, model_validator

from domain.duplicates.repository import DuplicateRow
from domain.money import AmountOut, in_minor_units, minor_units


class DuplicateDetails(BaseModel):
    """The other entry as the check found it, and what matched."""

    amount: AmountOut | None = Field(
        None, description="the other entry's base amount (a draft's own amount, in its own currency)"
    )
    currency: str | None = None
    date: dt.date | None = Field(None, description="the other entry's date")
    vendor: str | None = None
    status: str | None = Field(None, description="the other entry's status when it was found")
    similarity: float | None = Field(None, description="`similar`: pg_trgm similarity of the two vendors (0..1)")
    sha256: str | None = Field(None, description="`same_receipt`: the SHA-256 of the receipt both entries carry")
    receipts: int | None = Field(None, description="`same_receipt`: how many distinct receipts they share")

    @model_validator(mode="after")
    def _in_minor_units(self) -> DuplicateDetails:
        if self.amount is not None and self.currency is not None and minor_units(self.currency) is not None:
            self.amount = in_minor_units(self.amount, self.currency)
        return self


class PossibleDuplicate(BaseModel):
    id: int
    other_entry_id: int
    reason: str = Field(description="similar (same owner, amount, date and vendor) or same_receipt")
    details: DuplicateDetails
    dismissed: bool
    dismissed_by: int | None = Field(None, description="the user who dismissed it")
    dismissed_at: dt.datetime | None = None
    dismiss_reason: str | None = None

    @classmethod
    def of(cls, row: DuplicateRow) -> PossibleDuplicate:
        return cls(
            id=row.id,
            other_entry_id=row.other_entry_id,
            reason=row.reason,
            details=DuplicateDetails.model_validate(row.details),
            dismissed=row.dismissed_at is not None,
            dismissed_by=row.dismissed_by_id,
            dismissed_at=row.dismissed_at,
            dismiss_reason=row.dismiss_reason,
        )
