"""The receipt rule at submit: an expense whose base amount is above RECEIPT_REQUIRED_ABOVE needs a stored receipt.

Checked where the state changes (domain/approvals/transitions: a first submit and a resubmission), in their
transaction, with the threshold their caller carries in from its settings. It costs one indexed query, and only
for an expense above a threshold that is set.
"""

from __future__ import annotations

from decimal import Decimal

from core.sql import Sql
from domain.attachments import repository as attachments
from domain.attachments.filetypes import ALLOWED
from domain.errors import ValidationFailed
from domain.models.rows import EntryRow
from domain.money import plain_str

EXPENSE = "expense"


async def require_receipt(
    sql: Sql, entry: EntryRow, base_amount: Decimal, threshold: Decimal | None, base_currency: str
) -> None:
    """422 naming the threshold when `entry` needs a receipt it does not have."""
    if threshold is None or entry.kind != EXPENSE or base_amount <= threshold:
        return
    if await attachments.has_stored(sql, entry.id):
        return
    raise ValidationFailed(
        f"a receipt is required for expenses above {plain_str(threshold)} {base_currency} (RECEIPT_REQUIRED_ABOVE); "
        f"this one is {plain_str(base_amount)} {base_currency}: attach one ({ALLOWED}) and submit again",
        field="attachments",
        reason="receipt_required",
        threshold=plain_str(threshold),
        base_amount=plain_str(base_amount),
        base_currency=base_currency,
    )
