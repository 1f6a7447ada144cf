"""`/users/me/delegate`: hand one's approvals to someone else for a window of time.

Storing a delegation re-routes the steps already waiting on you (their workflows are signalled after commit);
steps opened later go to the delegate while the window is open. The trail says "approved by X on behalf of Y".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status

from api.approval_workflows import ApprovalWorkflows, audit_info
from api.deps import Authorize, Grant, ServicesDep, SessionDep
from domain.approvals import delegation as delegations
from domain.approvals.delegation import WaitingStep
from domain.approvals.schemas import DelegationOut, DelegationSet
from domain.errors import NotFound
from domain.models import Delegation
from workflows.contracts import DelegationChange

router = APIRouter(prefix="/users/me/delegate", tags=["delegation"])

Manage = Annotated[Grant, Depends(Authorize("delegation", "manage"))]


def _out(delegation: Delegation, now: datetime) -> DelegationOut:
    out = DelegationOut.model_validate(delegation)
    out.active = delegation.revoked_at is None and delegation.starts <= now < delegation.ends
    return out


async def _reroute(
    workflows: ApprovalWorkflows, waiting: list[WaitingStep], change: DelegationChange
) -> tuple[list[str], list[str]]:
    done: list[str] = []
    failed: list[str] = []
    for step in waiting:
        (done if await workflows.signal_delegation(step.workflow_id, change) else failed).append(step.workflow_id)
    return done, failed


@router.put("", summary="Delegate my approvals to someone for a window of time")
async def set_delegate(body: DelegationSet, session: SessionDep, services: ServicesDep, grant: Manage) -> DelegationOut:
    """Replaces any earlier delegation. Steps already waiting on you move to the delegate now (listed in
    `rerouted`); a workflow the engine could not reach is listed in `reroute_failed` (the delegate may still
    decide; PUT again to notify)."""
    now = datetime.now(UTC)
    delegation, waiting = await delegations.set_delegation(
        session, grant.user, body.delegate_id, body.starts, body.ends, now, grant.audit
    )
    await session.commit()
    change = DelegationChange(
        approver_id=grant.user.id,
        delegate_id=delegation.delegate_id,
        starts=delegation.starts,
        ends=delegation.ends,
        audit=audit_info(grant.audit),
    )
    done, failed = await _reroute(ApprovalWorkflows(services), waiting, change)
    out = _out(delegation, now)
    out.rerouted, out.reroute_failed = done, failed
    return out


@router.get("", summary="My delegation in force (or still to come)")
async def get_delegate(session: SessionDep, grant: Manage) -> DelegationOut:
    now = datetime.now(UTC)
    delegation = await delegations.current(session, grant.user.id, now)
    if delegation is None:
        raise NotFound("no delegation in force")
    return _out(delegation, now)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="End my delegation; waiting steps come back")
async def delete_delegate(session: SessionDep, services: ServicesDep, grant: Manage) -> None:
    waiting = await delegations.revoke_delegation(session, grant.user, datetime.now(UTC), grant.audit)
    await session.commit()
    change = DelegationChange(approver_id=grant.user.id, audit=audit_info(grant.audit))
    await _reroute(ApprovalWorkflows(services), waiting, change)
