from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, CreatedAt, Timestamps


class RequestStatus(StrEnum):
    PENDING = "pending"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class StepStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    ESCALATED = "escalated"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class ApprovalRequest(Timestamps, Base):
    """One approval lifecycle, owned by one Temporal workflow (`workflow_id`).

    `subject_kind` is `expense`, `revenue` or `generic`; entries point here through `entry_id`.
    The chain and the policy version are pinned when the request starts.
    """

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(10))
    entry_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    title: Mapped[str] = mapped_column(String(200))
    justification: Mapped[str] = mapped_column(Text, default="")
    amount: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))  # what limits compare: the base amount
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.PENDING)
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    chain: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    round: Mapped[int] = mapped_column(Integer, default=1)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Every role's approval limit pinned at submit (None: opened before migration 0008; its workflow holds them).
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The entry's own currency and amount, and the rate that made `amount` (None for a generic request).
    currency: Mapped[str | None] = mapped_column(String(3))
    original_amount: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(28, 12))
    rate_date: Mapped[date | None] = mapped_column(Date)
    rate_source: Mapped[str | None] = mapped_column(String(10))
    # An invoice's approval before it is sent (subject_kind `invoice`); invoices point here through their own column.
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class ApprovalStep(Timestamps, Base):
    """One step of a chain in one round. An escalation closes a step and opens the next one."""

    __tablename__ = "approval_steps"
    __table_args__ = (
        UniqueConstraint("request_id", "sequence", name="uq_approval_steps_request_sequence"),
        Index("ix_approval_steps_approver_status", "approver_id", "status"),
        Index("ix_approval_steps_status_remind", "status", "remind_at"),
        Index("ix_approval_steps_delegate_status", "delegate_id", "status", postgresql_where="delegate_id IS NOT NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=1)
    level: Mapped[int] = mapped_column(Integer)
    approver_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    delegate_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default=StepStatus.PENDING)
    comment: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str | None] = mapped_column(String(200))
    remind_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the step was opened, on the clock of whoever opened it (the workflow's, for a step opened by a timer), so
    # its cycle time (decided_at - opened_at) is on one clock (migration 0017).
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApprovalOutbox(CreatedAt, Base):
    """What the workflow engine must be told of a committed change (a workflow to start, a step re-routed), written
    in the change's own transaction and delivered after it (domain/approvals/outbox.py)."""

    __tablename__ = "approval_outbox"
    __table_args__ = (
        CheckConstraint("kind IN ('start', 'signal')", name="kind_known"),
        Index("ix_approval_outbox_undelivered", "created_at", postgresql_where="delivered_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
