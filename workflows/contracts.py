"""Workflow ids, inputs and results. They are stored in workflow histories forever: change them compatibly
(add optional fields with defaults; never rename or remove).

Each feature keeps its contracts in its own section below.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio.common import RetryPolicy


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


class EmailResult(Contract):
    """What the email activity did: the messages sent now, and the recipients it skipped and why."""

    sent: list[str] = []  # message ids sent by this attempt
    already_sent: list[str] = []  # message ids an earlier attempt had sent (not sent again)
    skipped: dict[str, str] = {}  # recipient (user id or address) -> reason


# Callers of "send_email": `workflow.execute_activity("send_email", job, start_to_close_timeout=EMAIL_TIMEOUT,
# retry_policy=EMAIL_RETRY)`. Mail servers have outages measured in minutes, so back off up to 10 minutes
# between attempts and keep trying for about a day; a broken template or a refused address never heals.
EMAIL_TIMEOUT = timedelta(seconds=60)
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=150,
    non_retryable_error_types=["EmailTemplateError", "EmailRejected", "EmailAttachmentMissing"],
)


# === approvals =======================================================================================


# === reports =========================================================================================


# === backups =========================================================================================
