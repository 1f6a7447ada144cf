"""Recurring invoices: a template invoice approved once, then issued on a schedule, each run numbered and sent.

Create makes the template (an invoice with `is_template`, never numbered or sent) and its recurring invoice in one
transaction. Submit sends the template through the normal invoice approval (domain/invoices/commands.py); approval
activates the recurring invoice and creates its Temporal Schedule (domain/invoices/recurring_lifecycle.py). Each
run of the schedule issues one invoice, dated the run's day (`run`); cancel stops it and deletes the schedule.

Who sees a recurring invoice: whoever sees its template (domain/invoices/service.py: `invoice read_all`, a
manager whose subtree holds its owner, whoever is asked to approve it); anyone else gets 404.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.authz import Authorizer
from core.db import Tx
from core.engine import EngineUnavailable, WorkflowEngine
from core.sql import Sql
from domain.approvals.commands import Caller
from domain.audit.service import AuditContext, record
from domain.errors import InvalidState, NotFound, ValidationFailed
from domain.fx import rates as fx_rates
from domain.idempotency.once import Replayed, once
from domain.invoices import issuing, service
from domain.invoices import recurring_repository as recurring
from domain.invoices import repository as invoices
from domain.invoices.commands import InvoiceCommands
from domain.invoices.recurring_lifecycle import (
    ACTIVE,
    CANCELLED,
    DRAFT,
    ENDED,
    PENDING_APPROVAL,
    RESOURCE,
    follow_template,
)
from domain.invoices.recurring_repository import RecurringRow
from domain.invoices.recurring_schemas import (
    RecurringInvoiceCreate,
    RecurringInvoiceOut,
    RecurringInvoicePage,
    RecurringStatus,
)
from domain.invoices.repository import InvoiceRow, NewLine
from domain.invoices.schemas import InvoiceCreate
from domain.models import User
from domain.pagination import Cursor, Pager
from domain.users.visibility import visibility_for
from workflows.contracts import recurring_schedule_id

log = logging.getLogger(__name__)


# --- reading ----------------------------------------------------------------------------------------------------


async def _visible(
    tx: Tx, authorizer: Authorizer, viewer: User, recurring_id: int, *, lock: bool = False
) -> tuple[RecurringRow, InvoiceRow]:
    """The recurring invoice and its template, when the viewer may see the template; else 404. `lock`: both rows,
    the template's first (the order every transaction on them keeps)."""
    try:
        row = await recurring.recurring(tx.sql, recurring_id)
        template = await service.visible_invoice(tx, authorizer, viewer, row.template_id, lock=lock)
    except NotFound:
        raise NotFound("recurring invoice not found", id=recurring_id) from None
    if lock:
        row = await recurring.recurring(tx.sql, recurring_id, lock=True)
    return row, template


def _schedule_of(row: RecurringRow) -> str | None:
    """The schedule's id while it runs (an ended or cancelled recurring invoice's is deleted)."""
    return recurring_schedule_id(row.id) if row.status == ACTIVE else None


async def _present(sql: Sql, pairs: list[tuple[RecurringRow, InvoiceRow]]) -> list[RecurringInvoiceOut]:
    templates = await service.present(sql, [template for _, template in pairs])
    return [
        RecurringInvoiceOut(
            id=row.id, status=row.status, frequency=row.frequency, starts_on=row.starts_on,  # type: ignore[arg-type]
            count=row.count, runs=row.runs, owner_id=row.owner_id, template=template,
            schedule_id=_schedule_of(row), version=row.version, created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for (row, _), template in zip(pairs, templates, strict=True)
    ]  # fmt: skip


async def get(
    tx: Tx, authorizer: Authorizer, engine: WorkflowEngine, viewer: User, recurring_id: int
) -> RecurringInvoiceOut:
    """One recurring invoice; an active one with its schedule's next times (none while the engine is away)."""
    row, template = await _visible(tx, authorizer, viewer, recurring_id)
    out = (await _present(tx.sql, [(row, template)]))[0]
    if row.status == ACTIVE:
        runs = await engine.schedule_runs(recurring_schedule_id(row.id))
        upcoming = runs.next if runs is not None else []
        # The engine lists its next times whatever the count: only those still to be issued are shown.
        out.next_runs = upcoming if row.count is None else upcoming[: max(row.count - row.runs, 0)]
    return out


async def list_recurring(
    tx: Tx,
    authorizer: Authorizer,
    viewer: User,
    status: RecurringStatus | None,
    limit: int,
    offset: int,
    cursor: Cursor | None = None,
) -> RecurringInvoicePage:
    """Those whose template's owner the viewer sees (as invoices are listed), newest first."""
    pager = Pager(limit, offset, cursor)
    visibility = await visibility_for(tx.sql, authorizer, viewer, service.RESOURCE)
    after = pager.key(recurring.KEYSET)
    pairs, total = await recurring.page(tx.sql, visibility.owner_list(), status, pager.fetch, offset, after)
    pairs, next_cursor = pager.cut(recurring.KEYSET, pairs, lambda pair: (pair[0].id,))
    items = await _present(tx.sql, pairs)
    return RecurringInvoicePage(
        items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor
    )


# --- writing ----------------------------------------------------------------------------------------------------


async def create(tx: Tx, user: User, body: RecurringInvoiceCreate, context: AuditContext) -> RecurringInvoiceOut:
    """The template (a draft invoice dated today, so its approval locks today's rate) and the recurring invoice,
    in one transaction."""
    today = service.today()
    if body.starts_on < today:
        raise ValidationFailed(f"starts_on must not be before today ({today.isoformat()})", field="starts_on")
    draft = InvoiceCreate(customer_id=body.template.customer_id, currency=body.template.currency, issue_date=today,
                          lines=body.template.lines, notes=body.template.notes)  # fmt: skip
    template = await service.create_draft(tx.sql, user, draft, context, template=True)
    fields = {"template_id": template.id, "frequency": body.frequency, "starts_on": body.starts_on,
              "count": body.count, "owner_id": user.id}  # fmt: skip
    row = await recurring.insert(tx.sql, fields)
    await record(tx.sql, context, "recurring_invoice.created", RESOURCE, row.id,
                 {"template_id": template.id, "frequency": row.frequency, "starts_on": row.starts_on.isoformat(),
                  "count": row.count})  # fmt: skip
    return (await _present(tx.sql, [(row, template)]))[0]


async def submit(
    tx: Tx, commands: InvoiceCommands, caller: Caller, recurring_id: int
) -> RecurringInvoiceOut | Replayed:
    """Submit the template for approval (the invoice approval: its total in the base currency picks the chain);
    the recurring invoice waits on it, and is active once it is approved. 503 when the engine is away."""
    scope = f"POST /recurring-invoices/{recurring_id}/submit"
    return await once(tx, caller.user.id, caller.key, scope, None, 200, _submit, tx, commands, caller, recurring_id)


async def _submit(tx: Tx, commands: InvoiceCommands, caller: Caller, recurring_id: int) -> RecurringInvoiceOut:
    row, _ = await _visible(tx, commands.authorizer, caller.user, recurring_id, lock=True)
    if row.status != DRAFT:
        raise InvalidState(f"only a draft recurring invoice can be submitted; this one is {row.status}",
                           status=row.status)  # fmt: skip
    # The invoice command commits the submission (and its approval's start); the key is this command's, claimed
    # above, so the inner command runs without one.
    await commands.submit(tx, dataclasses.replace(caller, key=None), row.template_id)
    # Mirror what the template now is (pending_approval; active already when a policy rule approved it at once),
    # under the template's lock: a decision that moved it meanwhile has mirrored itself.
    template = await invoices.invoice(tx.sql, row.template_id, lock=True)
    await follow_template(tx.sql, template)
    return await get(tx, commands.authorizer, commands.approvals.lifecycle.engine, caller.user, recurring_id)


async def cancel(
    tx: Tx, authorizer: Authorizer, engine: WorkflowEngine, user: User, recurring_id: int, context: AuditContext
) -> RecurringInvoiceOut:
    """No more runs: cancelled, and its schedule deleted once that is committed (a schedule the engine could not
    delete now makes nothing: every run finds the recurring invoice cancelled and deletes it). Invoices already
    issued stay as they are (void or credit them one by one)."""
    row, template = await _visible(tx, authorizer, user, recurring_id, lock=True)
    if row.status == PENDING_APPROVAL:
        raise InvalidState(f"the template is waiting on approval: withdraw it first (POST /api/v1/invoices/"
                           f"{template.id}/withdraw)", status=row.status)  # fmt: skip
    if row.status in (ENDED, CANCELLED):
        raise InvalidState(f"this recurring invoice is {row.status} already", status=row.status)
    cancelled = await recurring.update(tx.sql, row.id, {"status": CANCELLED}, bump=True)
    await record(tx.sql, context, "recurring_invoice.cancelled", RESOURCE, row.id,
                 {"status": [row.status, CANCELLED], "runs": row.runs})  # fmt: skip
    await tx.commit()
    if row.status == ACTIVE:
        await retire_schedule(engine, row.id)
    return (await _present(tx.sql, [(cancelled, template)]))[0]


async def retire_schedule(engine: WorkflowEngine, recurring_id: int) -> None:
    """Delete the schedule of a recurring invoice that has no runs left. Best effort: its runs make nothing."""
    try:
        await engine.delete_schedule(recurring_schedule_id(recurring_id))
    except EngineUnavailable as error:
        log.info("schedule of recurring invoice %s not deleted now (%s): its runs make nothing", recurring_id, error)


# --- a run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What a run did: `invoice` the run's invoice (made now when `created`, else by an earlier attempt);
    `request_id` the template's approval, whose outbox holds the new invoice's workflow start."""

    recurring: RecurringRow
    invoice: InvoiceRow | None = None
    created: bool = False
    request_id: int | None = None


async def run(
    sql: Sql, recurring_id: int, run_on: date, now: datetime, terms: fx_rates.Terms, context: AuditContext
) -> Ran:
    """Issue the invoice of `run_on`, in the caller's transaction: a copy of the template's lines dated `run_on`,
    due after the customer's payment terms, at `run_on`'s exchange rate, numbered and started on its way (its
    workflow through the outbox of the template's approval: the template was approved once, its runs go straight
    out). At most one invoice per date however often a run repeats (the recurring invoice's row lock orders them;
    the unique (recurring_id, recurring_run_on) backs it). Nothing when the recurring invoice is not active (or the
    date is before its start); the run that reaches `count` ends it."""
    row = await recurring.recurring(sql, recurring_id, lock=True)
    if row.status != ACTIVE or run_on < row.starts_on:
        return Ran(row)
    made = await invoices.run_invoice(sql, row.id, run_on)
    if made is not None:
        return Ran(row, made)
    template = await invoices.invoice(sql, row.template_id)
    if template.status != issuing.APPROVED or template.approval_request_id is None:
        # Voided by hand after its approval: nothing to copy any more (cancel the recurring invoice).
        log.warning("recurring invoice %s: its template %s is %s, no invoice made", row.id, template.id,
                    template.status)  # fmt: skip
        return Ran(row)
    customer = await invoices.customer(sql, template.customer_id)
    fx = await fx_rates.lock(sql, template.currency, template.total, run_on, terms)
    fields = {
        "customer_id": template.customer_id, "owner_id": template.owner_id, "currency": template.currency,
        "issue_date": run_on, "due_date": run_on + timedelta(days=customer.payment_terms_days),
        "notes": template.notes, "subtotal": template.subtotal, "tax_total": template.tax_total,
        "total": template.total, "recurring_id": row.id, "recurring_run_on": run_on,
        **issuing.locked_rate_fields(fx),
    }  # fmt: skip
    invoice = await invoices.insert_invoice(sql, fields)
    lines = (await invoices.lines_of(sql, [template.id])).get(template.id, [])
    await invoices.insert_lines(sql, invoice.id, [
        NewLine(line.position, line.kind, line.description, line.quantity, line.unit_price, line.tax_rate,
                line.net, line.tax)
        for line in lines
    ])  # fmt: skip
    runs = row.runs + 1
    ended = row.count is not None and runs >= row.count
    updated = await recurring.update(sql, row.id, {"runs": runs, **({"status": ENDED} if ended else {})})
    # The number and the audit rows last: the numbering's and the audit chain's locks are held to the commit.
    issued = await issuing.issue(sql, invoice, template.approval_request_id, now, context)
    changes: dict[str, object] = {"run_on": run_on.isoformat(), "invoice_id": issued.id, "number": issued.number,
                                  "runs": [row.runs, runs]}  # fmt: skip
    if ended:
        changes["status"] = [ACTIVE, ENDED]
    await record(sql, context, "recurring_invoice.ran", RESOURCE, row.id, changes)
    return Ran(updated, issued, True, template.approval_request_id)
