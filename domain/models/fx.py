"""Exchange rates, and what the installation remembers of itself."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, CreatedAt


class FxRate(CreatedAt, Base):
    """One rate of a currency on a day from one source, as the ECB gives it: 1 EUR = `rate` units of `currency`. A
    manual rate beside an imported one for the same day wins (domain/fx/rates.py)."""

    __tablename__ = "fx_rates"
    __table_args__ = (
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("source IN ('ecb', 'manual')", name="source_known"),
        UniqueConstraint("currency", "rate_date", "source"),
        Index("ix_fx_rates_currency_date", "currency", text("rate_date DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    rate_date: Mapped[date] = mapped_column(Date)
    rate: Mapped[Decimal] = mapped_column(Numeric(28, 12))
    source: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class AppState(Base):
    """Facts about the installation that must not change under it (the base currency its books are kept in)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
