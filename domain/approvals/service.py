"""Approval requests and their steps: open, decide, remind, escalate, expire, withdraw, re-route.

The Temporal workflow orchestrates; these functions are its transitions. Each one runs in ONE transaction
(an activity's, or the submitting request's), changes the request, its step and its entry together, writes
one audit row and creates the in-app notifications (deduplicated per workflow, event and step). Each is
idempotent: run again after a commit (a retried activity), it changes nothing and answers as the first run did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, exists, func, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from core.authz import Authorizer
from core.db import get_kept, keep, load_kept
from core.settings import ApprovalSettings
from domain.approvals.chain import (
    Candidate,
    Limits,
    Link,
    approval_chain_for,
    auto_approve_rule,
    escalation_target,
)
from domain.audit.service import AuditContext, record
from domain.dashboard.aggregates import entry_status_changed
from domain.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from domain.models import ApprovalRequest, ApprovalStep, Delegation, Entry, RequestStatus, StepStatus, User
from domain.money import money_str
from domain.notifications.service import notify
from domain.users.visibility import manager_chain, visibility_for

FINAL_STATUSES = frozenset(
    {RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.WITHDRAWN, RequestStatus.EXPIRED}
)
OPEN_STATUSES = frozenset({RequestStatus.PENDING, RequestStatus.CHANGES_REQUESTED})
STEP_STATUS_FOR_ACTION = {
    "approve": StepStatus.APPROVED,
    "reject": StepStatus.REJECTED,
    "request_changes": StepStatus.CHANGES_REQUESTED,
}
EVENT_FOR_STATUS = {
    RequestStatus.APPROVED: "entry_approved",
    RequestStatus.REJECTED: "entry_rejected",
    RequestStatus.CHANGES_REQUESTED: "changes_requested",
    RequestStatus.EXPIRED: "entry_expired",
}
GENERIC = "generic"


@dataclass(frozen=True)
class StepTimers:
    reminder_seconds: float
    escalation_seconds: float


@dataclass(frozen=True)
class StepView:
    """The open step as the workflow tracks it (field names match workflows.contracts.StepInfo)."""

    step_id: int
    sequence: int
    round: int
    level: int
    approver_id: int
    approver_role: str
    limit: str | None
    delegate_id: int | None = None
    delegate_starts: datetime | None = None
    delegate_ends: datetime | None = None


@dataclass(frozen=True)
class NoticeView:
    user_id: int
    event_type: str
    title: str
    body: str
    link: str
    key: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class Transition:
    """What a transition committed (field names match workflows.contracts.DecisionOutcome)."""

    request_status: str
    entry_status: str | None
    round: int
    decided_step_id: int | None = None
    next_step: StepView | None = None
    chain: list[Link] = field(default_factory=list)
    changed: bool = True
    notices: list[NoticeView] = field(default_factory=list)
    amount: Decimal | None = None


@dataclass
class Submission:
    """A committed-to-be request: what the workflow starts with."""

    request: ApprovalRequest
    entry: Entry | None
    chain: list[Link]
    first_step: StepView | None
    auto_rule: str | None
    limits: dict[str, dict[str, str | None]]
    # A resubmission of a request whose earlier start was undone: a workflow of that start may still run under
    # the same id (the API could not tell whether it started) and is to be replaced.
    restarted: bool = False


# --- reading ------------------------------------------------------------------------------------------


def subject_id_of(request: ApprovalRequest) -> int:
    return request.entry_id if request.entry_id is not None else request.id


def link_for(request: ApprovalRequest) -> str:
    if request.subject_kind == GENERIC or request.entry_id is None:
        return f"/api/v1/approvals/{request.id}"
    path = "expenses" if request.subject_kind == "expense" else "revenue"
    return f"/api/v1/{path}/{request.entry_id}"


def chain_links(request: ApprovalRequest) -> list[Link]:
    return [
        Link(int(item["level"]), int(item["approver_id"]), item["role"], item.get("limit")) for item in request.chain
    ]


def _chain_json(chain: list[Link]) -> list[dict[str, Any]]:
    return [{"level": k.level, "approver_id": k.approver_id, "role": k.role, "limit": k.limit} for k in chain]


async def get_request(session: AsyncSession, request_id: int, *, lock: bool = False) -> ApprovalRequest:
    statement = select(ApprovalRequest).where(ApprovalRequest.id == request_id)
    if lock:
        statement = statement.with_for_update()
    request = await session.scalar(statement)
    if request is None:
        raise NotFound("approval request not found", id=request_id)
    return request


def pending_step_of(
    request_id: int | ColumnElement[int | None] | InstrumentedAttribute[int | None],
) -> Select[ApprovalStep]:
    """The query of a request's open step (its newest pending one); `request_id` may be a column to correlate to."""
    return (
        select(ApprovalStep)
        .where(ApprovalStep.request_id == request_id, ApprovalStep.status == StepStatus.PENDING)
        .order_by(ApprovalStep.sequence.desc())
        .limit(1)
    )


async def pending_step(session: AsyncSession, request_id: int) -> ApprovalStep | None:
    return await session.scalar(pending_step_of(request_id))


async def steps_of(session: AsyncSession, request_id: int) -> list[ApprovalStep]:
    rows = await session.scalars(
        select(ApprovalStep).where(ApprovalStep.request_id == request_id).order_by(ApprovalStep.sequence)
    )
    return list(rows)


async def active_delegation(session: AsyncSession, user_id: int, at: datetime) -> Delegation | None:
    """The delegation in force for `user_id` at `at` (the newest one, should windows overlap)."""
    return await session.scalar(
        select(Delegation)
        .where(
            Delegation.user_id == user_id,
            Delegation.revoked_at.is_(None),
            Delegation.starts <= at,
            Delegation.ends > at,
        )
        .order_by(Delegation.id.desc())
        .limit(1)
    )


async def acting_for(
    session: AsyncSession, step: ApprovalStep, actor: User, requester_id: int, now: datetime
) -> int | None:
    """Whether `actor` may decide `step`: None when they are its approver, the approver's id when they decide as
    the approver's active delegate. Raises Forbidden otherwise (one's own request included, superadmin too)."""
    if actor.id == requester_id:
        raise Forbidden("nobody decides on their own request")
    if actor.id == step.approver_id:
        return None
    delegation = await active_delegation(session, step.approver_id, now)
    if delegation is not None and delegation.delegate_id == actor.id:
        return step.approver_id
    raise Forbidden("this step waits on another approver")


async def _candidates(session: AsyncSession, user_id: int) -> list[Candidate]:
    return [Candidate(user.id, user.role, user.is_active) for user in await manager_chain(session, user_id)]


def _view(step: ApprovalStep, role: str, limit: str | None, delegation: Delegation | None) -> StepView:
    return StepView(
        step_id=step.id,
        sequence=step.sequence,
        round=step.round,
        level=step.level,
        approver_id=step.approver_id,
        approver_role=role,
        limit=limit,
        delegate_id=step.delegate_id,
        delegate_starts=delegation.starts if delegation else None,
        delegate_ends=delegation.ends if delegation else None,
    )


async def step_view(session: AsyncSession, step: ApprovalStep, limits: Limits, at: datetime) -> StepView:
    approver = await get_kept(session, User, step.approver_id)
    role = approver.role if approver else ""
    delegation = None
    if step.delegate_id is not None:
        delegation = await session.scalar(
            select(Delegation)
            .where(
                Delegation.user_id == step.approver_id,
                Delegation.delegate_id == step.delegate_id,
                Delegation.revoked_at.is_(None),
                Delegation.ends > at,
            )
            .order_by(Delegation.id.desc())
            .limit(1)
        )
    limit = _step_limit(step, limits, role)
    return _view(step, role, limit, delegation)


def _step_limit(step: ApprovalStep, limits: Limits, role: str) -> str | None:
    # The rule pinned on the step ("p, manager, approval_limit, approve, 10000.00") names the limit in force.
    if step.rule and step.rule.count(",") == 4:
        return step.rule.rsplit(",", 1)[1].strip()
    return limits.get(role, {}).get("approve")


# --- the subject (entry or generic request) ----------------------------------------------------------


async def _with_open_step(session: AsyncSession, request_id: int) -> tuple[ApprovalRequest, ApprovalStep | None]:
    """The request and its pending step, with its entry kept for the notices that name it: one read, not three."""
    open_step = aliased(ApprovalStep, pending_step_of(ApprovalRequest.id).lateral("open_step"))
    row = (
        await session.execute(
            select(ApprovalRequest, open_step, Entry)
            .select_from(ApprovalRequest)
            .outerjoin(open_step, true())
            .outerjoin(Entry, Entry.id == ApprovalRequest.entry_id)
            .where(ApprovalRequest.id == request_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("approval request not found", id=request_id)
    request, step, entry = row.tuple()
    keep(session, entry)
    return request, step


async def _step_with_entry(session: AsyncSession, request: ApprovalRequest, step_id: int) -> ApprovalStep | None:
    """A step of the (locked) request, with the request's entry kept, in one read."""
    row = (
        await session.execute(
            select(ApprovalStep, Entry)
            .select_from(ApprovalStep)
            .outerjoin(Entry, Entry.id == literal(request.entry_id, BigInteger))
            .where(ApprovalStep.id == step_id)
        )
    ).one_or_none()
    if row is None:
        return None
    step, entry = row.tuple()
    keep(session, entry)
    return step


async def _entry_of(session: AsyncSession, request: ApprovalRequest) -> Entry | None:
    if request.entry_id is None:
        return None
    return await get_kept(session, Entry, request.entry_id)


def describe(request: ApprovalRequest) -> str:
    amount = f" ({money_str(request.amount)})" if request.amount is not None else ""
    if request.entry_id is None:
        return f"Approval request #{request.id} \u201c{request.title}\u201d{amount}"
    return f"{request.subject_kind.title()} #{request.entry_id} \u201c{request.title}\u201d{amount}"


def _audit_target(request: ApprovalRequest) -> tuple[str, int]:
    if request.entry_id is not None:
        return "entry", request.entry_id
    return "approval_request", request.id


async def _set_status(
    session: AsyncSession, request: ApprovalRequest, entry: Entry | None, status: str, now: datetime
) -> None:
    request.status = status
    if status in FINAL_STATUSES:
        request.decided_at = now
    if entry is not None and entry.status != status:
        old = entry.status
        entry.status = status
        if status in FINAL_STATUSES:
            entry.decided_at = now
        if status == RequestStatus.PENDING:
            entry.submitted_at = now
        await session.flush()
        await entry_status_changed(session, entry, old)
    await session.flush()


async def _keep_people(session: AsyncSession, request: ApprovalRequest, *user_ids: int | None) -> None:
    """The users a transition names or notifies (requester, approver, delegate, decider), read in one query
    rather than one each (a transition's notices and its emails look them up one at a time)."""
    await load_kept(session, User, (request.requester_id, *user_ids))


async def _name(session: AsyncSession, user_id: int | None) -> str:
    user = await get_kept(session, User, user_id) if user_id is not None else None
    return user.full_name if user is not None else ""


async def _email_details(session: AsyncSession, request: ApprovalRequest, **extra: str) -> dict[str, str]:
    """What an approval email shows besides its title and body (templates/emails/*: amount, who submitted ...)."""
    entry = await _entry_of(session, request)
    details = {
        "entry_description": request.title,
        "owner_name": await _name(session, request.requester_id),
        "amount": money_str(request.amount) if request.amount is not None else "",
        "currency": entry.currency if entry is not None else "",
        **extra,
    }
    return {name: value for name, value in details.items() if value}


async def _notice(
    session: AsyncSession,
    request: ApprovalRequest,
    user_id: int,
    event_type: str,
    title: str,
    body: str,
    key: str,
    **details: str,
) -> NoticeView:
    link = link_for(request)
    await notify(
        session,
        user_id=user_id,
        event_type=event_type,
        title=title,
        body=body,
        link=link,
        data={"request_id": request.id, "entry_id": request.entry_id, "workflow_id": request.workflow_id},
        dedup_key=key,
    )
    return NoticeView(
        user_id, event_type, title[:200], body, link, key, await _email_details(session, request, **details)
    )


def _key(request: ApprovalRequest, event: str, *parts: object) -> str:
    return ":".join([request.workflow_id, event, *(str(part) for part in parts)])


async def _announce_step(session: AsyncSession, request: ApprovalRequest, step: ApprovalStep) -> list[NoticeView]:
    """Tell the approver (or their delegate) that a step waits on them."""
    recipient = step.delegate_id or step.approver_id
    on_behalf = " on behalf of your delegator" if step.delegate_id else ""
    return [
        await _notice(
            session,
            request,
            recipient,
            "entry_submitted",
            f"{describe(request)} waits for your approval{on_behalf}",
            f"Round {step.round}, step {step.sequence}. Approve, reject or request changes.",
            _key(request, "entry_submitted", step.round, step.sequence),
        )
    ]


async def _announce_outcome(
    session: AsyncSession, request: ApprovalRequest, comment: str | None, decided_by_id: int | None = None
) -> list[NoticeView]:
    event = EVENT_FOR_STATUS.get(RequestStatus(request.status))
    if event is None:
        return []
    words = {
        RequestStatus.APPROVED: "was approved",
        RequestStatus.REJECTED: "was rejected",
        RequestStatus.CHANGES_REQUESTED: "needs changes",
        RequestStatus.EXPIRED: "expired without a decision",
    }[RequestStatus(request.status)]
    body = comment or ""
    return [
        await _notice(
            session,
            request,
            request.requester_id,
            event,
            f"{describe(request)} {words}",
            body,
            _key(request, event, request.round),
            approver_name=await _name(session, decided_by_id),
            comment=comment or "",
        )
    ]


# --- opening a request ------------------------------------------------------------------------------


def _rule_for(link: Link) -> str:
    return f"p, {link.role}, approval_limit, approve, {link.limit}"


async def _open_step(
    session: AsyncSession,
    request: ApprovalRequest,
    link: Link,
    level: int,
    now: datetime,
    timers: StepTimers,
    *,
    new_request: bool = False,
) -> tuple[ApprovalStep, StepView]:
    last = (
        0
        if new_request  # no step yet: spare the query
        else await session.scalar(select(func.max(ApprovalStep.sequence)).where(ApprovalStep.request_id == request.id))
    )
    delegation = await active_delegation(session, link.approver_id, now)
    if delegation is not None and delegation.delegate_id == request.requester_id:
        delegation = None  # a delegate never decides on their own request: the approver keeps it
    step = ApprovalStep(
        request_id=request.id,
        sequence=(last or 0) + 1,
        round=request.round,
        level=level,
        approver_id=link.approver_id,
        delegate_id=delegation.delegate_id if delegation else None,
        status=StepStatus.PENDING,
        rule=_rule_for(link),
        remind_at=now + timedelta(seconds=timers.reminder_seconds),
        escalate_at=now + timedelta(seconds=timers.escalation_seconds),
    )
    session.add(step)
    await session.flush()
    return step, _view(step, link.role, link.limit, delegation)


async def _new_request_id(session: AsyncSession) -> int:
    from sqlalchemy import text

    return int(await session.scalar(text("SELECT nextval(pg_get_serial_sequence('approval_requests', 'id'))")))


async def open_request(
    session: AsyncSession,
    *,
    subject_kind: str,
    entry: Entry | None,
    requester: User,
    title: str,
    justification: str,
    amount: Decimal | None,
    limits: dict[str, dict[str, str | None]],
    policy_version: str,
    workflow_id_for: Any,
    now: datetime,
    timers: StepTimers,
    context: AuditContext,
) -> Submission:
    """Pin the chain and the policy version, open the first step (or auto-approve), and write the audit row.

    `workflow_id_for(subject_kind, subject_id)` names the workflow. The caller commits, then starts it.
    """
    rule = auto_approve_rule(limits, requester.role, amount)
    chain = [] if rule else approval_chain_for(amount, await _candidates(session, requester.id), limits)
    request = None
    restarted = False
    if entry is not None and entry.approval_request_id is not None:
        # A submission whose workflow never started was undone; the same request (and workflow id) is reused.
        request = await get_request(session, entry.approval_request_id, lock=True)
        request.round += 1
        restarted = True
    if request is None:
        # A generic request is named by its own id, drawn first; an entry's by the entry (the INSERT draws the id).
        request_id = await _new_request_id(session) if entry is None else None
        subject_id = entry.id if entry is not None else request_id
        request = ApprovalRequest(
            id=request_id,
            subject_kind=subject_kind,
            entry_id=entry.id if entry is not None else None,
            requester_id=requester.id,
            workflow_id=workflow_id_for(subject_kind, subject_id),
            round=1,
        )
        session.add(request)
    request.title = title[:200]
    request.justification = justification
    request.amount = amount
    request.policy_version = policy_version
    request.chain = _chain_json(chain)
    request.submitted_at = now
    request.decided_at = None
    request.status = RequestStatus.PENDING
    await session.flush()
    if entry is not None:
        entry.approval_request_id = request.id
        entry.workflow_id = request.workflow_id
        entry.decided_at = None
    await _set_status(session, request, entry, RequestStatus.PENDING, now)
    first_view = None
    if rule:
        await _set_status(session, request, entry, RequestStatus.APPROVED, now)
    else:
        _, first_view = await _open_step(session, request, chain[0], 0, now, timers, new_request=not restarted)
    resource_type, resource_id = _audit_target(request)
    changes: dict[str, Any] = {
        "status": ["draft" if entry is not None else None, request.status],
        "workflow_id": request.workflow_id,
        "policy_version": policy_version,
        "chain": request.chain,
        "round": request.round,
    }
    if rule:
        changes["auto_approved_by_rule"] = rule
    action = "entry.submitted" if entry is not None else "approval_request.created"
    await record(
        session,
        AuditContext(**{**context.__dict__, "workflow_id": request.workflow_id}).with_rule(rule or context.policy_rule),
        action,
        resource_type,
        resource_id,
        changes,
    )
    return Submission(request, entry, chain, first_view, rule, limits, restarted)


async def undo_submission(
    session: AsyncSession, request_id: int, reason: str, context: AuditContext
) -> ApprovalRequest:
    """The workflow could not start: put the entry back to draft (generic requests end withdrawn)."""
    request = await get_request(session, request_id, lock=True)
    if request.status != RequestStatus.PENDING:
        return request
    entry = await _entry_of(session, request)
    for step in await steps_of(session, request.id):
        if step.status == StepStatus.PENDING:
            step.status = StepStatus.WITHDRAWN
    request.status = RequestStatus.WITHDRAWN
    if entry is not None:
        old = entry.status
        entry.status = "draft"
        entry.submitted_at = None
        await session.flush()
        await entry_status_changed(session, entry, old)
    await session.flush()
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        AuditContext(**{**context.__dict__, "workflow_id": request.workflow_id}),
        "entry.submit_undone" if entry is not None else "approval_request.start_failed",
        resource_type,
        resource_id,
        {"status": ["pending", entry.status if entry else request.status], "reason": reason},
    )
    return request


# --- transitions (called from activities) -----------------------------------------------------------


class _Unknown:
    """`_current(open_step=...)` not given: read the pending step."""


async def _current(
    session: AsyncSession,
    request: ApprovalRequest,
    limits: Limits,
    now: datetime,
    *,
    decided_step_id: int | None = None,
    changed: bool = True,
    notices: list[NoticeView] | None = None,
    open_step: ApprovalStep | type[_Unknown] | None = _Unknown,
) -> Transition:
    """The request as it stands now. `open_step`: its pending step, when the caller knows it (spares a query)."""
    entry = await _entry_of(session, request)
    step = await pending_step(session, request.id) if isinstance(open_step, type) else open_step
    return Transition(
        request_status=request.status,
        entry_status=entry.status if entry else None,
        round=request.round,
        decided_step_id=decided_step_id,
        next_step=await step_view(session, step, limits, now) if step else None,
        chain=chain_links(request),
        changed=changed,
        notices=notices or [],
        amount=request.amount,
    )


async def record_decision(
    session: AsyncSession,
    *,
    request_id: int,
    step_id: int,
    action: str,
    actor_id: int,
    acting_for_id: int | None,
    comment: str | None,
    next_link: Link | None,
    limits: Limits,
    now: datetime,
    timers: StepTimers,
    context: AuditContext,
) -> Transition:
    """Close the step with the decision and, in the same transaction, open the next level or end the request."""
    request = await get_request(session, request_id, lock=True)
    step = await _step_with_entry(session, request, step_id)  # after the lock: the step as committed now
    if step is None or step.request_id != request.id:
        raise NotFound("approval step not found", id=step_id)
    target = STEP_STATUS_FOR_ACTION[action]
    if step.status != StepStatus.PENDING:
        if step.status == target and step.decided_by_id == actor_id:
            return await _replayed_decision(session, request, step, limits, now, comment)
        raise InvalidState("this step was already decided", step=step.sequence, status=step.status)
    if request.status != RequestStatus.PENDING:
        raise InvalidState(f"the request is {request.status}")
    entry = await _entry_of(session, request)
    await _keep_people(session, request, actor_id, step.approver_id, next_link.approver_id if next_link else None)
    old_status = request.status
    step.status = target
    step.decided_by_id = actor_id
    step.decided_at = now
    step.comment = comment
    if acting_for_id is not None and step.delegate_id is None:
        step.delegate_id = actor_id
    notices: list[NoticeView] = []
    new_step: ApprovalStep | None = None  # the request's only open step from here on, if any
    if action == "approve" and next_link is not None:
        new_step, _ = await _open_step(session, request, next_link, next_link.level, now, timers)
        notices += await _announce_step(session, request, new_step)
    else:
        new_status = {
            "approve": RequestStatus.APPROVED,
            "reject": RequestStatus.REJECTED,
            "request_changes": RequestStatus.CHANGES_REQUESTED,
        }[action]
        await _set_status(session, request, entry, new_status, now)
        notices += await _announce_outcome(session, request, comment, actor_id)
    await session.flush()
    resource_type, resource_id = _audit_target(request)
    changes: dict[str, Any] = {
        "status": [old_status, request.status],
        "decision": action,
        "step": step.sequence,
        "level": step.level,
        "round": step.round,
        "approver_id": step.approver_id,
    }
    if acting_for_id is not None:
        changes["on_behalf_of"] = acting_for_id
    if comment:
        changes["comment"] = comment
    await record(
        session,
        AuditContext(**{**context.__dict__, "actor_id": actor_id, "workflow_id": request.workflow_id}).with_rule(
            step.rule
        ),
        f"approval.{target}",
        resource_type,
        resource_id,
        changes,
    )
    return await _current(session, request, limits, now, decided_step_id=step.id, notices=notices, open_step=new_step)


async def _replayed_decision(
    session: AsyncSession,
    request: ApprovalRequest,
    step: ApprovalStep,
    limits: Limits,
    now: datetime,
    comment: str | None,
) -> Transition:
    """A retried activity after its first run committed: the same answer, and the same (deduplicated) notices."""
    notices: list[NoticeView] = []
    following = await pending_step(session, request.id)
    if request.status == RequestStatus.PENDING and following is not None and following.sequence > step.sequence:
        notices += await _announce_step(session, request, following)
    elif request.status in EVENT_FOR_STATUS:
        notices += await _announce_outcome(session, request, comment, step.decided_by_id)
    return await _current(session, request, limits, now, decided_step_id=step.id, notices=notices)


async def announce_first_step(session: AsyncSession, request_id: int, limits: Limits, now: datetime) -> Transition:
    """Notify the first approver (run by the workflow once it has started, so a failed start notifies nobody)."""
    request, step = await _with_open_step(session, request_id)
    if step is not None:
        await _keep_people(session, request, step.approver_id, step.delegate_id)
    notices = await _announce_step(session, request, step) if step is not None else []
    return await _current(session, request, limits, now, changed=False, notices=notices, open_step=step)


async def remind_step(
    session: AsyncSession, request_id: int, step_id: int, limits: Limits, now: datetime
) -> Transition:
    request = await get_request(session, request_id, lock=True)
    step = await session.get(ApprovalStep, step_id)
    if step is None or step.status != StepStatus.PENDING or request.status != RequestStatus.PENDING:
        return await _current(session, request, limits, now, changed=False)
    if step.reminded_at is None:
        step.reminded_at = now
        resource_type, resource_id = _audit_target(request)
        await record(
            session,
            AuditContext(workflow_id=request.workflow_id),
            "approval.reminded",
            resource_type,
            resource_id,
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": step.delegate_id},
        )
    recipient = step.delegate_id or step.approver_id
    notices = [
        await _notice(
            session,
            request,
            recipient,
            "approval_reminder",
            f"Reminder: {describe(request)} still waits for your approval",
            f"Waiting since {step.created_at:%Y-%m-%d %H:%M} UTC.",
            _key(request, "approval_reminder", step.round, step.sequence),
        )
    ]
    return await _current(session, request, limits, now, notices=notices)


async def escalate_step(
    session: AsyncSession, request_id: int, step_id: int, limits: Limits, now: datetime, timers: StepTimers
) -> Transition:
    """Move an overdue step to the next approver up the hierarchy (the step's approver's manager with a limit)."""
    request = await get_request(session, request_id, lock=True)
    step = await session.get(ApprovalStep, step_id)
    if step is None or request.status != RequestStatus.PENDING:
        return await _current(session, request, limits, now, changed=False)
    if step.status == StepStatus.ESCALATED:
        following = await pending_step(session, request.id)
        notices = await _announce_escalation(session, request, step, following) if following else []
        return await _current(session, request, limits, now, notices=notices)
    if step.status != StepStatus.PENDING:
        return await _current(session, request, limits, now, changed=False)
    target = escalation_target(await _candidates(session, step.approver_id), limits, request.requester_id)
    if target is None:
        return await _current(session, request, limits, now, changed=False)
    step.status = StepStatus.ESCALATED
    step.decided_at = now
    new_step, _ = await _open_step(session, request, target, step.level, now, timers)
    notices = await _announce_escalation(session, request, step, new_step)
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        AuditContext(workflow_id=request.workflow_id).with_rule(new_step.rule),
        "approval.escalated",
        resource_type,
        resource_id,
        {"step": [step.sequence, new_step.sequence], "approver_id": [step.approver_id, new_step.approver_id]},
    )
    return await _current(session, request, limits, now, notices=notices)


async def _announce_escalation(
    session: AsyncSession, request: ApprovalRequest, old: ApprovalStep, new: ApprovalStep
) -> list[NoticeView]:
    new_recipient = new.delegate_id or new.approver_id
    old_recipient = old.delegate_id or old.approver_id
    title = describe(request)
    names = {
        "escalated_to_name": await _name(session, new_recipient),
        "escalated_from_name": await _name(session, old_recipient),
    }
    return [
        await _notice(
            session,
            request,
            new_recipient,
            "approval_escalated",
            f"{title} was escalated to you",
            "It waited past its deadline on the previous approver.",
            _key(request, "approval_escalated", new.round, new.sequence, "to"),
            **names,
        ),
        await _notice(
            session,
            request,
            old_recipient,
            "approval_escalated",
            f"{title} was escalated to the next approver",
            "It waited past its deadline on you; the next approver up the hierarchy now decides.",
            _key(request, "approval_escalated", new.round, new.sequence, "from"),
            **names,
        ),
    ]


async def expire_request(session: AsyncSession, request_id: int, limits: Limits, now: datetime) -> Transition:
    request = await get_request(session, request_id, lock=True)
    if request.status == RequestStatus.EXPIRED:
        return await _current(session, request, limits, now, notices=await _announce_outcome(session, request, None))
    if request.status not in OPEN_STATUSES:
        return await _current(session, request, limits, now, changed=False)
    entry = await _entry_of(session, request)
    old_status = request.status
    for step in await steps_of(session, request.id):
        if step.status == StepStatus.PENDING:
            step.status = StepStatus.EXPIRED
            step.decided_at = now
    await _set_status(session, request, entry, RequestStatus.EXPIRED, now)
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        AuditContext(workflow_id=request.workflow_id),
        "approval.expired",
        resource_type,
        resource_id,
        {"status": [old_status, RequestStatus.EXPIRED], "round": request.round},
    )
    notices = await _announce_outcome(session, request, None)
    return await _current(session, request, limits, now, notices=notices)


async def withdraw_request(
    session: AsyncSession, request_id: int, actor_id: int, limits: Limits, now: datetime, context: AuditContext
) -> Transition:
    request = await get_request(session, request_id, lock=True)
    if request.requester_id != actor_id:
        raise Forbidden("only the requester may withdraw")
    if request.status == RequestStatus.WITHDRAWN:
        return await _current(session, request, limits, now)
    if request.status not in OPEN_STATUSES:
        raise InvalidState(f"the request is {request.status}; only a pending one can be withdrawn")
    entry = await _entry_of(session, request)
    old_status = request.status
    for step in await steps_of(session, request.id):
        if step.status == StepStatus.PENDING:
            step.status = StepStatus.WITHDRAWN
            step.decided_at = now
    await _set_status(session, request, entry, RequestStatus.WITHDRAWN, now)
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        AuditContext(**{**context.__dict__, "actor_id": actor_id, "workflow_id": request.workflow_id}),
        "entry.withdrawn" if entry is not None else "approval_request.withdrawn",
        resource_type,
        resource_id,
        {"status": [old_status, RequestStatus.WITHDRAWN], "round": request.round},
    )
    return await _current(session, request, limits, now)


async def open_round(
    session: AsyncSession,
    request_id: int,
    round_number: int,
    actor_id: int,
    limits: Limits,
    now: datetime,
    timers: StepTimers,
    context: AuditContext,
) -> Transition:
    """A resubmission after changes: a new round whose chain is recomputed (the amount may have changed) with
    the limits pinned at the first submit."""
    request = await get_request(session, request_id, lock=True)
    if request.requester_id != actor_id:
        raise Forbidden("only the requester may resubmit")
    if request.round >= round_number and request.status == RequestStatus.PENDING:
        step = await pending_step(session, request.id)
        notices = await _announce_step(session, request, step) if step else []
        return await _current(session, request, limits, now, notices=notices)
    if request.status != RequestStatus.CHANGES_REQUESTED:
        raise InvalidState(f"the request is {request.status}; only one returned for changes can be resubmitted")
    entry = await _entry_of(session, request)
    amount = entry.amount if entry is not None else request.amount
    requester = await session.get(User, request.requester_id)
    assert requester is not None
    chain = approval_chain_for(amount, await _candidates(session, requester.id), limits)
    request.round = round_number
    request.amount = amount
    if entry is not None:
        request.title = entry.approval_title[:200]
    request.chain = _chain_json(chain)
    request.submitted_at = now
    await _set_status(session, request, entry, RequestStatus.PENDING, now)
    step, _ = await _open_step(session, request, chain[0], 0, now, timers)
    notices = await _announce_step(session, request, step)
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        AuditContext(**{**context.__dict__, "actor_id": actor_id, "workflow_id": request.workflow_id}),
        "entry.resubmitted" if entry is not None else "approval_request.resubmitted",
        resource_type,
        resource_id,
        {
            "status": [RequestStatus.CHANGES_REQUESTED, RequestStatus.PENDING],
            "round": round_number,
            "chain": request.chain,
            "amount": str(amount) if amount is not None else None,
        },
    )
    return await _current(session, request, limits, now, notices=notices)


async def reroute_step(
    session: AsyncSession,
    request_id: int,
    step_id: int,
    delegate_id: int | None,
    limits: Limits,
    now: datetime,
    context: AuditContext,
) -> Transition:
    """Point an open step at the approver's delegate (or back at the approver when `delegate_id` is None).
    `context` is the request that changed the delegation (its user is the actor of the audit row)."""
    request = await get_request(session, request_id, lock=True)
    step = await session.get(ApprovalStep, step_id)
    if (
        step is None
        or step.status != StepStatus.PENDING
        or request.status != RequestStatus.PENDING
        or delegate_id == request.requester_id
    ):
        return await _current(session, request, limits, now, changed=False)
    notices: list[NoticeView] = []
    if step.delegate_id != delegate_id:
        old = step.delegate_id
        step.delegate_id = delegate_id
        resource_type, resource_id = _audit_target(request)
        await record(
            session,
            AuditContext(**{**context.__dict__, "workflow_id": request.workflow_id}),
            "approval.rerouted",
            resource_type,
            resource_id,
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": [old, delegate_id]},
        )
    if delegate_id is not None:
        approver = await session.get(User, step.approver_id)
        notices.append(
            await _notice(
                session,
                request,
                delegate_id,
                "approval_delegated",
                f"{describe(request)} waits for your approval on behalf of "
                f"{approver.full_name if approver else 'its approver'}",
                "Approvals were delegated to you while the approver is away.",
                _key(request, "approval_delegated", step.round, step.sequence, delegate_id),
                delegator_name=approver.full_name if approver else "",
            )
        )
    return await _current(session, request, limits, now, notices=notices)


# --- inbox ------------------------------------------------------------------------------------------


def _delegated_to(user_id: int, now: datetime) -> Any:
    return exists().where(
        Delegation.user_id == ApprovalStep.approver_id,
        Delegation.delegate_id == user_id,
        Delegation.revoked_at.is_(None),
        Delegation.starts <= now,
        Delegation.ends > now,
    )


async def inbox(
    session: AsyncSession, user_id: int | None, now: datetime, limit: int, offset: int
) -> tuple[list[tuple[ApprovalStep, ApprovalRequest]], int]:
    """Pending steps waiting on `user_id` (as approver or active delegate); every pending step when None."""
    conditions = [ApprovalStep.status == StepStatus.PENDING, ApprovalRequest.status == RequestStatus.PENDING]
    if user_id is not None:
        conditions.append(
            and_(
                ApprovalRequest.requester_id != user_id,
                or_(ApprovalStep.approver_id == user_id, _delegated_to(user_id, now)),
            )
        )
    base = select(ApprovalStep, ApprovalRequest).join(ApprovalRequest, ApprovalRequest.id == ApprovalStep.request_id)
    total = await session.scalar(
        select(func.count())
        .select_from(ApprovalStep)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalStep.request_id)
        .where(*conditions)
    )
    rows = await session.execute(
        base.where(*conditions).order_by(ApprovalStep.created_at, ApprovalStep.id).limit(limit).offset(offset)
    )
    return [(step, request) for step, request in rows.tuples()], int(total or 0)


async def is_participant(session: AsyncSession, request_id: int, user_id: int, now: datetime) -> bool:
    """Whether the user is (or was) an approver or delegate of one of the request's steps."""
    found = await session.scalar(
        select(ApprovalStep.id)
        .where(
            ApprovalStep.request_id == request_id,
            or_(
                ApprovalStep.approver_id == user_id,
                ApprovalStep.delegate_id == user_id,
                ApprovalStep.decided_by_id == user_id,
                and_(ApprovalStep.status == StepStatus.PENDING, _delegated_to(user_id, now)),
            ),
        )
        .limit(1)
    )
    return found is not None


# --- generic requests and reading ---------------------------------------------------------------------


async def create_generic_request(
    session: AsyncSession,
    authorizer: Authorizer,
    settings: ApprovalSettings,
    requester: User,
    title: str,
    amount: Decimal | None,
    justification: str,
    workflow_id_for: Any,
    now: datetime,
    context: AuditContext,
) -> Submission:
    """A request for approval of anything: the same chain, limits and lifecycle as an entry."""
    if amount is not None and amount > settings.max_entry_amount:
        raise ValidationFailed(f"amount must not exceed {settings.max_entry_amount}", field="amount")
    return await open_request(
        session,
        subject_kind=GENERIC,
        entry=None,
        requester=requester,
        title=title,
        justification=justification,
        amount=amount,
        limits=authorizer.limits_snapshot(),
        policy_version=authorizer.version,
        workflow_id_for=workflow_id_for,
        now=now,
        timers=StepTimers(settings.reminder_hours * 3600, settings.escalation_hours * 3600),
        context=context,
    )


async def visible_request(
    session: AsyncSession, authorizer: Authorizer, viewer: User, request_id: int, now: datetime
) -> ApprovalRequest:
    """A request the viewer may see: their own, their team's, one they decide on, or any with `approval read_all`.
    Anything else is 404, so its existence does not leak."""
    request = await session.get(ApprovalRequest, request_id)
    if request is not None:
        if authorizer.allows(viewer.role, "approval", "read_all"):
            return request
        visibility = await visibility_for(session, authorizer, viewer)
        if visibility.can_see(request.requester_id) or await is_participant(session, request.id, viewer.id, now):
            return request
    raise NotFound("approval request not found", id=request_id)
