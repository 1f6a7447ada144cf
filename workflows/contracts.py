"""The types that cross the Temporal boundary: workflow ids, inputs, results, activity jobs, and the approval
types the domain's transitions return. Defined once, here; the API, the domain, the activities and the workflows
all import them, and this module imports nothing of theirs (it is pure data, safe inside a workflow).

They are stored in workflow histories forever: change them compatibly (add fields with defaults; never rename or
remove a field; class names are free to change, they are not stored). Unknown fields are refused, so a field
renamed by mistake fails loudly instead of quietly taking its default.

Each feature keeps its contracts in its own section below.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict
from temporalio.common import Priority, RetryPolicy, SearchAttributeKey


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


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


# The email activity's name: every feature's workflows send mail through it, on their own task queue.
SEND_EMAIL = "send_email"


class EmailResult(Contract):
    """What the email activity did: the messages sent now, and the recipients it skipped and why."""

    sent: list[str] = []  # message ids sent by this attempt
    already_sent: list[str] = []  # message ids an earlier attempt had sent (not sent again)
    skipped: dict[str, str] = {}  # recipient (user id or address) -> reason


# Callers of "send_email": `workflow.execute_activity("send_email", job, start_to_close_timeout=EMAIL_TIMEOUT,
# retry_policy=EMAIL_RETRY)`. Mail servers have outages measured in minutes, so back off up to 10 minutes
# between attempts and keep trying for about a day; a broken template or a refused address never heals.
EMAIL_TIMEOUT = timedelta(seconds=60)
# One attempt of an approval email inside the workflow task, or inline in the transition that created it: it holds
# the decision's answer, so it is short. A failed local attempt waits on a durable timer (local_retry_threshold 0).
EMAIL_LOCAL_ATTEMPT = timedelta(seconds=10)
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=150,
    non_retryable_error_types=["EmailTemplateError", "EmailRejected", "EmailAttachmentMissing"],
)


# === approvals =======================================================================================


# What the Temporal UI finds an approval by (typed keys; the values are ids and amounts only, never personal data).
# Registered where the server starts (make dev, compose, the tests); the workflow keeps them current.
ENTRY_KIND = SearchAttributeKey.for_keyword("EntryKind")
ENTRY_ID = SearchAttributeKey.for_keyword("EntryId")
APPROVAL_STATUS = SearchAttributeKey.for_keyword("ApprovalStatus")
CURRENT_APPROVER = SearchAttributeKey.for_keyword("CurrentApprover")
AMOUNT_CENTS = SearchAttributeKey.for_int("AmountCents")
# A sent invoice's workflow (invoice-<id>): its number and its customer's id.
INVOICE_NUMBER = SearchAttributeKey.for_keyword("InvoiceNumber")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
SEARCH_ATTRIBUTES = (ENTRY_KIND, ENTRY_ID, APPROVAL_STATUS, CURRENT_APPROVER, AMOUNT_CENTS, INVOICE_NUMBER, CUSTOMER_ID)


# Task queues are `<TEMPORAL_TASK_QUEUE_PREFIX>-<role>` (core/temporal.py builds them from the settings); a workflow
# that hands an activity to another role's queue names it from its own.
APPROVALS_QUEUE = "approvals"
REPORTS_QUEUE = "reports"
BACKUPS_QUEUE = "backups"

# Renders that may wait (a report's, an export batch's: seconds to minutes each) go after everything else queued on
# their task queue: Temporal gives a free activity slot to the lowest priority key queued (1-5, default 3). So in a
# storm of reports, an invoice's sending, a report-ready email or a budget alert on the reports queue waits for the
# next free slot, not for every render queued before it (docs/operations.md, "Scaling workers by queue").
BULK_PRIORITY = Priority(priority_key=4)


def task_queue_name(prefix: str, role: str) -> str:
    return f"{prefix}-{role}"


def queue_beside(task_queue: str, role: str) -> str:
    """The `role` queue of the deployment `task_queue` belongs to (`finance-approvals` -> `finance-reports`)."""
    return task_queue_name(task_queue.rpartition("-")[0], role)


def approval_workflow_id(subject_kind: str, subject_id: int) -> str:
    """The business key of an approval lifecycle: `approval-expense-42`, `approval-revenue-7`, `approval-request-3`."""
    return f"approval-{'request' if subject_kind == 'generic' else subject_kind}-{subject_id}"


class ApprovalActivity:
    """Names of the approval activities (activities/approvals.py); the workflow refers to them by name."""

    ANNOUNCE = "approvals.announce_first_step"
    RECORD_DECISION = "approvals.record_decision"
    REMIND = "approvals.remind_step"
    ESCALATE = "approvals.escalate_step"
    EXPIRE = "approvals.expire_request"
    WITHDRAW = "approvals.withdraw_request"
    RESUBMIT = "approvals.open_round"
    REROUTE = "approvals.reroute_step"  # the `delegation_changed` signal of workflows started before `step_changed`
    REFRESH = "approvals.refresh_step"


# The ApplicationError types of a refusal (the request is not in a state for the action, or the actor may not do
# it): raised by the workflow's validators and the activities (domain.errors.DomainError.refusal), never retried,
# and turned back into domain errors by whoever sent the update (domain.errors.refusal_error).
REFUSALS = ("Conflict", "Forbidden", "ValidationFailed", "NotFound")


class AuditContext(Contract):
    """Who acted and from where: filled in by the HTTP layer (or a workflow), carried into the activity that writes
    the audit row. `workflow_id` is the workflow the change belongs to, when there is one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor_id: int | None = None
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    policy_rule: str | None = None
    workflow_id: str | None = None

    def with_rule(self, rule: str | None) -> AuditContext:
        return self.model_copy(update={"policy_rule": rule})

    def acting(self, *, workflow_id: str | None = None, actor_id: int | None = None) -> AuditContext:
        """The same context for a change of `workflow_id`'s request (by `actor_id`, when given)."""
        update: dict[str, object] = {"workflow_id": workflow_id}
        if actor_id is not None:
            update["actor_id"] = actor_id
        return self.model_copy(update=update)


UNLIMITED = "*"


def amount_cents(amount: Decimal) -> int:
    """An amount in whole cents: the value of the AmountCents search attribute."""
    return int((amount * 100).to_integral_value())


def covers(limit: str | None, amount: Decimal | None) -> bool:
    """True when a role with approval `limit` ("*": unlimited; None: may not approve) may approve `amount` (a
    request without an amount needs any limit)."""
    if limit is None:
        return False
    if limit == UNLIMITED or amount is None:
        return True
    return amount <= Decimal(limit)


class ChainLink(Contract):
    """One level of a pinned approval chain: who approves and up to which amount ("*" unlimited)."""

    level: int
    approver_id: int
    role: str
    limit: str | None
    budget_id: int | None = None  # the level an over-budget expense's `extra_approval` budget added

    @property
    def rule(self) -> str:
        """The policy line that gives this approver their limit (recorded on the step and in its audit row)."""
        return f"p, {self.role}, approval_limit, approve, {self.limit}"


class StepInfo(Contract):
    """The open step of a request, as the workflow tracks it (ids match the approval_steps row)."""

    step_id: int
    sequence: int
    round: int
    level: int
    approver_id: int
    approver_role: str
    limit: str | None
    delegate_id: int | None = None
    delegate_starts: datetime | None = None
    delegate_ends: datetime | None = None
    # For the Temporal UI's current details ("waiting on Jane Doe"); histories recorded before them read None.
    approver_name: str | None = None
    delegate_name: str | None = None


class ApprovalTimers(Contract):
    """Per-step SLA, pinned at submit (settings.approvals); tests pass short ones."""

    reminder_seconds: float = 48 * 3600
    escalation_seconds: float = 120 * 3600
    expiry_seconds: float | None = None
    activity_seconds: float = 30  # start-to-close of the database activities


class LockedRate(Contract):
    """The rate an entry's submit locked: `amount` (ApprovalInput.amount, what limits compare) is `original_amount`
    of `currency` at `rate`, in `base_currency`. Every approver sees this base amount; a later rate moves nothing."""

    currency: str
    original_amount: Decimal
    base_currency: str
    rate: Decimal
    rate_date: date
    source: str  # base | ecb | manual


class ApprovalInput(Contract):
    """Input of EntryApprovalWorkflow. The request, its first step and the chain are committed before the start."""

    request_id: int
    subject_kind: str  # expense | revenue | generic
    subject_id: int  # the entry id, or the request id for generic requests
    entry_id: int | None = None
    requester_id: int
    title: str
    amount: Decimal | None = None  # in the base currency (an entry's base amount)
    fx: LockedRate | None = None  # an entry's own currency and amount, and the rate locked at submit
    policy_version: str
    limits: dict[str, dict[str, str | None]]  # authorizer.limits_snapshot() at submit
    chain: list[ChainLink] = []
    first_step: StepInfo | None = None
    auto_approve_rule: str | None = None  # set: approve at once, recording this policy rule
    timers: ApprovalTimers = ApprovalTimers()
    link: str = ""
    upsert_search_attributes: bool = True
    # Past this many events the workflow goes on in a new run (continue-as-new) with the state it has reached.
    history_limit: int = 10_000
    resume: ApprovalResume | None = None  # set in a continued run: where the previous run stood


class ApprovalResume(Contract):
    """The state a continued run takes over from the run before it."""

    status: str
    round: int
    amount: Decimal | None = None
    chain: list[ChainLink] = []
    step: StepInfo | None = None
    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    expires_at: datetime | None = None
    since: datetime | None = None  # when the open step (or the owner's turn) began: the UI's current details


class DecisionRequest(Contract):
    """The argument of the `decide` update. `step_id` is the step the caller saw; another one is 409. The actor is a
    claim: the transition checks it against the database before anything is recorded."""

    action: Literal["approve", "reject", "request_changes"]
    actor_id: int
    step_id: int
    comment: str | None = None
    acting_for: int | None = None  # what the API found (for its answer); never trusted by the transition
    audit: AuditContext = AuditContext()


class OwnerAction(Contract):
    """The argument of the `withdraw` and `resubmit` updates (the requester only)."""

    actor_id: int
    audit: AuditContext = AuditContext()


class DelegationChange(Contract):
    """Signal `delegation_changed`: the approver's steps go to `delegate_id` within [starts, ends) (None: back)."""

    approver_id: int
    delegate_id: int | None = None
    starts: datetime | None = None
    ends: datetime | None = None
    audit: AuditContext = AuditContext()  # who set the delegation, for the audit row of a re-routed step


class StepChanged(Contract):
    """Signal `step_changed`: the database re-routed the open step (who changed it, for the trail)."""

    reason: str = ""
    audit: AuditContext = AuditContext()


class Notice(Contract):
    """An in-app notification the activity created; the workflow sends the matching email (template = event)."""

    user_id: int
    event_type: str
    title: str
    body: str = ""
    link: str = ""
    key: str  # dedup key of the notification, and the email's message key
    details: dict[str, str] = {}  # what the email template shows: amount, currency, owner_name, approver_name ...

    def email_job(self) -> EmailJob:
        """The email that goes with this notification (one place for the rule: the transition that delivers it right
        after its commit and the workflow's durable send build the same job, so the ledger sees one message)."""
        return EmailJob(
            message_key=self.key,
            template=self.event_type,
            to_user_ids=[self.user_id],
            context={**self.details, "title": self.title, "body": self.body, "link": self.link},
            event_type=self.event_type,
        )


class DecisionOutcome(Contract):
    """What a transition committed: the request's and entry's new status and the step now open, if any.

    `changed` is False when there was nothing to do (a timer for a step that was decided meanwhile)."""

    request_status: str
    entry_status: str | None = None
    decided_step_id: int | None = None
    next_step: StepInfo | None = None
    chain: list[ChainLink] = []
    round: int = 1
    changed: bool = True
    notices: list[Notice] = []
    amount: Decimal | None = None  # the request's amount now (a resubmission after changes may have changed it)
    # Keys of the notices whose email the transition already settled (sent, or skipped for good) right after its
    # commit; the workflow sends the others durably. Histories recorded before this field read it as empty.
    emailed: list[str] = []


class LiveStatus(Contract):
    """The answer of the `status` query: what the request waits for and until when."""

    request_id: int
    status: str
    round: int
    step: StepInfo | None = None
    current_approver_id: int | None = None
    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    expires_at: datetime | None = None
    chain: list[ChainLink] = []
    policy_version: str = ""


class ApprovalResult(Contract):
    request_id: int
    status: str
    rounds: int = 1


# Activity inputs (the workflow passes its clock, so rows carry workflow time: correct under time skipping).


class TransitionJob(Contract):
    workflow_id: str
    request_id: int
    now: datetime
    timers: ApprovalTimers = ApprovalTimers()
    limits: dict[str, dict[str, str | None]] = {}
    audit: AuditContext = AuditContext()


class RecordDecisionJob(TransitionJob):
    step_id: int
    action: Literal["approve", "reject", "request_changes"]
    actor_id: int
    # Kept for histories recorded before the transition worked them out from the database; ignored now.
    acting_for: int | None = None
    comment: str | None = None
    next_link: ChainLink | None = None


class StepJob(TransitionJob):
    step_id: int


class AnnounceJob(TransitionJob):
    """The first activity of a run. `first_step_id`: the step the run was started for; the announcement confirms
    that start in the outbox (histories recorded before it carry none)."""

    first_step_id: int | None = None


class RerouteJob(StepJob):
    delegate_id: int | None = None
    starts: datetime | None = None
    ends: datetime | None = None


class ResubmitJob(TransitionJob):
    round: int  # the round this resubmission opens (a retried activity finds it open and does nothing)
    actor_id: int


class OwnerJob(TransitionJob):
    actor_id: int


# === reports =========================================================================================


# === invoices ========================================================================================

INVOICE_WORKFLOW = "InvoiceWorkflow"  # one per issued invoice: send it, then remind on durable timers


def invoice_workflow_id(invoice_id: int) -> str:
    return f"invoice-{invoice_id}"


class InvoiceInput(Contract):
    """An issued (approved and numbered) invoice to send and follow until it is paid or void."""

    invoice_id: int
    number: str


# === recurring invoices ==============================================================================


# A recurring invoice's Temporal Schedule (`recurring-invoice-<id>`) starts RecurringInvoiceRunWorkflow once per
# period; RecurringInvoiceSetupWorkflow creates that schedule once its template is approved (started through the
# approval outbox). Both run on the approvals queue, where the outbox starts workflows.
RECURRING_INVOICE_SETUP_WORKFLOW = "RecurringInvoiceSetupWorkflow"
RECURRING_INVOICE_RUN_WORKFLOW = "RecurringInvoiceRunWorkflow"
# Set by the server on every run a schedule starts (triggered and backfilled ones too): the run's nominal time.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def recurring_schedule_id(recurring_id: int) -> str:
    return f"recurring-invoice-{recurring_id}"


def recurring_setup_workflow_id(recurring_id: int) -> str:
    return f"recurring-invoice-setup-{recurring_id}"


def recurring_run_workflow_id(recurring_id: int) -> str:
    """The schedule's runs: Temporal appends "-<UTC timestamp>" of each run's time."""
    return f"recurring-invoice-run-{recurring_id}"


class RecurringActivity:
    """Names of the recurring-invoice activities (activities/recurring_invoices.py)."""

    PUT_SCHEDULE = "recurring_invoices.put_schedule"
    RUN = "recurring_invoices.run"


class RecurringInvoiceInput(Contract):
    """Input of both recurring-invoice workflows (the schedule's action carries it unchanged for every run)."""

    recurring_id: int


class RecurringRunJob(Contract):
    """One run: the invoice of `run_on` (the date of the run's scheduled time, UTC), at most once."""

    recurring_id: int
    run_on: date
    workflow_id: str


class RecurringRunResult(Contract):
    """What a run did: `created` False when it made nothing (a repeat of the date, or the recurring invoice is no
    longer active); `status` is the recurring invoice's after the run."""

    recurring_id: int
    run_on: date
    status: str
    created: bool = False
    invoice_id: int | None = None
    number: str | None = None


# --- an issued invoice's workflow: send it, then remind (workflows/invoices.py, activities/invoices.py) ---

# Signal `closed(why)`: the invoice is settled ("paid") or void; nothing is left to remind of.
INVOICE_CLOSED_SIGNAL = "closed"


class InvoiceActivity:
    """Names of the invoice workflow's activities (activities/invoices.py)."""

    SEND = "invoices.send"  # on the reports queue: it renders a PDF
    REMIND = "invoices.remind"


class LateFee(Contract):
    """A reminder step's fee: `fixed` in the invoice's currency, or `percent` of the balance due when it runs."""

    kind: Literal["fixed", "percent"]
    amount: Decimal


class ReminderStep(Contract):
    """One step of the reminder policy (policies/reminders.toml), pinned in the workflow when the invoice is sent."""

    offset_days: int  # from the due date; negative: before it
    template: str  # templates/emails/<template>.{txt,html}
    late_fee: LateFee | None = None


class SendJob(Contract):
    invoice_id: int
    number: str
    now: datetime  # the workflow's clock: the time the invoice is recorded as sent


class SentInvoice(Contract):
    """What the send left: the invoice's status and the reminder schedule pinned at send (a later edit of the policy
    or of the hour leaves it alone)."""

    status: str
    open: bool = True  # False: nothing to remind of (void before it went out, or paid since)
    due_date: date
    steps: list[ReminderStep] = []
    hour_utc: int = 9


class RemindJob(Contract):
    invoice_id: int
    step: int  # 1-based position in the pinned steps: the key of its reminder row, fee line and email
    reminder: ReminderStep
    now: datetime  # the workflow's clock: when the step was due


class RemindOutcome(Contract):
    status: str  # the invoice's status as the step found it
    ended: bool = False  # settled (paid) or void: no reminder was sent and none will be
    late_fee: Decimal | None = None  # the fee this step added (None: none, or an earlier attempt added it)


class InvoiceOutcome(Contract):
    """The result of InvoiceWorkflow: which steps reminded, and what ended it."""

    reminded: list[int] = []
    ended_by: str  # "steps done", "paid", "void", or the `closed` signal's reason
    # Steps refused because their day fell in a closed period (their late fee would book in it): nothing of them was
    # written or sent; the later steps still run.
    skipped: list[int] = []


# The type of an activity's refusal when the period its write books in is closed (SQLSTATE LC409).
PERIOD_CLOSED = "PeriodClosed"


REPORT_WORKFLOW_PREFIX = "report-"  # + the report's uuid


class ReportActivity:
    """Names of the report activities (activities/reports.py); the workflows refer to them by name."""

    GENERATE = "generate_report"
    FAIL = "fail_report"
    NOTIFY_REQUESTER = "notify_report_requester"
    START_SCHEDULED = "start_scheduled_report"
    PRUNE = "prune_reports"


def report_workflow_id(report_id: str) -> str:
    return f"{REPORT_WORKFLOW_PREFIX}{report_id}"


class ReportJob(Contract):
    """Input of ReportWorkflow: the report row (already committed as `queued`) holds everything else."""

    report_id: str
    requested_by_id: int | None = None
    heartbeat_seconds: int = 60  # how soon a crashed worker's attempt is retried elsewhere


class GeneratedReport(Contract):
    """What the generate activity stored (or why it could not)."""

    report_id: str
    status: str  # completed | failed
    rows: int = 0
    storage_key: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int = 0
    error: str | None = None
    attachable: bool = False  # small enough to attach to an email (settings.reports.attachment_limit_bytes)
    link: str | None = None  # where to download it (a presigned URL on S3, else the API's download route)
    title: str = ""
    period: str = ""  # "2024-01-01 to 2024-01-31"
    format: str = ""


class ReportProgress(Contract):
    """The answer of ReportWorkflow's `progress` query."""

    status: str  # queued | rendering | notifying | completed | failed
    rows: int = 0
    error: str | None = None


REPORT_PROGRESS_SIGNAL = "report_rows_processed"


class ReportRowsProcessed(Contract):
    """Signal from the generate activity to its workflow while it renders: what the `progress` query answers."""

    rows: int
    attempt: int = 1  # a retry renders again from row 0: a later attempt's count replaces an earlier one's


class ReportNotice(Contract):
    report: GeneratedReport
    user_id: int


class ScheduledReportInput(Contract):
    """The action of a report Temporal Schedule (fixed when the schedule is created or updated)."""

    schedule_id: int | None = None
    schedule_key: str
    name: str
    type: str
    format: str
    period: str = "previous_month"  # relative to the run's time, in `timezone`
    timezone: str = "UTC"
    recipients: list[str] = []  # empty: the organisation's admins
    filters: dict[str, object] = {}
    scope: dict[str, object] = {"kind": "all"}
    heartbeat_seconds: int = 60


class ScheduledRunRequest(Contract):
    schedule: ScheduledReportInput
    report_id: str
    reference_time: datetime


class ScheduledRun(Contract):
    report_id: str
    to_user_ids: list[int] = []
    to_addresses: list[str] = []


class ScheduledReportResult(Contract):
    report: GeneratedReport
    delivered_to: list[str] = []
    attached: bool = False


class ReportRetentionInput(Contract):
    retention_days: int | None = None  # None: settings.reports.retention_days


class ReportRetentionResult(Contract):
    pruned: int = 0


# === backups =========================================================================================

BACKUP_WORKFLOW_PREFIX = "backup-"
RESTORE_DRILL_WORKFLOW_PREFIX = "restore-drill-"
BACKUP_SCHEDULE_ID = "backup"  # Temporal appends "-<UTC timestamp>" to the ids of the runs it starts
RESTORE_DRILL_SCHEDULE_ID = "restore-drill"


class BackupActivity:
    """Names of the backup activities (activities/backups.py); the workflows refer to them by name."""

    CREATE = "create_backup"
    RECORD = "record_backup"
    FAIL = "fail_backup"
    PRUNE = "prune_backups"
    ALERT_SUPERADMINS = "alert_superadmins"
    PREPARE_DRILL = "prepare_restore_drill"
    RESTORE_AND_VERIFY = "restore_and_verify"
    RECORD_DRILL = "record_restore_drill"


def _utc_stamp(at: datetime) -> str:
    from datetime import UTC

    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_workflow_id(at: datetime) -> str:
    """`backup-2026-05-01T02:00:00Z`, the shape the daily schedule's runs get too."""
    return f"{BACKUP_WORKFLOW_PREFIX}{_utc_stamp(at)}"


def restore_drill_workflow_id(at: datetime) -> str:
    return f"{RESTORE_DRILL_WORKFLOW_PREFIX}{_utc_stamp(at)}"


class BackupInput(Contract):
    """Input of BackupWorkflow (the schedule passes the defaults)."""

    requested_by_id: int | None = None
    part_size_bytes: int | None = None  # None: the activity's default (64 MiB); S3 wants >= 5 MiB but the last
    heartbeat_seconds: int = 60  # how soon a crashed worker's upload resumes elsewhere


class BackupJob(Contract):
    workflow_id: str
    part_size_bytes: int | None = None


class BackupProgress(Contract):
    """The create_backup activity's heartbeat: enough to resume the upload of the same dump after a crash."""

    sha256: str
    size_bytes: int
    manifest: dict[str, object] = {}
    dump_seconds: float = 0.0
    part_size: int = 0
    upload_id: str | None = None
    parts: list[dict[str, object]] = []  # {"PartNumber", "ETag", "ChecksumSHA256"} in order, no gaps


class BackupArtifact(Contract):
    """What create_backup stored."""

    workflow_id: str
    storage_key: str
    sha256: str
    size_bytes: int
    manifest: dict[str, object] = {}
    duration_seconds: float = 0.0
    parts: int = 1
    resumed_from_part: int | None = None  # set when this attempt continued an upload an earlier attempt began


class BackupFailure(Contract):
    workflow_id: str
    error: str


class PruneJob(Contract):
    workflow_id: str


class PruneResult(Contract):
    pruned_ids: list[int] = []
    pruned_keys: list[str] = []


class BackupResult(Contract):
    backup_id: int
    workflow_id: str
    storage_key: str
    sha256: str
    size_bytes: int
    resumed_from_part: int | None = None
    pruned_ids: list[int] = []


class DrillInput(Contract):
    """Input of RestoreDrillWorkflow: a given backup, or (None) the latest completed one."""

    backup_id: int | None = None
    requested_by_id: int | None = None
    heartbeat_seconds: int = 60


class DrillJob(Contract):
    workflow_id: str
    backup_id: int | None = None


class DrillTarget(Contract):
    """The drill's row and the backup it restores; `problem` when there is nothing to restore."""

    drill_id: int
    workflow_id: str
    backup_id: int | None = None
    storage_key: str | None = None
    sha256: str | None = None
    manifest: dict[str, object] = {}
    problem: str | None = None


class DrillOutcome(Contract):
    drill_id: int
    backup_id: int | None = None
    passed: bool
    reason: str | None = None  # the first check that failed, in words
    checks: dict[str, object] = {}


class OperatorAlert(Contract):
    """An in-app notification to every active operator an alerting activity reaches (superadmins for backups and
    drills; admins and superadmins for the exchange-rate import), once per dedup key and user; the activity returns
    their ids, for the email (workflows/alerts.py)."""

    dedup_key: str
    event_type: str  # backup_failed | restore_drill_failed | fx_import_failed
    title: str
    body: str = ""
    link: str | None = None
    data: dict[str, object] = {}


class DrillResult(Contract):
    drill_id: int
    backup_id: int | None = None
    status: str  # passed | failed
    reason: str | None = None


# === exchange rates ==================================================================================

FX_RATES_SCHEDULE_ID = "fx-rates-import"  # the daily import; Temporal appends "-<UTC timestamp>" to its runs' ids
FX_RATES_BACKFILL_WORKFLOW_ID = "fx-rates-backfill"  # fixed: two workers starting at once start it once
FX_IMPORT_FAILED = "FxImportFailed"  # the ApplicationError type of an import that gave up (the Temporal UI shows it)
ECB_FORMAT_ERROR = "EcbFormatError"  # the document is not an ECB rates file: retrying fetches the same again


class FxActivity:
    """Names of the exchange-rate activities (activities/fx.py); the workflow refers to them by name."""

    IMPORT = "fx.import_rates"
    ALERT_ADMINS = "fx.alert_admins"


class FxImportInput(Contract):
    """Input of FxRatesImportWorkflow: the daily file (FX_RATES_URL) or the 90-day one (FX_RATES_HISTORY_URL), or an
    explicit `url`. The schedule and the backfill pass the attempts and timeout from settings at their creation."""

    which: Literal["daily", "history"] = "daily"
    url: str | None = None  # None: the URL the settings give for `which`, read by the activity
    attempts: int = 5  # FX_FETCH_ATTEMPTS: fetch attempts before the admins are alerted
    timeout_seconds: float = 30  # FX_FETCH_TIMEOUT_SECONDS: one fetch
    retry_initial_seconds: float = 60  # the wait after the first failed attempt; doubled after each next one


class FxImportJob(Contract):
    workflow_id: str
    which: Literal["daily", "history"] = "daily"
    url: str | None = None


class FxImportSummary(Contract):
    """What one import did: the days it stored (new, or rates the ECB corrected), the days already stored as they
    are, and the days refused whole with the reason (none of their rates stored)."""

    url: str
    stored: list[date] = []
    already_there: list[date] = []
    refused: dict[str, str] = {}  # the day as written in the file -> why
    rates_inserted: int = 0
    rates_corrected: int = 0
    attempt: int = 1  # the fetch attempt that succeeded


# === budgets ==========================================================================================

BUDGET_UPKEEP_SCHEDULE_ID = "budget-upkeep"


class BudgetActivity:
    """Names of the budget upkeep's activities (activities/budgets.py)."""

    RECONCILE = "budgets.release_closed"
    ALERTS = "budgets.unsent_alerts"
    ALERT_SENT = "budgets.alert_sent"


class BudgetUpkeepInput(Contract):
    grace_seconds: int = 300  # BUDGET_UPKEEP_GRACE_SECONDS: a younger commitment is left to its workflow
    batch: int = 200  # a page of requests looked at (all pages are); alerts emailed in one run (the next goes on)


class BudgetReleased(Contract):
    """A commitment the reconciler gave back: its request, the workflow and how the engine said it ended."""

    request_id: int
    workflow_id: str
    workflow_status: str


class BudgetReconcileSummary(Contract):
    checked: int = 0
    released: list[BudgetReleased] = []


class BudgetAlertEmail(Contract):
    alert_id: int
    email: EmailJob


class BudgetUpkeepSummary(Contract):
    reconcile: BudgetReconcileSummary = BudgetReconcileSummary()
    alerts_sent: int = 0


# === journal exports ==================================================================================

EXPORT_WORKFLOW = "ExportWorkflow"  # one per export batch: render the closing's journals, store the file


def export_workflow_id(number: int) -> str:
    return f"export-{number}"


class ExportActivity:
    """Names of the export activities (activities/exports.py); the workflow refers to them by name."""

    RENDER = "exports.render"
    FAIL = "exports.fail"


EXPORT_REFUSED = "ExportRefused"  # the ApplicationError type of journals a format cannot hold: retrying cannot help


class ExportJob(Contract):
    """Input of ExportWorkflow: the batch row (committed as `pending`) holds the month, closing and format."""

    batch_id: int


class ExportFailure(Contract):
    batch_id: int
    error: str


class ExportResult(Contract):
    """What became of a batch: completed with its file (size and SHA-256), or failed with the reason."""

    batch_id: int
    number: int
    status: str  # completed | failed
    filename: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    journals: int | None = None
    error: str | None = None


# === attachments ======================================================================================

ATTACHMENT_UPKEEP_SCHEDULE_ID = "attachments-upkeep"
ATTACHMENT_UPKEEP_WORKFLOW = "AttachmentUpkeepWorkflow"


class AttachmentActivity:
    """Names of the attachments upkeep's activities (activities/attachments.py)."""

    REMOVE_ABANDONED = "attachments.remove_abandoned"


class AttachmentUpkeepInput(Contract):
    # ATTACHMENT_PENDING_GRACE_SECONDS: a pending upload younger than this is left alone (its link may still work;
    # the activity refuses less than the link's lifetime, whoever starts the run).
    grace_seconds: int
    batch: int = 200  # uploads looked at per page (all pages are)


class AttachmentUpkeepSummary(Contract):
    """What a run did: the abandoned uploads it removed (ids; each has an `attachment.abandoned` audit row), and how
    many it found pending but left (completed meanwhile, or held by a completion or another run)."""

    removed: list[int] = []
    left: int = 0
