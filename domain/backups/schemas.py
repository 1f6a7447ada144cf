"""What the backup endpoints answer (manifest amounts are strings, never floats)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.pagination import PageInfo


class BackupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    workflow_id: str
    status: str = Field(description="queued | running | completed | failed | pruned")
    storage_key: str | None
    size_bytes: int | None
    sha256: str | None = Field(description="SHA-256 (hex) of the pg_dump custom-format file")
    duration_seconds: float | None
    manifest: dict[str, Any] = Field(description="row counts and amount sums per table, and the audit chain head")
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    pruned_at: datetime | None
    created_at: datetime


class RestoreDrillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    backup_id: int | None
    workflow_id: str
    status: str = Field(description="running | passed | failed")
    details: dict[str, Any]
    error: str | None = Field(description="why the drill failed")
    finished_at: datetime | None
    created_at: datetime


class BackupDetailOut(BackupOut):
    drills: list[RestoreDrillOut] = []


class BackupPageOut(PageInfo):
    items: list[BackupOut]


class WorkflowStartedOut(BaseModel):
    workflow_id: str
    backup_id: int | None = None
