"""Budgets: a limit per period for a team subtree, a category or both, and the ledger of what is charged to it.

`budget_periods` holds each period's amount and its running `committed` and `actual` sums; `budget_ledger` holds
every charge behind them (committed at submit, released when a request ends without approval or goes back for
changes, actual on approval), one row per workflow, round, kind and budget, so a retried transition writes nothing
twice. The sums are the ledger's: tests/budgets check them against it with SQL.
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
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, CreatedAt, Timestamps

BUDGET_POLICIES = ("ignore", "warn", "extra_approval", "block")
PERIOD_KINDS = ("month", "quarter", "year")
LEDGER_KINDS = ("committed", "released", "actual")


class Budget(Timestamps, Base):
    """A budget as it stands now (its current `version`); every version, this one included, is in
    `budget_versions`. The scope and the period grid (kind and start) are what the budget is: a revision changes the
    name, the owner, the amounts (and may add periods), the policy and the thresholds."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint(f"policy IN {BUDGET_POLICIES!r}", name="policy_known"),
        CheckConstraint(f"period_kind IN {PERIOD_KINDS!r}", name="period_kind_known"),
        CheckConstraint("team_manager_id IS NOT NULL OR category IS NOT NULL", name="scoped"),
        CheckConstraint("EXTRACT(DAY FROM starts_on) = 1", name="starts_on_first_of_month"),
        Index("ix_budgets_category", "category"),
        Index("ix_budgets_team_manager_id", "team_manager_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    team_manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    category: Mapped[str | None] = mapped_column(String(100))
    period_kind: Mapped[str] = mapped_column(String(10))
    starts_on: Mapped[date] = mapped_column(Date)
    policy: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))  # the base currency (BASE_CURRENCY cannot change under entries)
    thresholds: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class BudgetVersion(CreatedAt, Base):
    """One version of a budget as it was saved (name, owner, policy, thresholds and every period's amount)."""

    __tablename__ = "budget_versions"

    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class BudgetPeriod(Base):
    """One period of a budget: [starts_on, ends_on), its amount, and the sums charged to it (base currency)."""

    __tablename__ = "budget_periods"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("committed >= 0", name="committed_not_negative"),
        CheckConstraint("actual >= 0", name="actual_not_negative"),
        CheckConstraint("ends_on > starts_on", name="ends_after_start"),
    )

    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True)
    starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    ends_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    committed: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))
    actual: Mapped[Decimal] = mapped_column(Numeric(19, 4), server_default=text("0"))


class BudgetLedger(CreatedAt, Base):
    """One charge to a budget period. Written in the transaction of the approval transition it accounts for (or by
    the reconciler), never twice: the key is the workflow, its round, the kind and the budget. A `committed` row
    keeps what the policy said at submit (`policy`, `available_before`, `over`)."""

    __tablename__ = "budget_ledger"
    __table_args__ = (
        CheckConstraint(f"kind IN {LEDGER_KINDS!r}", name="kind_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        UniqueConstraint("workflow_id", "round", "kind", "budget_id"),
        ForeignKeyConstraint(
            ["budget_id", "period_starts_on"],
            ["budget_periods.budget_id", "budget_periods.starts_on"],
            name="fk_budget_ledger_period_budget_periods",
            ondelete="CASCADE",
        ),
        Index("ix_budget_ledger_request_id_round", "request_id", "round"),
        Index("ix_budget_ledger_budget_id_period_starts_on", "budget_id", "period_starts_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    budget_id: Mapped[int] = mapped_column(BigInteger)
    period_starts_on: Mapped[date] = mapped_column(Date)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(String(120))
    round: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4))
    policy: Mapped[str | None] = mapped_column(String(20))
    available_before: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
    over: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    reason: Mapped[str] = mapped_column(Text, server_default="")


class BudgetThreshold(Base):
    """Whether a period's consumption is at or above one of its alert thresholds, and how often it has crossed it:
    the owner is told at each crossing once (the notification's key carries the crossing's number), and a drop below
    arms the threshold again."""

    __tablename__ = "budget_thresholds"

    budget_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    period_starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    threshold: Mapped[int] = mapped_column(Integer, primary_key=True)
    above: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    crossings: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    __table_args__ = (
        ForeignKeyConstraint(
            ["budget_id", "period_starts_on"],
            ["budget_periods.budget_id", "budget_periods.starts_on"],
            name="fk_budget_thresholds_period_budget_periods",
            ondelete="CASCADE",
        ),
    )


class BudgetAlert(CreatedAt, Base):
    """An alert to send: one per crossing, its in-app notification created with it, its email sent by the budget
    upkeep (workflows/budgets.py), which marks `emailed_at`."""

    __tablename__ = "budget_alerts"
    __table_args__ = (Index("ix_budget_alerts_unsent", "id", postgresql_where=text("emailed_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    period_starts_on: Mapped[date] = mapped_column(Date)
    threshold: Mapped[int] = mapped_column(Integer)
    crossing: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[dict[str, Any]] = mapped_column(JSONB)
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
