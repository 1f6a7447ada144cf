"""Customers and invoices as accountants keep them: create, change a draft, read within one's visibility, delete a
draft. Sent invoices are never edited or deleted (409): a correction is a credit note, a mistake before payment is a
void.

Who sees an invoice: whoever may read every invoice (`invoice read_all`: accountants and admins), a manager whose
subtree holds the invoice's owner (the `user read_team` rule), and whoever is asked to decide its approval. Anything
else is 404, so an invoice's existence does not leak. Employees have no invoice rights unless a policy line grants
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.authz import Authorizer
from core.db import Tx
from core.sql import Sql
from domain.approvals import repository as requests
from domain.audit.service import AuditContext, diff, record
from domain.entries.service import parse_if_match
from domain.errors import InvalidState, NotFound, PreconditionFailed, ValidationFailed
from domain.invoices import issuing
from domain.invoices import repository as invoices
from domain.invoices.repository import CustomerRow, InvoiceRow, LineRow, NewLine
from domain.invoices.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerUpdate,
    InvoiceCreate,
    InvoiceOut,
    InvoicePage,
    InvoiceStatus,
    InvoiceUpdate,
    LineIn,
    LineOut,
)
from domain.invoices.totals import LineAmounts, Totals, line_amounts, totals
from domain.models import User
from domain.money import fits, in_minor_units, is_currency, minor_units, plain_str, trimmed
from domain.pagination import Cursor, Keyset, Pager
from domain.users.visibility import Visibility, visibility_for
from workflows.contracts import invoice_workflow_id

RESOURCE = "invoice"
MAX_TOTAL = Decimal(10) ** 14  # what NUMERIC(19, 4) holds, with room for late fees
MAX_QUANTITY = Decimal(10) ** 9


def today() -> date:
    return datetime.now(UTC).date()


# --- customers --------------------------------------------------------------------------------------------------


def _customer_out(row: CustomerRow) -> CustomerOut:
    return CustomerOut(**row.__dict__)


def _check_currency(currency: str) -> None:
    if not is_currency(currency):
        raise ValidationFailed(f"{currency} is not an ISO 4217 currency with minor units", field="currency")


async def create_customer(tx: Tx, user: User, body: CustomerCreate, context: AuditContext) -> CustomerOut:
    _check_currency(body.currency)
    row = await invoices.insert_customer(tx.sql, body.model_dump(), user.id)
    await record(tx.sql, context, "customer.created", "customer", row.id, body.model_dump())
    return _customer_out(row)


async def update_customer(
    tx: Tx, customer_id: int, body: CustomerUpdate, if_match: str | None, context: AuditContext
) -> CustomerOut:
    """A change (If-Match: the version read). Invoices already issued keep what they were issued with (their PDF);
    new ones take the change."""
    customer = await invoices.customer(tx.sql, customer_id, lock=True)
    version = parse_if_match(if_match)
    if version != customer.version:
        raise PreconditionFailed("the customer changed since you read it; read it again",
                                 current_version=customer.version, sent=version)  # fmt: skip
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    if "currency" in fields:
        _check_currency(fields["currency"])
    changed = {name: value for name, value in fields.items() if getattr(customer, name) != value}
    if not changed:
        return _customer_out(customer)
    updated = await invoices.update_customer(tx.sql, customer.id, changed)
    await record(tx.sql, context, "customer.updated", "customer", customer.id,
                 diff({k: getattr(customer, k) for k in changed}, changed))  # fmt: skip
    return _customer_out(updated)


async def get_customer(tx: Tx, customer_id: int) -> CustomerOut:
    return _customer_out(await invoices.customer(tx.sql, customer_id))


async def list_customers(
    tx: Tx, name: str | None, limit: int, offset: int, cursor: Cursor | None = None
) -> CustomerPage:
    pager = Pager(limit, offset, cursor)
    keyset = invoices.CUSTOMERS_KEYSET
    rows, total = await invoices.customers_page(tx.sql, name, pager.fetch, offset, pager.key(keyset))
    page, next_cursor = pager.cut(keyset, rows, lambda row: row[1])
    items = [_customer_out(row) for row, _ in page]
    return CustomerPage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)


# --- lines and totals -------------------------------------------------------------------------------------------


def priced_lines(lines: list[LineIn], currency: str, first_position: int = 1) -> tuple[list[NewLine], Totals]:
    """The lines with their rounded net and tax (domain/invoices/totals.py), and the invoice's totals; 422 when a
    price has more places than the currency or the total is out of bounds."""
    new: list[NewLine] = []
    for index, line in enumerate(lines):
        if not fits(line.unit_price, currency):
            units = minor_units(currency)
            raise ValidationFailed(
                f"{currency} amounts have {units} decimal place{'' if units == 1 else 's'}; "
                f"line {index + 1}'s unit_price {plain_str(line.unit_price)} has more",
                field=f"lines[{index}].unit_price",
            )
        if line.quantity > MAX_QUANTITY or line.unit_price > MAX_TOTAL:
            raise ValidationFailed(f"line {index + 1} is too large", field=f"lines[{index}]")
        amounts = line_amounts(line.quantity, line.unit_price, line.tax_rate, currency)
        new.append(NewLine(first_position + index, "item", line.description, line.quantity, line.unit_price,
                           line.tax_rate, amounts.net, amounts.tax))  # fmt: skip
    result = totals(LineAmounts(line.net, line.tax) for line in new)
    if result.total > MAX_TOTAL:
        raise ValidationFailed(f"an invoice's total must not exceed {MAX_TOTAL}", field="lines")
    if result.total <= 0:
        raise ValidationFailed("an invoice's total must be greater than 0", field="lines")
    return new, result


def totals_fields(result: Totals) -> dict[str, Decimal]:
    return {"subtotal": result.subtotal, "tax_total": result.tax_total, "total": result.total}


# --- reading ----------------------------------------------------------------------------------------------------


async def _visibility(sql: Sql, authorizer: Authorizer, viewer: User) -> Visibility:
    return await visibility_for(sql, authorizer, viewer, RESOURCE)


async def visible_invoice(
    tx: Tx, authorizer: Authorizer, viewer: User, invoice_id: int, *, lock: bool = False
) -> InvoiceRow:
    """An invoice the viewer may see (its owner is in their visibility, or they are asked to decide it); else 404."""
    try:
        invoice = await invoices.invoice(tx.sql, invoice_id, lock=lock)
    except NotFound:
        raise NotFound("invoice not found", id=invoice_id) from None
    if (await _visibility(tx.sql, authorizer, viewer)).can_see(invoice.owner_id):
        return invoice
    if invoice.approval_request_id is not None and await requests.is_participant(
        tx.sql, invoice.approval_request_id, viewer.id, datetime.now(UTC)
    ):
        return invoice
    raise NotFound("invoice not found", id=invoice_id)


def _money(value: Decimal | None, currency: str | None) -> Decimal | None:
    return in_minor_units(value, currency) if value is not None and currency is not None else value


def invoice_out(invoice: InvoiceRow, lines: list[LineRow], customer_name: str, on: date) -> InvoiceOut:
    currency = invoice.currency
    days = issuing.overdue_days(invoice, on)
    shown_lines = [
        LineOut(
            position=line.position, kind=line.kind, description=line.description,  # type: ignore[arg-type]
            quantity=trimmed(line.quantity),
            unit_price=in_minor_units(line.unit_price, currency), tax_rate=trimmed(line.tax_rate),
            net=in_minor_units(line.net, currency), tax=in_minor_units(line.tax, currency),
            reminder_step=line.reminder_step,
        )
        for line in lines
    ]  # fmt: skip
    issued = invoice.number is not None
    return InvoiceOut(
        id=invoice.id, number=invoice.number, status=invoice.status, overdue=days > 0,  # type: ignore[arg-type]
        days_overdue=days, is_template=invoice.is_template, customer_id=invoice.customer_id,
        customer_name=customer_name, owner_id=invoice.owner_id, currency=currency, issue_date=invoice.issue_date,
        due_date=invoice.due_date, notes=invoice.notes, lines=shown_lines,
        subtotal=in_minor_units(invoice.subtotal, currency), tax_total=in_minor_units(invoice.tax_total, currency),
        total=in_minor_units(invoice.total, currency), amount_paid=in_minor_units(invoice.amount_paid, currency),
        amount_credited=in_minor_units(invoice.amount_credited, currency),
        balance_due=in_minor_units(invoice.balance_due, currency), base_currency=invoice.base_currency,
        base_total=_money(invoice.base_total, invoice.base_currency), fx_rate=invoice.fx_rate,
        rate_date=invoice.rate_date, approval_request_id=invoice.approval_request_id,
        workflow_id=invoice_workflow_id(invoice.id) if issued else None, version=invoice.version,
        submitted_at=invoice.submitted_at, approved_at=invoice.approved_at, sent_at=invoice.sent_at,
        paid_at=invoice.paid_at, voided_at=invoice.voided_at, void_reason=invoice.void_reason,
        created_at=invoice.created_at, updated_at=invoice.updated_at,
    )  # fmt: skip


async def present(sql: Sql, rows: list[InvoiceRow]) -> list[InvoiceOut]:
    lines = await invoices.lines_of(sql, [row.id for row in rows])
    names = await invoices.customer_names(sql, [row.customer_id for row in rows])
    on = today()
    return [invoice_out(row, lines.get(row.id, []), names.get(row.customer_id, ""), on) for row in rows]


async def get_invoice(tx: Tx, authorizer: Authorizer, viewer: User, invoice_id: int) -> InvoiceOut:
    return (await present(tx.sql, [await visible_invoice(tx, authorizer, viewer, invoice_id)]))[0]


@dataclass(frozen=True)
class InvoiceFilters:
    status: InvoiceStatus | None = None
    customer_id: int | None = None
    overdue: bool | None = None
    date_from: date | None = None  # the issue date
    date_to: date | None = None
    templates: bool = False
    limit: int = 50
    offset: int = 0


# Newest issue date first. ix_invoices_issue_date (and the owner's and customer's (…, issue_date) indexes) serve
# a cursor's `(issue_date, id) < (%s, %s)` as a range on the date, the id checked on the few rows of that day.
KEYSET = Keyset("invoices", ("i.issue_date", "i.id"), (date, int))


async def list_invoices(
    tx: Tx, authorizer: Authorizer, viewer: User, filters: InvoiceFilters, cursor: Cursor | None = None
) -> InvoicePage:
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ValidationFailed("date_from must not be after date_to")
    pager = Pager(filters.limit, filters.offset, cursor)
    visibility = await _visibility(tx.sql, authorizer, viewer)
    conditions: list[str] = ["i.is_template = %s"]
    params: list[Any] = [filters.templates]
    owners = visibility.owner_list()
    if owners is not None:
        conditions.append("i.owner_id = ANY(%s)")
        params.append(owners)
    if filters.status is not None:
        conditions.append("i.status = %s")
        params.append(filters.status)
    if filters.customer_id is not None:
        conditions.append("i.customer_id = %s")
        params.append(filters.customer_id)
    if filters.overdue is not None:
        overdue = f"(i.status IN {issuing.OPEN!r} AND i.due_date < %s)"
        conditions.append(overdue if filters.overdue else f"NOT {overdue}")
        params.append(today())
    if filters.date_from is not None:
        conditions.append("i.issue_date >= %s")
        params.append(filters.date_from)
    if filters.date_to is not None:
        conditions.append("i.issue_date <= %s")
        params.append(filters.date_to)
    where = " AND ".join(conditions)
    total = int(await tx.sql.scalar(f"SELECT count(*) FROM invoices i WHERE {where}", tuple(params)))
    after = pager.key(KEYSET)
    if after is not None:
        condition, after_params = KEYSET.after_positional(after)
        where, params = f"{where} AND {condition}", [*params, *after_params]
    rows = await tx.sql.all(
        f"SELECT {invoices.INVOICE} FROM invoices i WHERE {where} ORDER BY {KEYSET.order_by()} LIMIT %s OFFSET %s",
        (*params, pager.fetch, filters.offset),
    )
    page, next_cursor = pager.cut(KEYSET, [InvoiceRow(*row) for row in rows], lambda row: (row.issue_date, row.id))
    items = await present(tx.sql, page)
    return InvoicePage(items=items, total=total, limit=filters.limit, offset=pager.page_offset, next_cursor=next_cursor)


# --- writing drafts ---------------------------------------------------------------------------------------------


def _snapshot(invoice: InvoiceRow, lines: list[NewLine] | list[LineRow]) -> dict[str, Any]:
    return {
        "customer_id": invoice.customer_id,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "notes": invoice.notes,
        "total": plain_str(invoice.total),
        "lines": [[line.description, plain_str(line.quantity), plain_str(line.unit_price), plain_str(line.tax_rate)]
                  for line in lines],
    }  # fmt: skip


async def create_draft(
    sql: Sql, owner: User, body: InvoiceCreate, context: AuditContext, *, template: bool = False
) -> InvoiceRow:
    """A new draft (a template, for a recurring invoice), in the customer's currency unless another is given."""
    customer = await invoices.customer(sql, body.customer_id)
    currency = body.currency or customer.currency
    _check_currency(currency)
    lines, result = priced_lines(body.lines, currency)
    due = body.due_date or body.issue_date + timedelta(days=customer.payment_terms_days)
    fields = {
        "customer_id": customer.id, "owner_id": owner.id, "is_template": template, "currency": currency,
        "issue_date": body.issue_date, "due_date": due, "notes": body.notes, **totals_fields(result),
    }  # fmt: skip
    invoice = await invoices.insert_invoice(sql, fields)
    await invoices.insert_lines(sql, invoice.id, lines)
    await record(sql, context, "invoice.created", RESOURCE, invoice.id, _snapshot(invoice, lines))
    return invoice


async def create_invoice(tx: Tx, user: User, body: InvoiceCreate, context: AuditContext) -> InvoiceOut:
    return (await present(tx.sql, [await create_draft(tx.sql, user, body, context)]))[0]


def check_draft(invoice: InvoiceRow, verb: str) -> None:
    if invoice.status != issuing.DRAFT:
        raise InvalidState(
            f"only a draft invoice can be {verb}; this one is {invoice.status} (a sent invoice is corrected by a "
            "credit note, never edited or deleted)",
            status=invoice.status,
        )


async def update_invoice(
    tx: Tx,
    authorizer: Authorizer,
    user: User,
    invoice_id: int,
    body: InvoiceUpdate,
    if_match: str | None,
    context: AuditContext,
) -> InvoiceOut:
    invoice = await visible_invoice(tx, authorizer, user, invoice_id, lock=True)
    version = parse_if_match(if_match)
    check_draft(invoice, "edited")
    if version != invoice.version:
        raise PreconditionFailed("the invoice changed since you read it; read it again",
                                 current_version=invoice.version, sent=version)  # fmt: skip
    old_lines = (await invoices.lines_of(tx.sql, [invoice.id])).get(invoice.id, [])
    fields: dict[str, Any] = {}
    customer = await invoices.customer(tx.sql, body.customer_id or invoice.customer_id)
    for name in ("customer_id", "currency", "issue_date", "notes"):
        if name in body.model_fields_set:
            fields[name] = getattr(body, name)
    currency = fields.get("currency", invoice.currency)
    _check_currency(currency)
    issue_date = fields.get("issue_date", invoice.issue_date)
    if body.due_date is not None:
        fields["due_date"] = body.due_date
    elif {"due_date", "issue_date", "customer_id"} & body.model_fields_set:
        # A new issue date or customer (or a due date sent as null) moves the due date to the customer's terms.
        fields["due_date"] = issue_date + timedelta(days=customer.payment_terms_days)
    if fields.get("due_date", invoice.due_date) < issue_date:
        raise ValidationFailed("due_date must not be before issue_date", field="due_date")
    new_lines: list[NewLine] | None = None
    if body.lines is not None or "currency" in fields:
        source = body.lines if body.lines is not None else [_as_line_in(line) for line in old_lines]
        new_lines, result = priced_lines(source, currency)
        fields |= totals_fields(result)
    updated = await invoices.update_invoice(tx.sql, invoice.id, fields, bump=True)
    if new_lines is not None:
        await invoices.delete_lines(tx.sql, invoice.id)
        await invoices.insert_lines(tx.sql, invoice.id, new_lines)
    changes = diff(_snapshot(invoice, old_lines), _snapshot(updated, new_lines if new_lines is not None else old_lines))
    await record(tx.sql, context, "invoice.updated", RESOURCE, invoice.id, changes)
    return (await present(tx.sql, [updated]))[0]


def _as_line_in(line: LineRow) -> LineIn:
    return LineIn(description=line.description, quantity=line.quantity, unit_price=line.unit_price,
                  tax_rate=line.tax_rate)  # fmt: skip


async def delete_invoice(tx: Tx, authorizer: Authorizer, user: User, invoice_id: int, context: AuditContext) -> None:
    invoice = await visible_invoice(tx, authorizer, user, invoice_id, lock=True)
    check_draft(invoice, "deleted")
    if invoice.approval_request_id is not None:
        raise InvalidState("this draft has been through approval: void it instead, so its trail stays")
    if invoice.is_template:
        raise InvalidState("a recurring invoice's template is cancelled with its recurring invoice")
    lines = (await invoices.lines_of(tx.sql, [invoice.id])).get(invoice.id, [])
    await invoices.delete_invoice(tx.sql, invoice.id)
    await record(tx.sql, context, "invoice.deleted", RESOURCE, invoice.id, diff(_snapshot(invoice, lines), {}))
