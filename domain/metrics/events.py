"""The business events the processes count, in Prometheus, where each happens: decisions, SLA timers and report runs
in the worker's activities, emails wherever the mail is handed to the server. Labels are bounded: each is one of the
few values listed here, never an id, a name or an amount.

Counted after the change commits, and only when it changed something (a transition run again after its commit
answers `changed` as the first did, so a retried activity may count twice: at least once, not exactly once). A
process's counters start at zero when it starts; Prometheus' `increase()` and `rate()` allow for that."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISION_OUTCOMES = {"approve": "approved", "reject": "rejected", "request_changes": "changes_requested"}
SLA_EVENTS = ("reminded", "escalated", "nobody_to_escalate_to", "expired")
REPORT_OUTCOMES = ("completed", "failed")
REPORT_FORMATS = ("pdf", "csv", "xlsx", "json")
EMAIL_OUTCOMES = ("sent", "failed")

DECISIONS = Counter("finance_approval_decisions", "Approval decisions recorded, by outcome", ["outcome"])
SLA = Counter(
    "finance_approval_sla_events",
    "Approval SLA timers that fired and did something: a reminder sent, a step escalated (or nobody above to "
    "escalate to), a request expired",
    ["event"],
)
REPORT_RUNS = Counter("finance_report_runs", "Reports that ended, by outcome", ["outcome"])
REPORT_RENDER_SECONDS = Histogram(
    "finance_report_render_duration_seconds",
    "Time to gather, render and store a report (the attempt that completed it), by format",
    ["format"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
EMAILS = Counter(
    "finance_emails",
    "Emails handed to the mail server: accepted (sent) or not (failed: refused, or the server away; a failed "
    "attempt is usually retried)",
    ["outcome"],
)

# Every series exists from the start at zero: a dashboard shows 0 rather than "no data", and rate() sees the first
# increase.
for _outcome in DECISION_OUTCOMES.values():
    DECISIONS.labels(_outcome)
for _event in SLA_EVENTS:
    SLA.labels(_event)
for _outcome in REPORT_OUTCOMES:
    REPORT_RUNS.labels(_outcome)
for _format in REPORT_FORMATS:
    REPORT_RENDER_SECONDS.labels(_format)
for _outcome in EMAIL_OUTCOMES:
    EMAILS.labels(_outcome)


def decision_recorded(action: str) -> None:
    DECISIONS.labels(DECISION_OUTCOMES.get(action, "other")).inc()


def sla_event(event: str) -> None:
    assert event in SLA_EVENTS, event
    SLA.labels(event).inc()


def report_ended(outcome: str, report_format: str | None = None, seconds: float | None = None) -> None:
    REPORT_RUNS.labels(outcome).inc()
    if seconds is not None and report_format in REPORT_FORMATS:
        REPORT_RENDER_SECONDS.labels(report_format).observe(seconds)


def email_handed_over(sent: bool) -> None:
    EMAILS.labels("sent" if sent else "failed").inc()
