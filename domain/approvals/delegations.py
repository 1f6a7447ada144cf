"""Delegation: while a user is away, approvals routed to them go to a delegate for a window of time.

One delegation per user is in force at a time: setting a new one revokes the previous one. The steps already
waiting on the user are returned so the commands can re-route them (by telling their workflows, after commit).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.sql import Sql
from domain.approvals import repository as requests
from domain.approvals.chain import Limits, approve_limit
from domain.approvals.repository import WaitingStep
from domain.audit.service import AuditContext, record
from domain.errors import NotFound, ValidationFailed
from domain.models import User
from domain.models.rows import DelegationRow
from domain.notifications.service import notify
from domain.users.directory import person


async def current(sql: Sql, user_id: int, now: datetime) -> tuple[DelegationRow, bool]:
    """The user's delegation in force or still to come, and whether it is in force now."""
    found = await requests.current_delegation(sql, user_id, now)
    if found is None:
        raise NotFound("no delegation in force")
    return found


# How far a delegation may reach: an absence, not a standing transfer of authority (and a bound on every date).
LONGEST = timedelta(days=366)
EARLIEST = timedelta(days=1)  # a start a little in the past (a clock, a time zone) is taken as now


def _in_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValidationFailed("starts and ends need a time zone (e.g. 2026-03-01T09:00:00Z)", field=name)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:30:00-01:00 is past the last instant Python can hold
        raise ValidationFailed(f"{name} is out of range", field=name) from None


async def set_delegation(
    sql: Sql,
    user: User,
    delegate_id: int,
    starts: datetime,
    ends: datetime,
    now: datetime,
    context: AuditContext,
    limits: Limits,
) -> tuple[DelegationRow, list[WaitingStep]]:
    """Store the delegation (revoking the one before). The delegate must be able to approve at all under `limits`
    (the policy in force): handing approvals to someone who may approve nothing is refused. Which steps they may take
    is decided step by step (rules.route)."""
    starts, ends = _in_utc(starts, "starts"), _in_utc(ends, "ends")
    if delegate_id == user.id:
        raise ValidationFailed("you cannot delegate to yourself")
    if ends <= starts:
        raise ValidationFailed("ends must be after starts")
    if ends <= now:
        raise ValidationFailed("ends must be in the future")
    if starts < now - EARLIEST or ends > now + LONGEST:
        raise ValidationFailed("a delegation starts today or later and ends within a year", field="ends")
    delegate = await person(sql, delegate_id)
    if delegate is None or not delegate.is_active:
        raise NotFound("delegate not found", id=delegate_id)
    if approve_limit(limits, delegate.role) is None:
        raise ValidationFailed(
            f"{delegate.full_name}'s role ({delegate.role}) may not approve; delegate to someone who may",
            field="delegate_id",
        )
    revoked = await requests.revoke_delegations(sql, user.id, now)
    delegation = await requests.insert_delegation(sql, user.id, delegate_id, starts, ends)
    # The delegate hears of it now, even with nothing waiting yet; re-routed steps are announced one by one.
    await notify(
        sql,
        user_id=delegate_id,
        event_type="approval_delegated",
        title=f"{user.full_name} delegated their approvals to you",
        body=f"From {starts:%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC, approvals routed to them come to you.",
        link="/api/v1/approvals/",
        data={"delegation_id": delegation.id, "delegator_id": user.id},
        dedup_key=f"delegation:{delegation.id}:set",
    )
    await record(
        sql,
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
    return delegation, await requests.steps_waiting_on(sql, user.id)


async def revoke_delegation(sql: Sql, user: User, now: datetime, context: AuditContext) -> list[WaitingStep]:
    revoked = await requests.revoke_delegations(sql, user.id, now)
    if not revoked:
        raise NotFound("no delegation in force")
    await record(sql, context, "delegation.revoked", "delegation", revoked[-1], {"revoked": revoked})
    return await requests.steps_waiting_on(sql, user.id)
