"""The event types a user can be told about, and which of them a user may opt out of by email."""

from __future__ import annotations

from typing import Final

# event type -> what it means (shown next to the preference toggle)
EVENT_TYPES: Final[dict[str, str]] = {
    "entry_submitted": "An entry waits for your approval",
    "approval_reminder": "Reminder: an approval is still waiting for you",
    "approval_escalated": "An approval was escalated to the next approver",
    "entry_approved": "Your entry was approved",
    "entry_rejected": "Your entry was rejected",
    "entry_expired": "Your entry's approval expired without a decision",
    "changes_requested": "An approver asked for changes to your entry",
    "approval_delegated": "Approvals were delegated to you",
    "report_ready": "A report you asked for is ready",
    "scheduled_report": "A scheduled report was delivered",
    "backup_failed": "A database backup failed",
    "restore_drill_failed": "A restore drill failed",
    "fx_import_failed": "The exchange-rate import failed or refused a day",
    "budget_threshold": "A budget you own crossed an alert threshold",
    "otp_code": "A one-time sign-in code",
}

# Security mail goes out whatever the preferences say: a user cannot lock themselves out of their codes.
ALWAYS_EMAILED: Final[frozenset[str]] = frozenset({"otp_code"})

CONFIGURABLE_EVENTS: Final[tuple[str, ...]] = tuple(name for name in EVENT_TYPES if name not in ALWAYS_EMAILED)
