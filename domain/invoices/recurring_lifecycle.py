"""A recurring invoice's status and its schedule.

`draft -> pending_approval -> active -> ended`, or `cancelled`. Before it is active the status mirrors its template's
approval (the template is an invoice and goes through the normal invoice approval): submitted, it waits; sent back
for changes, withdrawn or expired, it is a draft again; rejected, it is cancelled. Approved, it is active: in the
approving transaction an approval-outbox row starts RecurringInvoiceSetupWorkflow, which creates its Temporal
Schedule `recurring-invoice-<id>` (activities/recurring_invoices.py). Each run of the schedule issues one invoice
(domain/invoices/recurring.py); the run that reaches `count` ends it.

Kept apart from domain/invoices/recurring.py because domain/invoices/issuing.py calls in here (activation on
approval) and recurring.py calls issuing (a run issues its invoice).

The schedule (UTC, at midnight): weekly on the start's weekday; monthly, quarterly (every third month from the
start's) and yearly on the start's day of the month. A start on the 29th to 31st runs on the last day of each
month shorter than that (the 31st: on 30 April, on 28 February, or 29 in a leap year), never skipping a month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from core.engine import Calendar, ScheduledStart, UserMetadata
from core.sql import Sql
from domain.approvals import outbox
from domain.audit.service import AuditContext, record
from domain.invoices import recurring_repository as recurring
from domain.invoices.recurring_repository import RecurringRow
from domain.invoices.repository import InvoiceRow
from workflows.contracts import (
    RECURRING_INVOICE_RUN_WORKFLOW,
    RecurringInvoiceInput,
    recurring_run_workflow_id,
    recurring_schedule_id,
    recurring_setup_workflow_id,
)

RESOURCE = "recurring_invoice"

DRAFT = "draft"  # the same words as the template's own status while it is in approval
PENDING_APPROVAL = "pending_approval"
ACTIVE = "active"
ENDED = "ended"
CANCELLED = "cancelled"
BEFORE_ACTIVE = (DRAFT, PENDING_APPROVAL)

# A run retries a missing exchange rate for about two days (activities/recurring_invoices.py): its workflow may
# take that long, and no longer.
RUN_TIMEOUT = timedelta(days=3)


# --- following the template's approval ------------------------------------------------------------------------


async def activate(sql: Sql, template: InvoiceRow, request_id: int, context: AuditContext) -> RecurringRow | None:
    """The template was approved (domain/invoices/issuing.py, in the approving transaction): its recurring invoice
    is active, and its schedule is created once this transaction commits (through the approval outbox of
    `request_id`, so a crash after the commit loses nothing). None: no recurring invoice waits on this template."""
    row = await recurring.recurring_of_template(sql, template.id, lock=True)
    if row is None or row.status not in BEFORE_ACTIVE:
        return None
    active = await recurring.update(sql, row.id, {"status": ACTIVE})
    workflow_id = recurring_setup_workflow_id(row.id)
    metadata = UserMetadata(
        summary=f"Recurring invoice {row.id}: create its {row.frequency} schedule",
        details=f"Template invoice #{template.id} was approved; its runs are issued by the schedule "
        f"recurring-invoice-{row.id}.",
    )
    await outbox.add_workflow_start(
        sql, request_id, workflow_id, RecurringInvoiceInput(recurring_id=row.id), {}, metadata
    )
    await record(sql, context, "recurring_invoice.activated", RESOURCE, row.id,
                 {"status": [row.status, ACTIVE], "schedule_id": recurring_schedule_id(row.id),
                  "workflow_id": workflow_id})  # fmt: skip
    return active


async def follow_template(sql: Sql, template: InvoiceRow) -> None:
    """The template's approval moved without approving it (domain/invoices/issuing.py): a recurring invoice not yet
    active says the same, a rejected template (void) cancels it. The approval's own audit row records the move."""
    row = await recurring.recurring_of_template(sql, template.id, lock=True)
    if row is None or row.status not in BEFORE_ACTIVE:
        return
    status = CANCELLED if template.status == "void" else template.status
    if status != row.status and status in (*BEFORE_ACTIVE, CANCELLED):
        await recurring.update(sql, row.id, {"status": status})


# --- the schedule ---------------------------------------------------------------------------------------------

_SHORT_MONTHS = (4, 6, 9, 11)
# Years the calendar may meet (dates are bounded to 2000..2100): 2000 was a leap year, 2100 is not.
_LEAP_YEARS: tuple[int | range, ...] = (range(2000, 2097, 4),)
_COMMON_YEARS: tuple[int | range, ...] = (range(2001, 2100, 4), range(2002, 2100, 4), range(2003, 2100, 4), 2100)


def months_of(frequency: str, starts_on: date) -> tuple[int, ...]:
    if frequency == "monthly":
        return tuple(range(1, 13))
    if frequency == "quarterly":
        return tuple(sorted((starts_on.month - 1 + 3 * quarter) % 12 + 1 for quarter in range(4)))
    return (starts_on.month,)  # yearly


def calendars(frequency: str, starts_on: date) -> tuple[Calendar, ...]:
    """The days the schedule runs on (see the module's docstring)."""
    if frequency == "weekly":
        return (Calendar(days_of_week=(starts_on.isoweekday() % 7,)),)  # Temporal counts from Sunday = 0
    months = months_of(frequency, starts_on)
    day = starts_on.day
    if day <= 28:  # every month has it
        step = 12 // len(months)  # 1, 3 or 12: the months are evenly spaced
        return (Calendar(months=(range(months[0], 13, step),), days_of_month=(day,)),)
    by_day: dict[int, list[int]] = {}
    for month in months:
        if month != 2:
            by_day.setdefault(min(day, 30 if month in _SHORT_MONTHS else 31), []).append(month)
    found = [Calendar(months=tuple(them), days_of_month=(on,)) for on, them in sorted(by_day.items())]
    if 2 in months:
        found.append(Calendar(months=(2,), days_of_month=(29,), years=_LEAP_YEARS))
        found.append(Calendar(months=(2,), days_of_month=(28,), years=_COMMON_YEARS))
    return tuple(found)


def start_of(day: date) -> datetime:
    """Midnight UTC of `day`: a run's time, and so the date its invoice carries (the run's scheduled time's date)."""
    return datetime.combine(day, time(), tzinfo=UTC)


def engine_schedule(row: RecurringRow, task_queue: str) -> ScheduledStart:
    """The schedule of an active recurring invoice, each run starting RecurringInvoiceRunWorkflow; limited to the
    runs it has left when it has a count."""
    return ScheduledStart(
        workflow=RECURRING_INVOICE_RUN_WORKFLOW,
        argument=RecurringInvoiceInput(recurring_id=row.id),
        workflow_id=recurring_run_workflow_id(row.id),
        task_queue=task_queue,
        cron=None,
        timezone="UTC",
        execution_timeout=RUN_TIMEOUT,
        calendars=calendars(row.frequency, row.starts_on),
        start_at=start_of(row.starts_on),
        remaining_actions=row.count - row.runs if row.count is not None else None,
        note=f"recurring invoice {row.id}: {row.frequency} from {row.starts_on.isoformat()}",
        metadata=UserMetadata(
            summary=f"Recurring invoice {row.id}: issue the {row.frequency} invoice",
            details=f"From template invoice #{row.template_id}, {row.frequency} from {row.starts_on.isoformat()}",
        ),
    )
