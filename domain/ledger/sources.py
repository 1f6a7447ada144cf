"""What a month's journals are made of, read in one go: the approved entries, the invoices issued, voided or charged
a late fee, the payments received and the credit notes issued in it (with their split per tax rate), each with what
its journal carries besides the amounts (the counterparty, the cost center, who approved it and when, the audit row
that approved or issued it).

Read only: these tables belong to the entries, approvals, invoices and audit packages, which write them.

- Cost center: the owner's team, named by its manager's username (the owner's own when they have no manager): the
  manager tree is how this system groups people (a manager's team is their subtree), and a username is stable where
  a name is not. An invoice's, a payment's and a credit note's is the invoice owner's.
- Approved by: the approval trail. For an entry, the audit row that made it approved (the last approval, or the
  submit that an auto-approval rule approved at once: then "auto-approved: <rule>"), its actor's full name, and the
  entry's decision time; that row's hash is the journal's audit hash. For an invoice, the same row of its approval
  (a recurring run's: its template's), and the hash of the `invoice.issued` row. A payment or a credit note is
  approved by whoever recorded it (an accountant's act, audited as `invoice.payment_recorded` / `invoice.credited`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from core.sql import Sql
from domain.ledger import months

AUTO_APPROVED = "auto-approved: "


@dataclass(frozen=True)
class Trail:
    """Who approved (or issued, or recorded) a document and when, and the hash of the audit row that did."""

    by: str = ""
    at: datetime | None = None
    audit_hash: str = ""


@dataclass(frozen=True)
class EntrySource:
    id: int
    kind: str  # expense or revenue
    amount: Decimal
    currency: str
    category: str
    description: str
    entry_date: date
    source: str | None
    vendor: str | None
    fx_rate: Decimal
    base_amount: Decimal
    cost_center: str
    trail: Trail


@dataclass(frozen=True)
class InvoiceLineSource:
    id: int
    position: int
    kind: str  # item or late_fee
    description: str
    net: Decimal
    tax: Decimal
    tax_rate: Decimal
    created_at: datetime
    reminder_step: int | None
    audit_hash: str = ""  # a late fee's `invoice.late_fee_applied` row


@dataclass(frozen=True)
class InvoiceSource:
    id: int
    number: str
    currency: str
    fx_rate: Decimal
    issue_date: date
    voided_at: datetime | None
    customer: str
    cost_center: str
    lines: tuple[InvoiceLineSource, ...]
    issued: Trail
    voided: Trail


@dataclass(frozen=True)
class PaymentSource:
    id: int
    invoice_id: int
    invoice_number: str
    currency: str
    amount: Decimal
    paid_on: date
    reference: str
    fx_rate: Decimal  # the payment's own
    base_amount: Decimal  # at the payment's rate
    booked_base: Decimal  # at the invoice's locked rate
    locked_rate: Decimal
    customer: str
    cost_center: str
    trail: Trail


@dataclass(frozen=True)
class CreditNotePart:
    """A credit note's amount at one tax rate of its invoice (`credit_note_taxes`): its net and its tax."""

    tax_rate: Decimal
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class CreditNoteSource:
    id: int
    number: str
    invoice_id: int
    invoice_number: str
    currency: str
    amount: Decimal
    locked_rate: Decimal
    reason: str
    created_at: datetime
    customer: str
    cost_center: str
    trail: Trail
    parts: tuple[CreditNotePart, ...]  # by tax rate, adding up to `amount` (migration 0015 checks it at commit)


@dataclass(frozen=True)
class MonthSources:
    entries: list[EntrySource]
    invoices: list[InvoiceSource]
    payments: list[PaymentSource]
    credit_notes: list[CreditNoteSource]


_TEAM = "coalesce(m.username, o.username)"
_OWNER = "JOIN users o ON o.id = {owner} LEFT JOIN users m ON m.id = o.manager_id"
# The audit row that approved a document (its status moved to approved): the last approval, or an auto-approving
# submit. `{resource}`: its audit resource type and id.
_APPROVAL = (
    "LEFT JOIN LATERAL (SELECT a.hash, u.full_name, a.changes->>'auto_approved_by_rule' AS rule "
    "FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id WHERE a.resource_type = '{kind}' "
    "AND a.resource_id = ({id})::text AND a.changes->'status'->>1 = 'approved' "
    "ORDER BY a.id DESC LIMIT 1) {alias} ON true"
)


def _approver(name: str | None, rule: str | None) -> str:
    if rule:
        return (AUTO_APPROVED + rule)[:200]
    return name or ""


_ENTRIES = (
    "SELECT e.id, e.kind, e.amount, e.currency, e.category, e.description, e.entry_date, e.source, e.vendor, "
    f"e.fx_rate, e.base_amount, e.decided_at, {_TEAM}, ap.hash, ap.full_name, ap.rule FROM entries e "
    + _OWNER.format(owner="e.owner_id")
    + " "
    + _APPROVAL.format(kind="entry", id="e.id", alias="ap")
    + " WHERE e.kind IN ('expense', 'revenue') AND e.status = 'approved' AND e.entry_date >= %s AND e.entry_date < %s"
    # Booked by an invoice's payment: its revenue is the invoice's journal, its cash the payment's.
    " AND NOT EXISTS (SELECT 1 FROM invoice_payments p WHERE p.entry_id = e.id) ORDER BY e.entry_date, e.id"
)


async def _entries(sql: Sql, month: date, following: date) -> list[EntrySource]:
    rows = await sql.all(_ENTRIES, (month, following))
    return [
        EntrySource(
            id=row[0], kind=row[1], amount=row[2], currency=row[3], category=row[4], description=row[5],
            entry_date=row[6], source=row[7], vendor=row[8], fx_rate=row[9], base_amount=row[10], cost_center=row[12],
            trail=Trail(_approver(row[14], row[15]), row[11], row[13] or ""),
        )
        for row in rows
    ]  # fmt: skip


# The invoices whose receivable moves in the month: issued in it (by issue date), voided in it, or charged a late
# fee in it. Numbered (issued), never a template.
_INVOICES = (
    "SELECT i.id, i.number, i.currency, i.fx_rate, i.issue_date, i.voided_at, c.name, "
    f"{_TEAM}, i.approved_at, ap.hash, ap.full_name, ap.rule, issued.hash, voided.hash, voided.full_name "
    "FROM invoices i JOIN customers c ON c.id = i.customer_id "
    + _OWNER.format(owner="i.owner_id")
    + " LEFT JOIN recurring_invoices r ON r.id = i.recurring_id "
    + _APPROVAL.format(kind="invoice", id="coalesce(r.template_id, i.id)", alias="ap")
    + " LEFT JOIN LATERAL (SELECT a.hash FROM audit_log a WHERE a.resource_type = 'invoice' "
    "AND a.resource_id = i.id::text AND a.action = 'invoice.issued' ORDER BY a.id DESC LIMIT 1) issued ON true "
    "LEFT JOIN LATERAL (SELECT a.hash, u.full_name FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id "
    "WHERE a.resource_type = 'invoice' AND a.resource_id = i.id::text AND a.action = 'invoice.voided' "
    "ORDER BY a.id DESC LIMIT 1) voided ON true "
    "WHERE i.number IS NOT NULL AND NOT i.is_template AND i.fx_rate IS NOT NULL AND ("
    "(i.issue_date >= %(month)s AND i.issue_date < %(following)s) "
    "OR (i.voided_at >= %(start)s AND i.voided_at < %(end)s) "
    "OR EXISTS (SELECT 1 FROM invoice_lines f WHERE f.invoice_id = i.id AND f.kind = 'late_fee' "
    "AND f.created_at >= %(start)s AND f.created_at < %(end)s)) ORDER BY i.id"
)
_LINES = (
    "SELECT l.invoice_id, l.id, l.position, l.kind, l.description, l.net, l.tax, l.tax_rate, l.created_at, "
    "l.reminder_step FROM invoice_lines l WHERE l.invoice_id = ANY(%s) ORDER BY l.invoice_id, l.position"
)
_FEES = (
    "SELECT DISTINCT ON (a.changes->>'line_id') a.changes->>'line_id', a.hash FROM audit_log a "
    "WHERE a.resource_type = 'invoice' AND a.resource_id = ANY(%s) AND a.action = 'invoice.late_fee_applied' "
    "ORDER BY a.changes->>'line_id', a.id DESC"
)


async def _invoices(sql: Sql, month: date, following: date) -> list[InvoiceSource]:
    bounds = {"month": month, "following": following, "start": months.start(month), "end": months.start(following)}
    rows = await sql.all(_INVOICES, bounds)
    if not rows:
        return []
    ids = [row[0] for row in rows]
    fee_hashes = {str(line_id): str(hash_) for line_id, hash_ in await sql.all(_FEES, ([str(i) for i in ids],))}
    lines: dict[int, list[InvoiceLineSource]] = defaultdict(list)
    rows_of_lines = await sql.all(_LINES, (ids,))
    for invoice_id, line_id, position, kind, description, net, tax, tax_rate, created_at, step in rows_of_lines:
        fee_hash = fee_hashes.get(str(line_id), "")
        line = InvoiceLineSource(line_id, position, kind, description, net, tax, tax_rate, created_at, step, fee_hash)
        lines[invoice_id].append(line)
    return [
        InvoiceSource(
            id=row[0], number=row[1], currency=row[2], fx_rate=row[3], issue_date=row[4], voided_at=row[5],
            customer=row[6], cost_center=row[7], lines=tuple(lines[row[0]]),
            issued=Trail(_approver(row[10], row[11]), row[8], row[12] or ""),
            voided=Trail(row[14] or "", row[5], row[13] or ""),
        )
        for row in rows
    ]  # fmt: skip


_PAYMENTS = (
    "SELECT p.id, p.invoice_id, i.number, i.currency, p.amount, p.paid_on, p.reference, p.fx_rate, p.base_amount, "
    f"p.booked_base, i.fx_rate, c.name, {_TEAM}, u.full_name, p.created_at, a.hash FROM invoice_payments p "
    "JOIN invoices i ON i.id = p.invoice_id JOIN customers c ON c.id = i.customer_id "
    + _OWNER.format(owner="i.owner_id")
    + " JOIN users u ON u.id = p.created_by_id "
    "LEFT JOIN LATERAL (SELECT a.hash FROM audit_log a WHERE a.resource_type = 'invoice' "
    "AND a.resource_id = i.id::text AND a.action = 'invoice.payment_recorded' "
    "AND a.changes->>'payment_id' = p.id::text ORDER BY a.id DESC LIMIT 1) a ON true "
    "WHERE p.paid_on >= %s AND p.paid_on < %s ORDER BY p.paid_on, p.id"
)


async def _payments(sql: Sql, month: date, following: date) -> list[PaymentSource]:
    return [
        PaymentSource(
            id=row[0], invoice_id=row[1], invoice_number=row[2] or "", currency=row[3], amount=row[4],
            paid_on=row[5], reference=row[6], fx_rate=row[7], base_amount=row[8], booked_base=row[9],
            locked_rate=row[10], customer=row[11], cost_center=row[12], trail=Trail(row[13], row[14], row[15] or ""),
        )
        for row in await sql.all(_PAYMENTS, (month, following))
    ]  # fmt: skip


_CREDIT_NOTES = (
    "SELECT n.id, n.number, n.invoice_id, i.number, i.currency, n.amount, i.fx_rate, n.reason, n.created_at, c.name, "
    f"{_TEAM}, u.full_name, a.hash FROM credit_notes n JOIN invoices i ON i.id = n.invoice_id "
    "JOIN customers c ON c.id = i.customer_id "
    + _OWNER.format(owner="i.owner_id")
    + " JOIN users u ON u.id = n.created_by_id "
    "LEFT JOIN LATERAL (SELECT a.hash FROM audit_log a WHERE a.resource_type = 'invoice' "
    "AND a.resource_id = i.id::text AND a.action = 'invoice.credited' "
    "AND a.changes->>'credit_note_id' = n.id::text ORDER BY a.id DESC LIMIT 1) a ON true "
    "WHERE n.created_at >= %s AND n.created_at < %s AND i.fx_rate IS NOT NULL ORDER BY n.created_at, n.id"
)


_CREDIT_NOTE_PARTS = (
    "SELECT t.credit_note_id, t.tax_rate, t.net, t.tax FROM credit_note_taxes t WHERE t.credit_note_id = ANY(%s) "
    "ORDER BY t.credit_note_id, t.tax_rate"
)


async def _credit_notes(sql: Sql, month: date, following: date) -> list[CreditNoteSource]:
    rows = await sql.all(_CREDIT_NOTES, (months.start(month), months.start(following)))
    if not rows:
        return []
    parts: dict[int, list[CreditNotePart]] = defaultdict(list)
    for note_id, tax_rate, net, tax in await sql.all(_CREDIT_NOTE_PARTS, ([row[0] for row in rows],)):
        parts[note_id].append(CreditNotePart(tax_rate, net, tax))
    return [
        CreditNoteSource(
            id=row[0], number=row[1], invoice_id=row[2], invoice_number=row[3] or "", currency=row[4],
            amount=row[5], locked_rate=row[6], reason=row[7], created_at=row[8], customer=row[9],
            cost_center=row[10], trail=Trail(row[11], row[8], row[12] or ""), parts=tuple(parts[row[0]]),
        )
        for row in rows
    ]  # fmt: skip


async def month_sources(sql: Sql, month: date) -> MonthSources:
    following = months.following(month)
    return MonthSources(
        await _entries(sql, month, following),
        await _invoices(sql, month, following),
        await _payments(sql, month, following),
        await _credit_notes(sql, month, following),
    )
