"""Delegation: while a user is away, approvals routed to them go to a delegate for a window of time.

One delegation per user is in force at a time: setting a new one revokes the previous one. The caller
(the HTTP layer) re-routes the steps already waiting on the user by signalling their workflows after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import AuditContext, record
from domain.errors import NotFound, ValidationFailed
from domain.models import ApprovalRequest, ApprovalStep, Delegation, RequestStatus, StepStatus, User
from domain.notifications.service import notify


@dataclass(frozen=True)
class WaitingStep:
    """A step waiting on the delegating user, and the workflow to signal."""

    workflow_id: str
    request_id: int
    step_id: int


async def current(session: AsyncSession, user_id: int, now: datetime) -> Delegation | None:
    """The user's delegation that is in force or still to come (not revoked, not ended)."""
    return await session.scalar(
        select(Delegation)
        .where(Delegation.user_id == user_id, Delegation.revoked_at.is_(None), Delegation.ends > now)
        .order_by(Delegation.id.desc())
        .limit(1)
    )


async def steps_waiting_on(session: AsyncSession, user_id: int) -> list[WaitingStep]:
    rows = await session.execute(
        select(ApprovalRequest.workflow_id, ApprovalRequest.id, ApprovalStep.id)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalStep.request_id)
        .where(
            ApprovalStep.approver_id == user_id,
            ApprovalStep.status == StepStatus.PENDING,
            ApprovalRequest.status == RequestStatus.PENDING,
        )
        .order_by(ApprovalStep.id)
    )
    return [WaitingStep(workflow_id, request_id, step_id) for workflow_id, request_id, step_id in rows.tuples()]


async def _revoke_all(session: AsyncSession, user_id: int, now: datetime) -> list[int]:
    result = await session.execute(
        update(Delegation)
        .where(Delegation.user_id == user_id, Delegation.revoked_at.is_(None), Delegation.ends > now)
        .values(revoked_at=now)
        .returning(Delegation.id)
    )
    return [row[0] for row in result.all()]


async def set_delegation(
    session: AsyncSession,
    user: User,
    delegate_id: int,
    starts: datetime,
    ends: datetime,
    now: datetime,
    context: AuditContext,
) -> tuple[Delegation, list[WaitingStep]]:
    if starts.tzinfo is None or ends.tzinfo is None:
        raise ValidationFailed("starts and ends need a time zone (e.g. 2026-03-01T09:00:00Z)")
    if delegate_id == user.id:
        raise ValidationFailed("you cannot delegate to yourself")
    if ends <= starts:
        raise ValidationFailed("ends must be after starts")
    if ends <= now:
        raise ValidationFailed("ends must be in the future")
    delegate = await session.get(User, delegate_id)
    if delegate is None or not delegate.is_active:
        raise NotFound("delegate not found", id=delegate_id)
    revoked = await _revoke_all(session, user.id, now)
    delegation = Delegation(user_id=user.id, delegate_id=delegate_id, starts=starts, ends=ends)
    session.add(delegation)
    await session.flush()
    await record(
        session,
        context,
        "delegation.set",
        "delegation",
        delegation.id,
        {
            "user_id": user.id,
            "delegate_id": delegate_id,
            "starts": starts.isoformat(),
            "ends": ends.isoformat(),
            "revoked": revoked,
        },
    )
    # The delegate hears of it now, even with nothing waiting yet; re-routed steps are announced one by one.
    await notify(
        session,
        user_id=delegate_id,
        event_type="approval_delegated",
        title=f"{user.full_name} delegated their approvals to you",
        body=f"From {starts.astimezone(UTC):%Y-%m-%d %H:%M} to {ends.astimezone(UTC):%Y-%m-%d %H:%M} UTC, "
        "approvals routed to them come to you.",
        link="/api/v1/approvals/",
        data={"delegation_id": delegation.id, "delegator_id": user.id},
        dedup_key=f"delegation:{delegation.id}:set",
    )
    return delegation, await steps_waiting_on(session, user.id)


async def revoke_delegation(
    session: AsyncSession, user: User, now: datetime, context: AuditContext
) -> list[WaitingStep]:
    revoked = await _revoke_all(session, user.id, now)
    if not revoked:
        raise NotFound("no delegation in force")
    await record(session, context, "delegation.revoked", "delegation", revoked[-1], {"revoked": revoked})
    return await steps_waiting_on(session, user.id)
