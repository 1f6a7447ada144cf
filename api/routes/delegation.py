"""`/users/me/delegate`: hand one's approvals to someone else for a window of time.

Storing a delegation re-routes the steps already waiting on you (their workflows are told after commit); steps
opened later go to the delegate while the window is open. The trail says "approved by X on behalf of Y".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.deps import Authorize, Grant, ServicesDep, TxDep
from domain.approvals import delegations
from domain.approvals.commands import Caller
from domain.approvals.schemas import DelegationOut, DelegationSet

router = APIRouter(prefix="/users/me/delegate", tags=["delegation"])

Manage = Annotated[Grant, Depends(Authorize("delegation", "manage"))]


@router.put("", summary="Delegate my approvals to someone for a window of time")
async def set_delegate(body: DelegationSet, tx: TxDep, services: ServicesDep, grant: Manage) -> DelegationOut:
    """Replaces any earlier delegation. Steps already waiting on you move to the delegate now (listed in
    `rerouted`); a workflow the engine could not reach is listed in `reroute_failed` (the delegate may still
    decide; PUT again to notify)."""
    caller = Caller(grant.user, grant.audit)
    return await services.approvals.set_delegation(tx, caller, body.delegate_id, body.starts, body.ends)


@router.get("", summary="My delegation in force (or still to come)")
async def get_delegate(tx: TxDep, grant: Manage) -> DelegationOut:
    delegation, active = await delegations.current(tx.sql, grant.user.id, datetime.now(UTC))
    return DelegationOut.model_validate(delegation).model_copy(update={"active": active})


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="End my delegation; waiting steps come back")
async def delete_delegate(tx: TxDep, services: ServicesDep, grant: Manage) -> None:
    await services.approvals.revoke_delegation(tx, Caller(grant.user, grant.audit))
