"""What a template may read: per dataset, a whitelist of fields, each a SQL expression written here.

A template names fields by key (`category`, `amount`); the key picks an expression from this module, never an
identifier from the caller. Each dataset also says which date its period and time buckets read, and whose rows a
runner may see: the same rules as the fixed reports (domain/reports/datasets.py), from the scope decided when the
report was requested, so a template never widens what its runner may see.

Money is the base currency's (amounts locked at submit): originals in different currencies do not add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Date, FromClause, and_, case, cast, func, join, not_, or_, outerjoin, true
from sqlalchemy.orm import aliased

from domain.models import (
    ApprovalRequest,
    ApprovalStep,
    Budget,
    BudgetPeriod,
    Customer,
    Entry,
    EntryKind,
    Invoice,
    InvoicePayment,
    User,
)
from domain.money import minor_units
from domain.reports.datasets import ReportScope

# Field kinds: text, money (base currency), int, hours (a decimal with 2 places), date.
NUMERIC_KINDS = frozenset({"money", "int", "hours"})


@dataclass(frozen=True)
class Context:
    """What some expressions depend on: the report's time zone (timestamps to days) and base currency."""

    timezone: str = "UTC"
    base_currency: str = "USD"


Build = Callable[[Context], ColumnElement[Any]]


@dataclass(frozen=True)
class SourceField:
    key: str
    label: str
    kind: str
    build: Build
    groupable: bool = True  # ids, descriptions and exact amounts make one group per row: list them instead

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


def _const(expression: Any) -> Build:
    return lambda _context: expression


def _day(instant: Any) -> Build:
    """A timestamp's day in the report's time zone."""
    return lambda context: cast(func.timezone(context.timezone, instant), Date)


@dataclass(frozen=True)
class Source:
    """One dataset: its rows (`from_`, `where`), its fields, the date its period reads, and who sees which rows."""

    name: str
    subject: str  # what a row is, for the report's description of its scope
    from_: Callable[[], FromClause]
    fields: dict[str, SourceField]
    day: Build
    owner: ColumnElement[int] | None  # the column the owners' scope restricts; None: the budgets' own rule
    order: tuple[ColumnElement[Any], ...]  # listing order
    where: tuple[ColumnElement[bool], ...] = ()

    def visible(self, scope: ReportScope) -> ColumnElement[bool]:
        if self.owner is not None:
            return scope.owner_filter(self.owner)
        budgets = scope.budget_scope()
        if budgets.everyone:
            return true()
        return or_(Budget.owner_id == budgets.viewer_id, Budget.team_manager_id.in_(list(budgets.team_ids)))


def _fields(*fields: SourceField) -> dict[str, SourceField]:
    return {field.key: field for field in fields}


# --- entries ------------------------------------------------------------------------------------------------------

_owner = aliased(User, name="owner")

ENTRIES = Source(
    name="entries",
    subject="entries",
    from_=lambda: join(Entry, _owner, _owner.id == Entry.owner_id),
    fields=_fields(
        SourceField("id", "ID", "int", _const(Entry.id), groupable=False),
        SourceField("date", "Date", "date", _const(Entry.entry_date)),
        SourceField("kind", "Kind", "text", _const(Entry.kind)),
        SourceField("category", "Category", "text", _const(Entry.category)),
        SourceField("status", "Status", "text", _const(Entry.status)),
        SourceField("counterparty", "Source / vendor", "text", _const(func.coalesce(Entry.source, Entry.vendor, ""))),
        SourceField("description", "Description", "text", _const(Entry.description), groupable=False),
        SourceField("owner", "Owner", "text", _const(_owner.username)),
        SourceField("owner_name", "Owner name", "text", _const(_owner.full_name)),
        SourceField("currency", "Currency", "text", _const(Entry.currency)),
        SourceField("amount", "Amount", "money", _const(Entry.base_amount), groupable=False),
        SourceField(
            "signed_amount",
            "Signed amount",
            "money",
            _const(case((Entry.kind == EntryKind.REVENUE.value, Entry.base_amount), else_=-Entry.base_amount)),
            groupable=False,
        ),
    ),
    day=_const(Entry.entry_date),
    owner=Entry.owner_id,  # type: ignore[arg-type]
    order=(Entry.entry_date, Entry.id),  # type: ignore[arg-type]
)

# --- approvals: one row per approval step ---------------------------------------------------------------------------

_requester = aliased(User, name="requester")
_approver = aliased(User, name="approver")

APPROVALS = Source(
    name="approvals",
    subject="approval steps",
    from_=lambda: join(
        join(
            join(ApprovalStep, ApprovalRequest, ApprovalRequest.id == ApprovalStep.request_id),
            _requester,
            _requester.id == ApprovalRequest.requester_id,
        ),
        _approver,
        _approver.id == ApprovalStep.approver_id,
    ),
    fields=_fields(
        SourceField("request_id", "Request", "int", _const(ApprovalRequest.id), groupable=False),
        SourceField("subject", "Subject", "text", _const(ApprovalRequest.subject_kind)),
        SourceField("level", "Level", "int", _const(ApprovalStep.level)),
        SourceField("status", "Step status", "text", _const(ApprovalStep.status)),
        SourceField("request_status", "Request status", "text", _const(ApprovalRequest.status)),
        SourceField("approver", "Approver", "text", _const(_approver.username)),
        SourceField("requester", "Requester", "text", _const(_requester.username)),
        SourceField("amount", "Amount", "money", _const(ApprovalRequest.amount), groupable=False),
        SourceField(
            "cycle_hours",
            "Cycle hours",
            "hours",
            _const(func.round(func.extract("epoch", ApprovalStep.decided_at - ApprovalStep.created_at) / 3600, 2)),
            groupable=False,
        ),
        SourceField("created", "Created", "date", _day(ApprovalStep.created_at)),
        SourceField("decided", "Decided", "date", _day(ApprovalStep.decided_at)),
    ),
    day=_day(ApprovalStep.created_at),
    owner=ApprovalRequest.requester_id,  # type: ignore[arg-type]
    order=(ApprovalStep.created_at, ApprovalStep.id),  # type: ignore[arg-type]
)

# --- budgets: one row per budget period, among the budgets the runner may see ---------------------------------------

_manager = aliased(User, name="team_manager")

BUDGETS = Source(
    name="budgets",
    subject="budget periods",
    from_=lambda: outerjoin(
        join(BudgetPeriod, Budget, Budget.id == BudgetPeriod.budget_id),
        _manager,
        _manager.id == Budget.team_manager_id,
    ),
    fields=_fields(
        SourceField("budget", "Budget", "text", _const(Budget.name)),
        SourceField("category", "Category", "text", _const(func.coalesce(Budget.category, ""))),
        SourceField("team_manager", "Team manager", "text", _const(func.coalesce(_manager.username, ""))),
        SourceField("period_kind", "Period kind", "text", _const(Budget.period_kind)),
        SourceField("starts_on", "Starts on", "date", _const(BudgetPeriod.starts_on)),
        SourceField("amount", "Amount", "money", _const(BudgetPeriod.amount), groupable=False),
        SourceField("committed", "Committed", "money", _const(BudgetPeriod.committed), groupable=False),
        SourceField("actual", "Actual", "money", _const(BudgetPeriod.actual), groupable=False),
        SourceField(
            "available",
            "Available",
            "money",
            _const(BudgetPeriod.amount - BudgetPeriod.committed - BudgetPeriod.actual),
            groupable=False,
        ),
    ),
    day=_const(BudgetPeriod.starts_on),
    owner=None,
    order=(Budget.name, Budget.id, BudgetPeriod.starts_on),  # type: ignore[arg-type]
)

# --- invoices and their payments, among the invoices the runner may see ----------------------------------------------

_invoice_owner = aliased(User, name="invoice_owner")


def _base_balance(context: Context) -> ColumnElement[Any]:
    """The balance due in base at the invoice's locked rate, rounded once per invoice (domain/invoices/receivables)."""
    places = minor_units(context.base_currency) or 0
    return func.round((Invoice.total - Invoice.amount_paid - Invoice.amount_credited) * Invoice.fx_rate, places)


INVOICES = Source(
    name="invoices",
    subject="invoices",
    from_=lambda: join(
        join(Invoice, Customer, Customer.id == Invoice.customer_id),
        _invoice_owner,
        _invoice_owner.id == Invoice.owner_id,
    ),
    fields=_fields(
        SourceField("number", "Invoice", "text", _const(func.coalesce(Invoice.number, "")), groupable=False),
        SourceField("customer", "Customer", "text", _const(Customer.name)),
        SourceField("status", "Status", "text", _const(Invoice.status)),
        SourceField("currency", "Currency", "text", _const(Invoice.currency)),
        SourceField("issue_date", "Issue date", "date", _const(Invoice.issue_date)),
        SourceField("due_date", "Due date", "date", _const(Invoice.due_date)),
        SourceField("owner", "Owner", "text", _const(_invoice_owner.username)),
        SourceField("total", "Total in base", "money", _const(Invoice.base_total), groupable=False),
        SourceField("balance", "Balance in base", "money", _base_balance, groupable=False),
    ),
    day=_const(Invoice.issue_date),
    owner=Invoice.owner_id,  # type: ignore[arg-type]
    order=(Invoice.issue_date, Invoice.id),  # type: ignore[arg-type]
    where=(not_(Invoice.is_template),),
)

PAYMENTS = Source(
    name="payments",
    subject="invoice payments",
    from_=lambda: join(
        join(InvoicePayment, Invoice, Invoice.id == InvoicePayment.invoice_id),
        Customer,
        Customer.id == Invoice.customer_id,
    ),
    fields=_fields(
        SourceField("paid_on", "Paid on", "date", _const(InvoicePayment.paid_on)),
        SourceField("invoice", "Invoice", "text", _const(func.coalesce(Invoice.number, ""))),
        SourceField("customer", "Customer", "text", _const(Customer.name)),
        SourceField("currency", "Currency", "text", _const(Invoice.currency)),
        SourceField("reference", "Reference", "text", _const(InvoicePayment.reference), groupable=False),
        SourceField("amount", "Amount in base", "money", _const(InvoicePayment.base_amount), groupable=False),
        SourceField("booked", "Booked in base", "money", _const(InvoicePayment.booked_base), groupable=False),
        SourceField("fx_difference", "FX gain or loss", "money", _const(InvoicePayment.fx_difference), groupable=False),
    ),
    day=_const(InvoicePayment.paid_on),
    owner=Invoice.owner_id,  # type: ignore[arg-type]
    order=(InvoicePayment.paid_on, InvoicePayment.id),  # type: ignore[arg-type]
)

SOURCES: dict[str, Source] = {source.name: source for source in (ENTRIES, APPROVALS, BUDGETS, INVOICES, PAYMENTS)}
# The datasets whose rows are invoices': scoped by the invoices a runner may see (`invoice read`), not their entries.
INVOICE_SOURCES = frozenset({"invoices", "payments"})


def in_period(source: Source, context: Context, start: date, end: date) -> ColumnElement[bool]:
    day = source.day(context)
    return and_(day >= start, day <= end)
