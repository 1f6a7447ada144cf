"""Report templates: a named report a finance lead defines without code (domain/report_templates), and every version
of its definition. A version is never changed once saved (a trigger refuses UPDATE and DELETE, migration 0018):
a run pins the version it ran, so a report can always be explained by the definition that made it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.models.base import Base, CreatedAt, Timestamps

TEMPLATE_DATASETS = ("entries", "approvals", "budgets", "invoices", "payments")


class ReportTemplate(Timestamps, Base):
    """A template as it stands now: its name, its dataset and its current version (in `report_template_versions`)."""

    __tablename__ = "report_templates"
    __table_args__ = (
        CheckConstraint(f"dataset IN {TEMPLATE_DATASETS!r}", name="dataset_known"),
        CheckConstraint("current_version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    dataset: Mapped[str] = mapped_column(String(20))
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReportTemplateVersion(CreatedAt, Base):
    """One saved version: the definition (validated JSON) and the admin's HTML layout for the PDF, if any."""

    __tablename__ = "report_template_versions"

    template_id: Mapped[int] = mapped_column(ForeignKey("report_templates.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    layout: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
