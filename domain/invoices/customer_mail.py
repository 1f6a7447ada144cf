"""What an invoice's customer is told, and each message once: every statement on `invoice_emails` (the outbox of
emails to customers) and `invoice_reminders` (the reminder steps that ran), the emails' contents, and their delivery.

An email is written in the transaction that decides it (the invoice sent, a reminder step run) under a key of its
own (`invoice:7`, `reminder:7:2`; a second write of a key is nothing), and sent after that transaction commits by
`deliver_unsent`. The send goes through the mail ledger (domain/mail/delivery.py), whose Message-ID derives from the
key: an activity retried after its commit, or after the mail server took the message but before `sent_at` was
written, sends nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from core.db import Database
from core.sql import Sql, columns
from domain.invoices.document import Seller, amount_text, filename, long_date
from domain.invoices.repository import CustomerRow, InvoiceRow
from domain.mail.delivery import Mailer
from workflows.contracts import EmailJob, EmailResult

log = logging.getLogger(__name__)

INVOICE_TEMPLATE = "invoice_sent"


def invoice_key(invoice_id: int) -> str:
    return f"invoice:{invoice_id}"


def reminder_key(invoice_id: int, step: int) -> str:
    return f"reminder:{invoice_id}:{step}"


def _reminder_step(key: str) -> int | None:
    kind, _, rest = key.partition(":")
    return int(rest.rpartition(":")[2]) if kind == "reminder" else None


# --- invoice_emails ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailRow:
    id: int
    invoice_id: int
    key: str
    recipient: str
    message: dict[str, Any]
    sent_at: datetime | None
    created_at: datetime


EMAIL = columns(EmailRow)


async def add_email(sql: Sql, invoice_id: int, job: EmailJob) -> bool:
    """The email, to send once this transaction commits; False when its key was written before."""
    written = await sql.scalar(
        "INSERT INTO invoice_emails (invoice_id, key, recipient, message) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (key) DO NOTHING RETURNING id",
        (invoice_id, job.message_key, ", ".join(job.to_addresses), Jsonb(job.model_dump(mode="json"))),
    )
    return written is not None


async def unsent_emails(sql: Sql, invoice_id: int) -> list[EmailRow]:
    rows = await sql.all(
        f"SELECT {EMAIL} FROM invoice_emails WHERE invoice_id = %s AND sent_at IS NULL ORDER BY id", (invoice_id,)
    )
    return [EmailRow(*row) for row in rows]


async def emails_of(sql: Sql, invoice_id: int) -> list[EmailRow]:
    rows = await sql.all(f"SELECT {EMAIL} FROM invoice_emails WHERE invoice_id = %s ORDER BY id", (invoice_id,))
    return [EmailRow(*row) for row in rows]


async def _email_sent(sql: Sql, email: EmailRow, at: datetime) -> None:
    await sql.run("UPDATE invoice_emails SET sent_at = %s WHERE id = %s AND sent_at IS NULL", (at, email.id))
    step = _reminder_step(email.key)
    if step is not None:  # a reminder's row says when its email went out
        await sql.run(
            "UPDATE invoice_reminders SET emailed_at = %s WHERE invoice_id = %s AND step = %s AND emailed_at IS NULL",
            (at, email.invoice_id, step),
        )


# --- invoice_reminders ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderRow:
    invoice_id: int
    step: int
    template: str
    fee_line_id: int | None
    emailed_at: datetime | None
    created_at: datetime


REMINDER = columns(ReminderRow)


async def reminder(sql: Sql, invoice_id: int, step: int) -> ReminderRow | None:
    return await sql.row(
        ReminderRow, f"SELECT {REMINDER} FROM invoice_reminders WHERE invoice_id = %s AND step = %s", (invoice_id, step)
    )


async def reminders_of(sql: Sql, invoice_id: int) -> list[ReminderRow]:
    rows = await sql.all(f"SELECT {REMINDER} FROM invoice_reminders WHERE invoice_id = %s ORDER BY step", (invoice_id,))
    return [ReminderRow(*row) for row in rows]


async def add_reminder(sql: Sql, invoice_id: int, step: int, template: str, fee_line_id: int | None) -> None:
    """The step ran (the caller holds the invoice's lock and found no row for it: the primary key is the backstop)."""
    await sql.run(
        "INSERT INTO invoice_reminders (invoice_id, step, template, fee_line_id) VALUES (%s, %s, %s, %s)",
        (invoice_id, step, template, fee_line_id),
    )


# --- contents ---------------------------------------------------------------------------------------------------


def email_job(
    key: str,
    template: str,
    invoice: InvoiceRow,
    customer: CustomerRow,
    seller: Seller,
    on: date,
    late_fee: Decimal | None = None,
) -> EmailJob:
    """An email to the customer's billing address about `invoice` as it stands `on` that day, its PDF attached."""
    currency = invoice.currency
    settled = invoice.amount_paid + invoice.amount_credited
    context: dict[str, object] = {
        "title": f"Invoice {invoice.number}",
        "app_name": seller.name,  # the customer hears from the seller, not from this application
        "customer_name": customer.name,
        "seller_name": seller.name,
        "seller_email": seller.email,
        "payment_details": "\n".join(seller.payment_details),
        "number": invoice.number,
        "payment_reference": invoice.number,
        "issue_date": long_date(invoice.issue_date),
        "due_date": long_date(invoice.due_date),
        "currency": currency,
        "total": amount_text(invoice.total, currency),
        "paid_or_credited": amount_text(settled, currency) if settled else "",
        "balance_due": amount_text(invoice.balance_due, currency),
        "days_overdue": max((on - invoice.due_date).days, 0),
        "late_fee": amount_text(late_fee, currency) if late_fee else "",
    }
    return EmailJob(
        message_key=key,
        template=template,
        to_addresses=[customer.billing_email],
        context=context,
        attachment_storage_key=invoice.pdf_key,
        attachment_filename=filename(invoice) if invoice.pdf_key else None,
    )


# --- delivery ---------------------------------------------------------------------------------------------------


async def deliver_unsent(db: Database, mailer: Mailer, invoice_id: int) -> list[str]:
    """Send the invoice's emails not sent yet, in the order they were written; the keys sent (or found sent by the
    ledger) now. A temporary failure raises (the caller's retry goes on from there); an address the mail server
    refuses for good stays unsent, logged."""
    async with db.transaction(autocommit=True) as tx:
        waiting = await unsent_emails(tx.sql, invoice_id)
    delivered: list[str] = []
    for email in waiting:
        job = EmailJob.model_validate(email.message)
        result = EmailResult()
        async with db.transaction(autocommit=True) as tx:
            recipients = await mailer.recipients(tx.sql, job, result)
        await mailer.deliver(job, recipients, result)
        if not (result.sent or result.already_sent):
            log.warning("invoice %s: email %s not sent: %s", invoice_id, email.key, result.skipped)
            continue
        async with db.transaction() as tx:
            await _email_sent(tx.sql, email, datetime.now(UTC))
        delivered.append(email.key)
    return delivered
