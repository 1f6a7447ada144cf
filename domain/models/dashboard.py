"""Dashboard aggregates, and the indexes that the dashboard's reads need on the entries and approval tables.

`dashboard_entry_totals` holds, per owner, kind, month, category and status, how many entries there are and the sum
of their amounts. It is maintained in the transaction that changes an entry's status
(by trigger, migration 0007), so it is never stale. Only statuses in which an entry can no
longer be edited are counted (see `AGGREGATED_STATUSES`): drafts and entries returned for changes are edited freely
without a status change, so counting them here would drift.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.approval import ApprovalRequest, ApprovalStep
from domain.models.base import Base
from domain.models.entry import Entry


class DashboardEntryTotal(Base):
    __tablename__ = "dashboard_entry_totals"
    __table_args__ = (
        # Organisation-wide reads (accountants, admins) go by status and month, without touching the heap.
        Index(
            "ix_dashboard_entry_totals_status_month",
            "status",
            "month",
            postgresql_include=["kind", "category", "owner_id", "entry_count", "amount_total"],
        ),
        # A subtree's reads: per owner, only the status and months asked for.
        Index(
            "ix_dashboard_entry_totals_owner_status_month",
            "owner_id",
            "status",
            "month",
            postgresql_include=["kind", "category", "entry_count", "amount_total"],
        ),
    )

    # The primary key leads with the owner: a subtree's reads are one index range per owner, and two approvals
    # only ever contend on the same row when they concern the same owner, kind, month, category and status.
    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), default=Decimal("0"))


class DashboardOwnerTotal(Base):
    """Per owner, status, month and kind (no category): the monthly series, top spenders and pending amounts read
    about a fifth of the rows they would read from `dashboard_entry_totals`. Kept by trigger (migration 0007)."""

    __tablename__ = "dashboard_owner_totals"
    __table_args__ = (
        Index(
            "ix_dashboard_owner_totals_status_month",
            "status",
            "month",
            postgresql_include=["kind", "owner_id", "entry_count", "amount_total"],
        ),
        # A subtree's reads: one index-only range per owner.
        Index(
            "ix_dashboard_owner_totals_owner_status_month",
            "owner_id",
            "status",
            "month",
            postgresql_include=["kind", "entry_count", "amount_total"],
        ),
    )

    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), default=Decimal("0"))


class DashboardCategoryTotal(Base):
    """Organisation-wide per status, month, kind and category (top categories for accountants and admins).
    Kept by trigger (migration 0007); two decisions contend on a row only within one month, kind and category."""

    __tablename__ = "dashboard_category_totals"

    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), default=Decimal("0"))


class DashboardCurrencyTotal(Base):
    """Per owner, month, kind, status and currency: the entries' own amounts beside their base amounts (the per-currency
    subtotals). Kept by the same trigger as the totals above (migration 0010)."""

    __tablename__ = "dashboard_currency_totals"
    __table_args__ = (
        # Everyone's subtotals of a period: one index-only range (a subtree's go by the primary key, owner first).
        Index(
            "ix_dashboard_currency_totals_status_month",
            "status",
            "month",
            postgresql_include=["kind", "currency", "entry_count", "original_total", "base_total"],
        ),
    )

    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    original_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), server_default="0")
    base_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), server_default="0")


class DashboardApprovalDecision(Base):
    """Decided approval requests (approved or rejected) per UTC month of the decision, status and cycle-time bucket
    (`dashboard_cycle_bucket(decided_at - submitted_at)`, -1 without a submission time).

    Kept by the row trigger `dashboard_approval_request_changed` on `approval_requests` (migration 0003), so every
    writer keeps it current in its own transaction. The exact median and 90th percentile come from the bucket that
    holds the wanted rank plus one short sorted range of `ix_approval_requests_cycle_bucket`.
    """

    __tablename__ = "dashboard_approval_decisions"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)


class DashboardEscalation(Base):
    """Escalated approval steps per requester and UTC month of the escalation, kept by the row trigger
    `dashboard_approval_step_changed` on `approval_steps` (migration 0003)."""

    __tablename__ = "dashboard_escalations"

    requester_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    escalations: Mapped[int] = mapped_column(BigInteger, default=0)


# --- indexes on other tables for the dashboard's reads (declared here so the models match the migration) ---

# The ten most recent entries: organisation-wide, and per owner (one short index range per owner in a subtree).
Index("ix_entries_created_id", Entry.created_at, Entry.id)
Index("ix_entries_owner_created_id", Entry.owner_id, Entry.created_at, Entry.id)

# Decided requests (cycle time, approval rate) in a window, organisation-wide and per requester.
_DECIDED = text("status IN ('approved', 'rejected')")
Index(
    "ix_approval_requests_decided",
    ApprovalRequest.decided_at,
    postgresql_include=["submitted_at", "status", "requester_id"],
    postgresql_where=_DECIDED,
)
Index(
    "ix_approval_requests_requester_decided",
    ApprovalRequest.requester_id,
    ApprovalRequest.decided_at,
    postgresql_include=["submitted_at", "status"],
    postgresql_where=_DECIDED,
)
# Steps joined to their request's requester (scope) and status without visiting the heap.
Index("ix_approval_requests_id_requester_status", ApprovalRequest.id, postgresql_include=["requester_id", "status"])
# Pending requests in scope.
Index(
    "ix_approval_requests_pending_requester",
    ApprovalRequest.requester_id,
    postgresql_where=text("status = 'pending'"),
)
# Steps waiting on a delegate (waiting on the approver uses ix_approval_steps_approver_status).
Index(
    "ix_approval_steps_pending_delegate",
    ApprovalStep.delegate_id,
    postgresql_include=["remind_at", "request_id"],
    postgresql_where=text("status = 'pending'"),
)
# Escalations in a window.
Index(
    "ix_approval_steps_escalated_decided",
    ApprovalStep.decided_at,
    postgresql_include=["request_id"],
    postgresql_where=text("status = 'escalated'"),
)
# Decided requests of one cycle-time bucket in a window, in cycle order (the exact percentiles' last step).
Index(
    "ix_approval_requests_cycle_bucket",
    text("dashboard_cycle_bucket(decided_at - submitted_at)"),
    ApprovalRequest.decided_at,
    postgresql_include=["submitted_at"],
    postgresql_where=text("status IN ('approved', 'rejected') AND submitted_at IS NOT NULL"),
)
