"""Receivables: customers, invoices with their lines, the gap-free numbering, payments, credit notes, reminders, and
recurring invoices.

An invoice moves `draft -> pending_approval -> approved -> sent -> partially_paid -> paid`, or to `void` before any
payment; `overdue` is read from the due date, never stored. A sent invoice's lines and amounts are never edited: a
late fee is a line of its own (kind `late_fee`, one per reminder step at most), a correction is a credit note.
A template invoice (`is_template`) is what a recurring invoice copies: approved once, never numbered or sent.
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

INVOICE_STATUSES = ("draft", "pending_approval", "approved", "sent", "partially_paid", "paid", "void")
LINE_KINDS = ("item", "late_fee")
FREQUENCIES = ("weekly", "monthly", "quarterly", "yearly")
RECURRING_STATUSES = ("draft", "pending_approval", "active", "ended", "cancelled")


class Customer(Timestamps, Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="terms_bounded"),
        Index("ix_customers_lower_name", text("lower(name)")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    billing_email: Mapped[str] = mapped_column(String(254))
    currency: Mapped[str] = mapped_column(String(3))
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(Text, server_default="")
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class Invoice(Timestamps, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(f"status IN {INVOICE_STATUSES!r}", name="status_known"),
        CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        CheckConstraint("total >= 0 AND amount_paid >= 0 AND amount_credited >= 0", name="amounts_not_negative"),
        CheckConstraint("amount_paid + amount_credited <= total", name="not_overpaid"),
        CheckConstraint("(number IS NULL) = (number_year IS NULL)", name="numbered_in_a_year"),
        CheckConstraint("NOT is_template OR number IS NULL", name="templates_unnumbered"),
        UniqueConstraint("recurring_id", "recurring_run_on"),
        Index("ix_invoices_status_due_date", "status", "due_date"),
        Index("ix_invoices_customer_id_issue_date", "customer_id", "issue_date"),
        Index("ix_invoices_owner_id_issue_date", "owner_id", "issue_date"),
        # Everyone's invoices by issue date: the receivables' credit sales of a window (DSO), the list's date filters.
        Index("ix_invoices_issue_date", "issue_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # who made it (scoping: their managers see it)
    status: Mapped[str] = mapped_column(String(20), server_default="draft")
    is_template: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, server_default="")
    # Gap-free per series and year (invoice_sequences): given at approval, in the approving transaction.
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    number_year: Mapped[int | None] = mapped_column(Integer)
    subtotal: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    tax_total: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    total: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    amount_paid: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    amount_credited: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    approval_request_id: Mapped[int | None] = mapped_column(ForeignKey("approval_requests.id"), unique=True)
    # The rate locked at submit (base_total = total x fx_rate): what payments' FX gains and losses are measured from.
    base_currency: Mapped[str | None] = mapped_column(String(3))
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(28, 12))
    rate_date: Mapped[date | None] = mapped_column(Date)
    rate_source: Mapped[str | None] = mapped_column(String(10))
    base_total: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
    pdf_key: Mapped[str | None] = mapped_column(String(300))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    void_reason: Mapped[str | None] = mapped_column(Text)
    recurring_id: Mapped[int | None] = mapped_column(ForeignKey("recurring_invoices.id", use_alter=True))
    recurring_run_on: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class InvoiceLine(CreatedAt, Base):
    """One line, its net and tax each rounded to the currency's minor units (domain/invoices/totals.py)."""

    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint(f"kind IN {LINE_KINDS!r}", name="kind_known"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name="tax_rate_percent"),
        CheckConstraint("(kind = 'late_fee') = (reminder_step IS NOT NULL)", name="fee_has_step"),
        UniqueConstraint("invoice_id", "position"),
        # A late fee at most once per invoice and reminder step, however often its activity runs.
        Index(
            "ix_invoice_lines_one_fee_per_step",
            "invoice_id",
            "reminder_step",
            unique=True,
            postgresql_where=text("kind = 'late_fee'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), server_default="item")
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    net: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    tax: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    reminder_step: Mapped[int | None] = mapped_column(Integer)


class InvoiceSequence(Base):
    """The last number given in a series (`INV`, `CN`) and year; its row lock makes the numbering gap-free."""

    __tablename__ = "invoice_sequences"

    series: Mapped[str] = mapped_column(String(10), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class InvoicePayment(CreatedAt, Base):
    """A payment received. `base_amount` at the payment's own rate; `booked_base` at the invoice's locked rate; their
    difference is the realized FX gain (positive) or loss. `entry_id`: the revenue entry it books."""

    __tablename__ = "invoice_payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        # Everyone's payments of a period: the realized FX gains and losses (domain/invoices/receivables.py).
        Index("ix_invoice_payments_paid_on", "paid_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(200), server_default="")
    fx_rate: Mapped[Decimal] = mapped_column(Numeric(28, 12))
    rate_source: Mapped[str] = mapped_column(String(10))
    base_amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    booked_base: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    fx_difference: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class CreditNote(CreatedAt, Base):
    """A correction to a sent invoice (never an edit of it): numbered `CN-YYYY-NNNN`, it lowers what is due."""

    __tablename__ = "credit_notes"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class CreditNoteTax(Base):
    """A credit note's amount at one tax rate of its invoice: its net and its tax (domain/invoices/credit_notes.py
    splits it). A credit note's parts add up to its amount (a deferred constraint trigger, migration 0015)."""

    __tablename__ = "credit_note_taxes"
    __table_args__ = (
        CheckConstraint("net >= 0 AND tax >= 0 AND net + tax > 0", name="part_positive"),
        CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name="tax_rate_percent"),
    )

    credit_note_id: Mapped[int] = mapped_column(ForeignKey("credit_notes.id", ondelete="CASCADE"), primary_key=True)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4), primary_key=True)
    net: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    tax: Mapped[Decimal] = mapped_column(Numeric(19, 4))


class InvoiceReminder(CreatedAt, Base):
    """A reminder step that ran for an invoice: at most one per step (the workflow's activity may run again)."""

    __tablename__ = "invoice_reminders"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    template: Mapped[str] = mapped_column(String(100))
    fee_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_lines.id"))
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InvoiceEmail(CreatedAt, Base):
    """An email to a customer (the invoice, a reminder), written in the transaction that decided it and sent after
    its commit; `key` makes each one once (`invoice:7`, `reminder:7:2`)."""

    __tablename__ = "invoice_emails"
    __table_args__ = (Index("ix_invoice_emails_unsent", "id", postgresql_where=text("sent_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    recipient: Mapped[str] = mapped_column(String(254))
    message: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecurringInvoice(Timestamps, Base):
    """A template invoice issued on a schedule (a Temporal Schedule, `recurring-invoice-<id>`): the template is
    approved once; each run is numbered and sent at once. `count` None: until cancelled."""

    __tablename__ = "recurring_invoices"
    __table_args__ = (
        CheckConstraint(f"frequency IN {FREQUENCIES!r}", name="frequency_known"),
        CheckConstraint(f"status IN {RECURRING_STATUSES!r}", name="status_known"),
        CheckConstraint("count IS NULL OR count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    frequency: Mapped[str] = mapped_column(String(10))
    starts_on: Mapped[date] = mapped_column(Date)
    count: Mapped[int | None] = mapped_column(Integer)
    runs: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(20), server_default="draft")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
