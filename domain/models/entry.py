from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, Timestamps


class EntryKind(StrEnum):
    REVENUE = "revenue"
    EXPENSE = "expense"


class EntryStatus(StrEnum):
    DRAFT = "draft"
    PENDING = "pending"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


ENTRY_KINDS = tuple(kind.value for kind in EntryKind)
ENTRY_STATUSES = tuple(status.value for status in EntryStatus)


LIST_FILTER_COLUMNS = ("owner_id", "status", "category", "entry_date", "amount")


def _cover(*keys: str) -> list[str]:
    """The list filter columns an index does not already have as keys."""
    return [column for column in LIST_FILTER_COLUMNS if column not in keys]


class Entry(Timestamps, Base):
    """A revenue or an expense entry; `kind` says which (revenue has `source`, expenses a `vendor`).

    The table's definition (for migrations); the code reads and writes entries as `EntryRow`s through
    `domain.entries.repository`."""

    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint(f"kind IN {ENTRY_KINDS!r}", name="kind_known"),
        CheckConstraint(f"status IN {ENTRY_STATUSES!r}", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # Every list index carries the list's filter columns (migration 0006): the page's ids come from an
        # index-only scan, whatever the viewer's scope and filters.
        Index(
            "ix_entries_kind_owner_date",
            "kind",
            "owner_id",
            "entry_date",
            "id",
            postgresql_include=_cover("owner_id", "entry_date"),
        ),
        Index(
            "ix_entries_kind_owner_amount_id",
            "kind",
            "owner_id",
            "amount",
            "id",
            postgresql_include=_cover("owner_id", "amount"),
        ),
        Index(
            "ix_entries_kind_status_date",
            "kind",
            "status",
            "entry_date",
            "id",
            postgresql_include=_cover("status", "entry_date"),
        ),
        Index("ix_entries_kind_date_id", "kind", "entry_date", "id", postgresql_include=_cover("entry_date")),
        Index("ix_entries_kind_amount_id", "kind", "amount", "id", postgresql_include=_cover("amount")),
        # Category filters compare case-insensitively and usually sort by date.
        Index(
            "ix_entries_kind_lower_category_date",
            "kind",
            text("lower(category)"),
            "entry_date",
            "id",
            postgresql_include=_cover("entry_date"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))  # in `currency`, to its minor units (domain.money)
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    entry_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(200))
    vendor: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=EntryStatus.DRAFT)
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    approval_request_id: Mapped[int | None] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_onupdate=FetchedValue())  # moved by trigger
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The rate locked at submit (None for a draft): base_amount = amount x fx_rate, in base_currency's minor units.
    base_currency: Mapped[str | None] = mapped_column(String(3))
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(28, 12))
    rate_date: Mapped[date | None] = mapped_column(Date)
    rate_source: Mapped[str | None] = mapped_column(String(10))
    base_amount: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
