"""Workflow ids, inputs and results. They are stored in workflow histories forever: change them compatibly
(add optional fields with defaults; never rename or remove).

Each feature keeps its contracts in its own section below.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


# === notifications and email ========================================================================


class EmailJob(Contract):
    """Send one templated email. `message_key` is derived from the workflow and step, so a retry sends once."""

    message_key: str
    template: str  # templates/emails/<template>.{txt,html}
    to_user_ids: list[int] = []
    to_addresses: list[str] = []
    context: dict[str, object] = {}
    event_type: str | None = None  # when set, users who turned email off for this event are skipped
    attachment_storage_key: str | None = None
    attachment_filename: str | None = None


# === approvals =======================================================================================


# === reports =========================================================================================


# === backups =========================================================================================
