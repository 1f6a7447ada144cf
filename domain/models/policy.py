from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base


class PolicyVersion(Base):
    """The Casbin policy versions applied, in order: row n is the n-th change. Every process (each API, the worker)
    applies a changed file by itself; the first to insert the next position records the change (and writes its one
    audit row), the others find the position taken (domain/policies/versions.py)."""

    __tablename__ = "policy_versions"
    __table_args__ = (CheckConstraint("previous_version IS DISTINCT FROM version", name="a_change"),)

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[str] = mapped_column(String(16))
    previous_version: Mapped[str | None] = mapped_column(String(16))
    applied_by: Mapped[str] = mapped_column(String(40))  # the process that applied it first: api, worker, operator
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PolicyRefusal(Base):
    """Policy file versions refused on reload: each is audited once, whichever process refused it first."""

    __tablename__ = "policy_refusals"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    refused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
