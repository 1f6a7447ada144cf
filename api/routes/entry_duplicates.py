"""`/expenses/{id}/duplicates/{duplicate_id}/dismiss`: an approver (or an accountant or admin) clears a possible
duplicate that the check at submit marked, giving the reason; the requester may not. The list itself is part of the
expense (`GET /expenses/{id}`) and of its approval request (`GET /approvals/{id}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep
from domain.duplicates import dismissal
from domain.duplicates.schemas import PossibleDuplicate
from domain.entries.schemas import DismissDuplicateBody

router = APIRouter(prefix="/expenses", tags=["expenses"])

Decide = Annotated[Grant, Depends(Authorize("approval", "decide"))]


@router.post(
    "/{entry_id:int}/duplicates/{duplicate_id:int}/dismiss",
    summary="Dismiss a possible duplicate, with a reason (approvers, accountants, admins; not the requester)",
)
async def dismiss(
    entry_id: RowId, duplicate_id: RowId, body: DismissDuplicateBody, tx: TxDep, services: ServicesDep, grant: Decide
) -> PossibleDuplicate:
    """403 for the requester and for anyone who neither decides on the expense nor reads every entry; 404 outside
    one's visibility or for another expense's duplicate; 409 when it was dismissed already."""
    return await dismissal.dismiss(
        tx, services.authorizer, grant.user, entry_id, duplicate_id, body.reason, grant.audit
    )
