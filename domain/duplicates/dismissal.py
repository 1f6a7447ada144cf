"""Dismissing a possible duplicate of an expense, with a reason (audited).

Who may dismiss: whoever is (or was) an approver of a step of the expense's request, or the delegate of one
(`requests.is_participant`, the one rule of who takes part in a request), and whoever may read every entry (`entry
read_all`: accountants and admins), who review the books after approval. Never the requester, whatever their role:
a warning about one's own claim is not one's own to clear. Someone who may not see the expense at all gets 404.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.authz import Authorizer
from core.db import Tx
from domain.approvals import repository as requests
from domain.audit.service import AuditContext, record
from domain.duplicates import repository
from domain.duplicates.schemas import PossibleDuplicate
from domain.entries import repository as entries
from domain.entries import service as entry_rules
from domain.errors import Forbidden, InvalidState, NotFound
from domain.models import EntryKind, User

READ_ALL = ("entry", "read_all")


async def dismiss(
    tx: Tx,
    authorizer: Authorizer,
    user: User,
    entry_id: int,
    duplicate_id: int,
    reason: str,
    context: AuditContext,
) -> PossibleDuplicate:
    """Dismiss one possible duplicate of the expense: 404 outside one's visibility (or not this expense's), 403 for
    the requester and for anyone who neither decides on it nor reads every entry, 409 when already dismissed."""
    entry = await entries.get(tx.sql, entry_id, EntryKind.EXPENSE.value)
    if entry is None:
        raise NotFound("expense entry not found", id=entry_id)
    await entry_rules.check_visible(tx, authorizer, user, entry)
    if entry.owner_id == user.id:
        raise Forbidden("the requester may not dismiss a possible duplicate of their own expense")
    now = datetime.now(UTC)
    if not authorizer.allows(user.role, *READ_ALL) and not (
        entry.approval_request_id is not None
        and await requests.is_participant(tx.sql, entry.approval_request_id, user.id, now)
    ):
        raise Forbidden("only an approver of this expense (or their delegate), an accountant or an admin may dismiss")
    row = await repository.dismiss(tx.sql, duplicate_id, entry.id, user.id, now, reason)
    if row is None:
        earlier = await repository.one(tx.sql, duplicate_id, entry.id)
        if earlier is None:
            raise NotFound("possible duplicate not found", id=duplicate_id, entry_id=entry.id)
        raise InvalidState(
            "this possible duplicate was dismissed already",
            dismissed_by=earlier.dismissed_by_id,
            dismissed_at=earlier.dismissed_at.isoformat() if earlier.dismissed_at else None,
        )
    duplicate = {"id": row.id, "other_entry_id": row.other_entry_id, "reason": row.reason}
    await record(tx.sql, context, "entry.duplicate_dismissed", "entry", entry.id, {"duplicate": duplicate,
                                                                                   "reason": reason})  # fmt: skip
    return PossibleDuplicate.of(row)
