"""Analytics aggregates (migration 0017), each kept by row triggers in the writer's transaction; what each must equal
is in `domain.analytics.aggregates`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base


class AnalyticsCounterpartyTotal(Base):
    """Approved entries per owner, kind, month and counterparty (an expense's vendor, a revenue entry's source)."""

    __tablename__ = "analytics_counterparty_totals"
    __table_args__ = (
        Index(
            "ix_analytics_counterparty_totals_month",
            "month",
            postgresql_include=["kind", "counterparty", "entry_count", "amount_total"],
        ),
    )

    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    counterparty: Mapped[str] = mapped_column(String(200), primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    amount_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), server_default="0")


class AnalyticsExpenseWeek(Base):
    """Approved expenses per owner and ISO week (Monday, UTC) of their approval: the cash forecast's payables."""

    __tablename__ = "analytics_expense_weeks"
    __table_args__ = (
        Index("ix_analytics_expense_weeks_week", "week", postgresql_include=["entry_count", "amount_total"]),
    )

    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    entry_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    amount_total: Mapped[Decimal] = mapped_column(Numeric(24, 4), server_default="0")


class AnalyticsStepCycle(Base):
    """One closed approval step (approved, rejected, changes requested, escalated, expired): how long it waited on
    its approver, and whether it was closed after its reminder time (an SLA breach)."""

    __tablename__ = "analytics_step_cycles"
    __table_args__ = (
        # A subtree's or one person's steps: one index-only range per requester.
        Index(
            "ix_analytics_step_cycles_requester_closed",
            "requester_id",
            "closed_at",
            postgresql_include=["level", "approver_id", "status", "cycle_seconds", "breached"],
        ),
        # One approver's steps in a window (their exact percentiles, organisation-wide).
        Index(
            "ix_analytics_step_cycles_approver_closed",
            "approver_id",
            "closed_at",
            postgresql_include=["level", "status", "cycle_seconds", "breached"],
        ),
        # A level's steps of one cycle bucket in cycle order's neighbourhood (the exact percentiles' last step).
        Index(
            "ix_analytics_step_cycles_level_bucket",
            "level",
            "bucket",
            "closed_at",
            postgresql_include=["cycle_seconds"],
        ),
    )

    step_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requester_id: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[int] = mapped_column(Integer)
    approver_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cycle_seconds: Mapped[float] = mapped_column(Float)
    bucket: Mapped[int] = mapped_column(Integer)
    breached: Mapped[bool] = mapped_column(Boolean)


class AnalyticsStepTotal(Base):
    """Closed steps per UTC month of closing, level, approver and status, and how many of them breached the SLA."""

    __tablename__ = "analytics_step_totals"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    approver_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    steps: Mapped[int] = mapped_column(BigInteger, server_default="0")
    breached: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AnalyticsStepHistogram(Base):
    """Closed steps per UTC month, level and cycle bucket: where a level's wanted rank lies."""

    __tablename__ = "analytics_step_histogram"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    steps: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AnalyticsRequestOutcome(Base):
    """Decided requests per requester, UTC month of the decision, status and whether approval was automatic."""

    __tablename__ = "analytics_request_outcomes"
    __table_args__ = (
        Index(
            "ix_analytics_request_outcomes_month", "month", postgresql_include=["status", "auto_approved", "requests"]
        ),
    )

    requester_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    auto_approved: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, server_default="0")
