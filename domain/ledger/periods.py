"""Monthly periods: closing one freezes its journals and locks the entries dated in it; reopening (admins only)
unlocks them, and the next close freezes a new closing.

The lock itself is the database's, with SQLSTATE LC409, whoever writes:
- entries (migration 0014): triggers on `entries` and `approval_steps` refuse to create, change, submit or decide an
  entry dated in a closed month. Which changes: any INSERT; any UPDATE when the old or the new entry date is in a
  closed month and any column but the row's upkeep (`updated_at`, `version`) changes (a write that changes nothing
  passes); a step's decision (approved, rejected, returned for changes) on an entry's request. Deleting a draft stays
  possible: a draft is in no journal.
- invoices (migration 0015), by the days journals.py books them by: numbering (issuing) an invoice dated in a closed
  month, whether its approval, an approval rule at submit or a recurring run numbers it; charging a late fee in one
  (the UTC day of its line); voiding an invoice in one (the UTC day of the void); changing a numbered invoice's
  booked fields or lines, or deleting it, while any month its journals (or its payments' and credit notes') are in is
  closed; recording, changing or deleting a payment dated in one (its revenue entry is refused first, by 0014's
  trigger); issuing, changing or deleting a credit note, or its split, on a day of one. An invoice's settlement
  (status, amounts paid and credited) is in no journal and moves freely, so a payment in an open month on an invoice
  issued in a closed one goes through. Drafts, templates and invoices never numbered stay free.
The API answers LC409 with 409 "the period YYYY-MM is closed" (api/errors.py, every route); the approval activities
turn it into a refusal the workflow does not retry (activities/approvals.py), so a decision sent straight to the
workflow is refused the same way, and so do the reminder (late fee) and recurring-run activities
(activities/invoices.py, activities/recurring_invoices.py): their step or run fails for good, with the message.

A close and the writes of its month are ordered by the month's advisory lock (every trigger above takes it shared,
through `period_closed(day)`, before it reads the month's status; the close takes it alone, before it reads
anything): the close waits for the writes under way, then counts what waits on a decision (409 while an entry dated
in the month is pending or returned for changes, or an invoice dated in it waits on approval) and reads the journals
with what they committed, and the writes after it find the month closed. A timestamped write (a credit note, a
late fee, a void) is checked against the very instant its journal is dated by (its `created_at` or `voided_at`, in
UTC), so one begun on the month's last day and still under way when the month is closed is counted by the close or
refused, never lost between the two. The close
then writes the month's journals (books.freeze) as closing `closings + 1`, in the same transaction, and its audit
row with the totals. Reopening leaves the frozen rows where they are: exports of that closing stay reproducible.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import psycopg
from sqlalchemy.exc import DBAPIError

from core.db import Tx
from domain.audit.service import AuditContext, record
from domain.errors import InvalidState
from domain.ledger import books, months
from domain.ledger import repository as ledger
from domain.ledger.books import LedgerTerms
from domain.ledger.repository import PeriodRow
from domain.ledger.schemas import ClosedOut, PeriodOut, PeriodPage
from domain.models import User
from domain.money import in_minor_units, plain_str
from domain.pagination import Cursor, Pager

RESOURCE = "period"
CLOSED_PERIOD = "LC409"  # the SQLSTATE the triggers raise (migrations 0014 and 0015)
PERIOD_LOCK = int.from_bytes(b"PRDC", "big")  # the class of the months' advisory locks, as the trigger takes them
_MONTH = re.compile(r"\d{4}-\d{2}")


def closed_period(error: BaseException) -> InvalidState | None:
    """The refusal a closed period's trigger raised, as the 409 it is (None: another database error)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    if not isinstance(cause, psycopg.Error) or cause.sqlstate != CLOSED_PERIOD:
        return None
    message = cause.diag.message_primary or "the period is closed"
    found = _MONTH.search(message)
    return InvalidState(message, reason="period_closed", period=found.group(0) if found else None)


def period_out(row: PeriodRow) -> PeriodOut:
    return PeriodOut(month=months.label(row.month), status=row.status, closings=row.closings,  # type: ignore[arg-type]
                     closed_by_id=row.closed_by_id, closed_at=row.closed_at, reopened_by_id=row.reopened_by_id,
                     reopened_at=row.reopened_at)  # fmt: skip


async def list_periods(tx: Tx, limit: int, offset: int, cursor: Cursor | None = None) -> PeriodPage:
    pager = Pager(limit, offset, cursor)
    keyset = ledger.PERIODS_KEYSET
    rows, total = await ledger.periods_page(tx.sql, pager.fetch, offset, pager.key(keyset))
    page, next_cursor = pager.cut(keyset, rows, lambda row: (row.month,))
    return PeriodPage(
        items=[period_out(row) for row in page],
        total=total,
        limit=limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


async def close(tx: Tx, month: date, user: User, terms: LedgerTerms, context: AuditContext) -> ClosedOut:
    """Close the month: 409 when it is closed already, has not begun, still has entries waiting on a decision or
    on changes (their count), or needs an account the mapping lacks (named)."""
    now = datetime.now(UTC)
    label = months.label(month)
    if month > now.date():
        raise InvalidState(f"the period {label} has not begun", reason="period_not_begun")
    # First, before any row is read: the writes of the month under way finish, and no new one starts, until this
    # transaction ends.
    await ledger.lock_month(tx.sql, PERIOD_LOCK, months.lock_key(month))
    period = await ledger.locked_period(tx.sql, month)
    if period.status == "closed":
        raise InvalidState(f"the period {label} is closed already", reason="period_closed", period=label)
    entries, invoices = await ledger.waiting_on_decisions(tx.sql, month, months.following(month))
    if entries or invoices:
        counted = [f"{n} {word if n == 1 else plural}" for n, word, plural in
                   ((entries, "entry", "entries"), (invoices, "invoice", "invoices")) if n]  # fmt: skip
        raise InvalidState(
            f"the period {label} has {' and '.join(counted)} waiting on a decision or on changes: decide them, or "
            "have them withdrawn, before closing it",
            reason="decisions_pending",
            pending=entries + invoices,
            entries=entries,
            invoices=invoices,
        )
    journals = await books.journals_now(tx.sql, month, terms)
    closing = period.closings + 1
    lines = await books.freeze(tx.sql, month, closing, journals)
    closed = await ledger.close_period(tx.sql, month, closing, user.id, now)
    debit, credit = books.totals(journals)
    by_source = {
        kind: sum(1 for j in journals if j.source_kind == kind) for kind in sorted({j.source_kind for j in journals})
    }
    await record(tx.sql, context, "period.closed", RESOURCE, label, {
        "status": [period.status, "closed"], "closing": closing, "journals": len(journals), "lines": lines,
        "by_source": by_source, "base_currency": terms.base,
        "debit_total": plain_str(in_minor_units(debit, terms.base)),
        "credit_total": plain_str(in_minor_units(credit, terms.base)),
    })  # fmt: skip
    return ClosedOut(period=period_out(closed), closing=closing, journals=len(journals), lines=lines,
                     base_currency=terms.base, debit_total=in_minor_units(debit, terms.base),
                     credit_total=in_minor_units(credit, terms.base))  # fmt: skip


async def reopen(tx: Tx, month: date, user: User, reason: str, context: AuditContext) -> PeriodOut:
    """Reopen a closed month (409 when it is open). Its frozen journals stay; the next close writes a new closing."""
    label = months.label(month)
    period = await ledger.period(tx.sql, month, lock=True)
    if period is None or period.status != "closed":
        raise InvalidState(f"the period {label} is not closed", reason="period_open", period=label)
    reopened = await ledger.reopen_period(tx.sql, month, user.id, datetime.now(UTC))
    await record(tx.sql, context, "period.reopened", RESOURCE, label,
                 {"status": ["closed", "open"], "reason": reason, "closings": period.closings})  # fmt: skip
    return period_out(reopened)
