"""What the audit endpoints return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.pagination import PageInfo


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_id: int | None
    action: str
    resource_type: str
    resource_id: str | None
    changes: dict[str, Any] = Field(description="changed fields as {field: [before, after]}, or event details")
    request_id: str | None
    client_ip: str | None
    user_agent: str | None
    workflow_id: str | None
    policy_rule: str | None = Field(description="the Casbin rule that allowed the action")
    prev_hash: str
    hash: str


class AuditPageOut(PageInfo):
    items: list[AuditEntryOut]


class ChainVerdictOut(BaseModel):
    ok: bool
    rows_checked: int
    first_broken_id: int | None = Field(description="the first row whose hash or link to its predecessor fails")
    reason: str | None


CSV_COLUMNS = (
    "id",
    "occurred_at",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "changes",
    "request_id",
    "client_ip",
    "user_agent",
    "workflow_id",
    "policy_rule",
    "prev_hash",
    "hash",
)
