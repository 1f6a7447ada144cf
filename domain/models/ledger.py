"""Closing the books: receipts on entries, possible duplicates, the chart of accounts and its mapping, monthly periods,
the journals frozen when a period closes, and the export batches made from them.

- `attachments`: a receipt's file in object storage, its type decided from its first bytes and its SHA-256 kept
  (`pending` while a presigned upload is under way, `stored` once its bytes are checked).
- `entry_duplicates`: what the check at submit found (a similar entry of the same owner, or a receipt with the same
  SHA-256 anywhere), until an approver dismisses it with a reason.
- `accounts` and `account_mappings` (a category or revenue source to its account; the payable, receivable, cash, tax
  and FX gain/loss accounts by role).
- `periods`: a closed month refuses changes to the entries dated in it (a trigger, whoever writes); `journals` and
  `journal_lines`: the balanced double-entry journals of a month, written once when it closes, so every export of a
  closed month reads the same lines; `export_batches`: numbered, immutable files made from them.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, CreatedAt, Timestamps

ATTACHMENT_STATUSES = ("pending", "stored")
DUPLICATE_REASONS = ("similar", "same_receipt")
ACCOUNT_TYPES = ("asset", "liability", "equity", "revenue", "expense")
MAPPING_KINDS = ("category", "source", "payable", "receivable", "cash", "tax", "fx_gain", "fx_loss", "rounding")
JOURNAL_SOURCES = ("entry", "invoice", "payment", "credit_note")
EXPORT_FORMATS = ("journal_csv", "xero", "quickbooks", "datev")
EXPORT_STATUSES = ("pending", "completed", "failed")


class Attachment(CreatedAt, Base):
    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint(f"status IN {ATTACHMENT_STATUSES!r}", name="status_known"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
        CheckConstraint("status = 'pending' OR sha256 IS NOT NULL", name="stored_has_hash"),
        Index("ix_attachments_sha256", "sha256", postgresql_where=text("sha256 IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(10), server_default="stored")
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EntryDuplicate(CreatedAt, Base):
    __tablename__ = "entry_duplicates"
    __table_args__ = (
        CheckConstraint(f"reason IN {DUPLICATE_REASONS!r}", name="reason_known"),
        CheckConstraint("entry_id <> other_entry_id", name="not_itself"),
        UniqueConstraint("entry_id", "other_entry_id", "reason"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    other_entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(20))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dismissed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dismissed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dismiss_reason: Mapped[str | None] = mapped_column(Text)


class Account(Timestamps, Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(f"type IN {ACCOUNT_TYPES!r}", name="type_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    tax_code: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class AccountMapping(Timestamps, Base):
    """`key`: the category or source (lower case) for `category`/`source`; '' for the accounts named by role."""

    __tablename__ = "account_mappings"
    __table_args__ = (
        CheckConstraint(f"kind IN {MAPPING_KINDS!r}", name="kind_known"),
        CheckConstraint("(kind IN ('category', 'source')) = (key <> '')", name="keyed_by_kind"),
        UniqueConstraint("kind", "key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(200), server_default="")
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))


class Period(Base):
    """A month (`month`: its first day) that has been closed at least once; absent or `open`: open."""

    __tablename__ = "periods"
    __table_args__ = (
        CheckConstraint("EXTRACT(DAY FROM month) = 1", name="first_of_month"),
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reopened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reopened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closings: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Journal(CreatedAt, Base):
    """One balanced journal of a closed month (its lines' debits equal their credits, in the base currency)."""

    __tablename__ = "journals"
    __table_args__ = (
        CheckConstraint(f"source_kind IN {JOURNAL_SOURCES!r}", name="source_known"),
        UniqueConstraint("month", "closing", "source_kind", "source_id"),
        Index("ix_journals_month_closing", "month", "closing"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(ForeignKey("periods.month"))
    closing: Mapped[int] = mapped_column(Integer)  # which closing of the month wrote it (a reopened month closes anew)
    number: Mapped[str] = mapped_column(String(30))  # e.g. EXP-42, INV-2026-0001, PAY-7
    journal_date: Mapped[date] = mapped_column(Date)
    source_kind: Mapped[str] = mapped_column(String(15))
    source_id: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text)
    counterparty: Mapped[str] = mapped_column(String(200), server_default="")
    approved_by: Mapped[str] = mapped_column(String(200), server_default="")
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audit_hash: Mapped[str] = mapped_column(String(64), server_default="")
    link: Mapped[str] = mapped_column(String(200), server_default="")


class JournalLine(Base):
    __tablename__ = "journal_lines"
    __table_args__ = (
        CheckConstraint("debit >= 0 AND credit >= 0 AND (debit = 0 OR credit = 0)", name="one_side"),
        UniqueConstraint("journal_id", "line_no"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("journals.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    account_code: Mapped[str] = mapped_column(String(20))
    account_name: Mapped[str] = mapped_column(String(200))
    debit: Mapped[Decimal] = mapped_column(Numeric(19, 4))  # base currency
    credit: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    currency: Mapped[str] = mapped_column(String(3))  # the original currency of the amount behind the line
    original_amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    rate: Mapped[Decimal] = mapped_column(Numeric(28, 12))
    tax_code: Mapped[str] = mapped_column(String(20), server_default="")
    cost_center: Mapped[str] = mapped_column(String(100), server_default="")
    description: Mapped[str] = mapped_column(Text, server_default="")


class ExportBatch(CreatedAt, Base):
    """A numbered, immutable export of a closed month's journals (`number` gap-free); the same closing and format
    give the same bytes (`sha256`)."""

    __tablename__ = "export_batches"
    __table_args__ = (
        CheckConstraint(f"format IN {EXPORT_FORMATS!r}", name="format_known"),
        CheckConstraint(f"status IN {EXPORT_STATUSES!r}", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    month: Mapped[date] = mapped_column(ForeignKey("periods.month"))
    closing: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    workflow_id: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str | None] = mapped_column(String(300))
    filename: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    journals: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
