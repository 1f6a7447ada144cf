"""The API's shapes of report templates (the definition itself is domain/report_templates/definition.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from domain.pagination import PageInfo
from domain.report_templates.definition import TemplateDefinition
from domain.report_templates.layout import MAX_LAYOUT_CHARS
from domain.reports.schemas import Period, ReportFormat

ParameterValue = str | int | None


class ReportTemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    definition: TemplateDefinition
    layout: str | None = Field(
        default=None,
        max_length=MAX_LAYOUT_CHARS,
        description="admins only: a Jinja2 HTML layout for the PDF, rendered in the sandbox",
    )


class ReportTemplatePatch(BaseModel):
    """Any of the fields; each PATCH saves a new version (the old ones stay as they were)."""

    model_config = ConfigDict(extra="forbid")

    # Null is refused for these (leave a field out to keep it): the document says so by not offering null.
    name: Annotated[str, Field(min_length=1, max_length=120)] | SkipJsonSchema[None] = None
    description: Annotated[str, Field(max_length=2000)] | SkipJsonSchema[None] = None
    definition: TemplateDefinition | SkipJsonSchema[None] = None
    layout: str | None = Field(
        default=None, max_length=MAX_LAYOUT_CHARS, description="admins only; null removes the layout"
    )

    @field_validator("name", "description", "definition", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its current value")
        return value


class ReportTemplateOut(BaseModel):
    id: int
    name: str
    description: str
    dataset: str
    version: int = Field(description="the current version (also the ETag)")
    definition: TemplateDefinition
    has_layout: bool
    layout: str | None = None
    archived: bool
    created_by_id: int
    created_at: datetime
    updated_at: datetime


class ReportTemplateVersionOut(BaseModel):
    version: int
    name: str
    definition: TemplateDefinition
    layout: str | None = None
    created_by_id: int
    created_at: datetime


class ReportTemplatePage(PageInfo):
    items: list[ReportTemplateOut]


class ReportTemplateRun(BaseModel):
    """Run a template as a report (the same as POST /reports with type `template`)."""

    model_config = ConfigDict(extra="forbid")

    format: ReportFormat
    period: Period
    parameters: dict[str, ParameterValue] = Field(default_factory=dict, max_length=20)
    version: int | None = Field(default=None, ge=1, le=1_000_000, description="default: the current version")
