"""SQLAlchemy models, one module per table group; importing this package registers them all on `Base`."""

from domain.models.analytics import (
    AnalyticsCounterpartyTotal,
    AnalyticsExpenseWeek,
    AnalyticsRequestOutcome,
    AnalyticsStepCycle,
    AnalyticsStepHistogram,
    AnalyticsStepTotal,
)
from domain.models.approval import ApprovalOutbox, ApprovalRequest, ApprovalStep, RequestStatus, StepStatus
from domain.models.audit import AuditLog
from domain.models.backup import Backup, RestoreDrill
from domain.models.base import Base
from domain.models.budget import Budget, BudgetAlert, BudgetLedger, BudgetPeriod, BudgetThreshold, BudgetVersion
from domain.models.dashboard import DashboardCurrencyTotal, DashboardEntryTotal
from domain.models.delegation import Delegation
from domain.models.entry import Entry, EntryKind, EntryStatus
from domain.models.fx import AppState, FxRate
from domain.models.idempotency import IdempotencyKey
from domain.models.invoice import (
    CreditNote,
    CreditNoteTax,
    Customer,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    InvoicePayment,
    InvoiceReminder,
    InvoiceSequence,
    RecurringInvoice,
)
from domain.models.ledger import (
    Account,
    AccountMapping,
    Attachment,
    EntryDuplicate,
    ExportBatch,
    Journal,
    JournalLine,
    Period,
)
from domain.models.notification import Notification, NotificationPreference, SentEmail
from domain.models.policy import PolicyRefusal, PolicyVersion
from domain.models.report import Report, ReportSchedule
from domain.models.report_template import ReportTemplate, ReportTemplateVersion
from domain.models.session import OtpCode, RateLimitHit, RefreshToken
from domain.models.user import Role, User

__all__ = [
    "Account",
    "AccountMapping",
    "AnalyticsCounterpartyTotal",
    "AnalyticsExpenseWeek",
    "AnalyticsRequestOutcome",
    "AnalyticsStepCycle",
    "AnalyticsStepHistogram",
    "AnalyticsStepTotal",
    "AppState",
    "ApprovalOutbox",
    "ApprovalRequest",
    "ApprovalStep",
    "Attachment",
    "AuditLog",
    "Backup",
    "Base",
    "Budget",
    "BudgetAlert",
    "BudgetLedger",
    "BudgetPeriod",
    "BudgetThreshold",
    "BudgetVersion",
    "CreditNote",
    "CreditNoteTax",
    "Customer",
    "DashboardCurrencyTotal",
    "DashboardEntryTotal",
    "Delegation",
    "Entry",
    "EntryDuplicate",
    "EntryKind",
    "EntryStatus",
    "ExportBatch",
    "FxRate",
    "IdempotencyKey",
    "Invoice",
    "InvoiceEmail",
    "InvoiceLine",
    "InvoicePayment",
    "InvoiceReminder",
    "InvoiceSequence",
    "Journal",
    "JournalLine",
    "Notification",
    "NotificationPreference",
    "OtpCode",
    "Period",
    "PolicyRefusal",
    "PolicyVersion",
    "RateLimitHit",
    "RecurringInvoice",
    "RefreshToken",
    "Report",
    "ReportSchedule",
    "ReportTemplate",
    "ReportTemplateVersion",
    "RequestStatus",
    "RestoreDrill",
    "Role",
    "SentEmail",
    "StepStatus",
    "User",
]
