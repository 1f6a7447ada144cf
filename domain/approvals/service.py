"""Approval requests and their steps: open, decide, remind, escalate, expire, withdraw, re-route.

The Temporal workflow orchestrates; these functions are its transitions. Each one runs in ONE transaction
(an activity's, or the submitting request's), changes the request, its step and its entry together, writes
one audit row and creates the in-app notifications (deduplicated per workflow, event and step). Each is
idempotent: run again after a commit (a retried activity), it changes nothing and answers as the first run did.

They read and write with SQL (domain/approvals/store.py) and work on rows, not ORM objects: this is the path every
approval takes, several times (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from core.authz import Authorizer
from core.settings import ApprovalSettings
from core.sql import Db, Sql, sql_of, width
from domain.approvals import store
from domain.approvals.chain import (
    Candidate,
    Limits,
    Link,
    approval_chain_for,
    auto_approve_rule,
    escalation_target,
)
from domain.approvals.notices import GENERIC, NoticeView, Notifier
from domain.approvals.store import Opening, People
from domain.audit.service import AuditContext, record
from domain.dashboard.aggregates import entry_status_changed
from domain.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from domain.models import RequestStatus, StepStatus, User
from domain.models.rows import DelegationRow, EntryRow, RequestRow, StepRow
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
_REQUEST_STATUS_FOR_ACTION = {
    "approve": RequestStatus.APPROVED,
    "reject": RequestStatus.REJECTED,
    "request_changes": RequestStatus.CHANGES_REQUESTED,
}


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

    request: RequestRow
    entry: EntryRow | None
    chain: list[Link]
    first_step: StepView | None
    auto_rule: str | None
    limits: dict[str, dict[str, str | None]]
    # A resubmission of a request whose earlier start was undone: a workflow of that start may still run under
    # the same id (the API could not tell whether it started) and is to be replaced.
    restarted: bool = False


# --- reading ------------------------------------------------------------------------------------------


def subject_id_of(request: RequestRow) -> int:
    return request.entry_id if request.entry_id is not None else request.id


def chain_links(request: RequestRow) -> list[Link]:
    return [
        Link(int(item["level"]), int(item["approver_id"]), item["role"], item.get("limit")) for item in request.chain
    ]


def _chain_json(chain: list[Link]) -> list[dict[str, Any]]:
    return [{"level": k.level, "approver_id": k.approver_id, "role": k.role, "limit": k.limit} for k in chain]


async def get_request(session: Db, request_id: int, *, lock: bool = False) -> RequestRow:
    return await store.request(await sql_of(session), request_id, lock=lock)


async def pending_step(session: Db, request_id: int) -> StepRow | None:
    return await store.pending_step(await sql_of(session), request_id)


async def steps_of(session: Db, request_id: int) -> list[StepRow]:
    return await store.steps_of(await sql_of(session), request_id)


async def acting_for(session: Db, step: StepRow, actor: User, requester_id: int, now: datetime) -> int | None:
    """Whether `actor` may decide `step`: None when they are its approver, the approver's id when they decide as
    the approver's active delegate. Raises Forbidden otherwise (one's own request included, superadmin too)."""
    if actor.id == requester_id:
        raise Forbidden("nobody decides on their own request")
    if actor.id == step.approver_id:
        return None
    delegation = await store.active_delegation(await sql_of(session), step.approver_id, now)
    if delegation is not None and delegation.delegate_id == actor.id:
        return step.approver_id
    raise Forbidden("this step waits on another approver")


async def _candidates(session: Db, user_id: int) -> list[Candidate]:
    return [Candidate(manager.id, manager.role, manager.is_active) for manager in await manager_chain(session, user_id)]


def _view(step: StepRow, role: str, limit: str | None, delegation: DelegationRow | None) -> StepView:
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


async def _step_view(sql: Sql, people: People, step: StepRow, limits: Limits, at: datetime) -> StepView:
    role = await people.role(step.approver_id)
    delegation = None
    if step.delegate_id is not None:
        delegation = await store.delegation_to(sql, step.approver_id, step.delegate_id, at)
    return _view(step, role, _step_limit(step, limits, role), delegation)


def _step_limit(step: StepRow, limits: Limits, role: str) -> str | None:
    # The rule pinned on the step ("p, manager, approval_limit, approve, 10000.00") names the limit in force.
    if step.rule and step.rule.count(",") == 4:
        return step.rule.rsplit(",", 1)[1].strip()
    return limits.get(role, {}).get("approve")


def _audit_target(request: RequestRow) -> tuple[str, int]:
    if request.entry_id is not None:
        return "entry", request.entry_id
    return "approval_request", request.id


def _acting(context: AuditContext, request: RequestRow, actor_id: int | None = None) -> AuditContext:
    """The audit context of a change to `request` (by `actor_id`, when given)."""
    changes: dict[str, Any] = {"workflow_id": request.workflow_id}
    if actor_id is not None:
        changes["actor_id"] = actor_id
    return AuditContext(**{**context.__dict__, **changes})


# --- one transition's work ------------------------------------------------------------------------------


@dataclass
class _Work:
    """A transition of one request in one transaction: the request as it now stands, its entry and the people named."""

    session: Db
    sql: Sql
    request: RequestRow
    entry: EntryRow | None
    people: People
    limits: Limits
    now: datetime

    @classmethod
    async def of(cls, session: Db, request: RequestRow, entry: EntryRow | None, limits: Limits, now: datetime) -> _Work:
        sql = await sql_of(session)
        return cls(session, sql, request, entry, People(sql), limits, now)

    @property
    def notifier(self) -> Notifier:
        return Notifier(self.session, self.request, self.entry, self.people)

    async def load_entry(self) -> None:
        if self.entry is None and self.request.entry_id is not None:
            self.entry = await _entry(self.sql, self.request.entry_id)

    async def set_status(self, status: str) -> None:
        """The request's and its entry's new status (dashboard totals follow the entry)."""
        decided_at = self.now if status in FINAL_STATUSES else None
        self.request = await store.set_request_status(self.sql, self.request.id, status, decided_at)
        await self.load_entry()
        entry = self.entry
        if entry is not None and entry.status != status:
            submitted_at = self.now if status == RequestStatus.PENDING else None
            self.entry = await store.set_entry_status(
                self.sql, entry.id, status, decided_at=decided_at, submitted_at=submitted_at
            )
            await entry_status_changed(self.session, self.entry, entry.status)

    async def open_step(
        self, link: Link, level: int, timers: StepTimers, *, first: bool = False
    ) -> tuple[StepRow, DelegationRow | None]:
        """A new pending step for `link`, and the delegation in force for its approver (their delegate then decides
        in their stead)."""
        request = self.request
        last = 0 if first else await store.last_sequence(self.sql, request.id)  # a new request has no step yet
        delegation = await store.active_delegation(self.sql, link.approver_id, self.now)
        if delegation is not None and delegation.delegate_id == request.requester_id:
            delegation = None  # a delegate never decides on their own request: the approver keeps it
        step = await store.insert_step(
            self.sql,
            request_id=request.id,
            sequence=last + 1,
            round_number=request.round,
            level=level,
            approver_id=link.approver_id,
            delegate_id=delegation.delegate_id if delegation else None,
            rule=_rule_for(link),
            remind_at=self.now + timedelta(seconds=timers.reminder_seconds),
            escalate_at=self.now + timedelta(seconds=timers.escalation_seconds),
        )
        return step, delegation

    async def audit(self, context: AuditContext, action: str, changes: dict[str, Any]) -> None:
        resource_type, resource_id = _audit_target(self.request)
        await record(self.session, context, action, resource_type, resource_id, changes)

    async def current(
        self,
        *,
        decided_step_id: int | None = None,
        changed: bool = True,
        notices: list[NoticeView] | None = None,
        open_step: StepRow | type[_Unknown] | None = None,
    ) -> Transition:
        """The request as it stands now. `open_step`: its pending step (`_Unknown`: read it)."""
        await self.load_entry()
        step = await store.pending_step(self.sql, self.request.id) if open_step is _Unknown else open_step
        assert not isinstance(step, type)
        request = self.request
        return Transition(
            request_status=request.status,
            entry_status=self.entry.status if self.entry else None,
            round=request.round,
            decided_step_id=decided_step_id,
            next_step=await _step_view(self.sql, self.people, step, self.limits, self.now) if step else None,
            chain=chain_links(request),
            changed=changed,
            notices=notices or [],
            amount=request.amount,
        )


class _Unknown:
    """`current(open_step=_Unknown)`: the pending step is not known; read it."""


_ENTRY = f"SELECT {store.ENTRY} FROM entries e WHERE e.id = %s"


async def _entry(sql: Sql, entry_id: int) -> EntryRow | None:
    return await sql.row(EntryRow, _ENTRY, (entry_id,))


# --- opening a request ------------------------------------------------------------------------------


def _rule_for(link: Link) -> str:
    return f"p, {link.role}, approval_limit, approve, {link.limit}"


async def open_request(
    session: Db,
    *,
    subject_kind: str,
    entry: EntryRow | None,
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
    sql = await sql_of(session)
    rule = auto_approve_rule(limits, requester.role, amount)
    chain = [] if rule else approval_chain_for(amount, await _candidates(session, requester.id), limits)
    opening = Opening(title, justification, amount, policy_version, _chain_json(chain), 1, now)
    restarted = entry is not None and entry.approval_request_id is not None
    if entry is not None and entry.approval_request_id is not None:
        # A submission whose workflow never started was undone; the same request (and workflow id) is reused.
        previous = await store.request(sql, entry.approval_request_id, lock=True)
        opening = Opening(**{**opening.__dict__, "round": previous.round + 1})
        request = await store.reopen_request(sql, previous.id, opening)
    else:
        # A generic request is named by its own id, drawn first; an entry's by the entry (the INSERT draws the id).
        request_id = await store.new_request_id(sql) if entry is None else None
        subject_id = entry.id if entry is not None else request_id
        request = await store.insert_request(
            sql,
            request_id=request_id,
            subject_kind=subject_kind,
            entry_id=entry.id if entry is not None else None,
            requester_id=requester.id,
            workflow_id=workflow_id_for(subject_kind, subject_id),
            opening=opening,
        )
    work = await _Work.of(session, request, None, limits, now)
    if entry is not None:
        work.entry = await store.submit_entry(sql, entry.id, request, now)
        await entry_status_changed(session, work.entry, entry.status)
    first_view = None
    if rule:
        await work.set_status(RequestStatus.APPROVED)
    else:
        step, delegation = await work.open_step(chain[0], 0, timers, first=not restarted)
        first_view = _view(step, chain[0].role, chain[0].limit, delegation)
    request = work.request
    changes: dict[str, Any] = {
        "status": ["draft" if entry is not None else None, request.status],
        "workflow_id": request.workflow_id,
        "policy_version": policy_version,
        "chain": request.chain,
        "round": request.round,
    }
    if rule:
        changes["auto_approved_by_rule"] = rule
    await work.audit(
        _acting(context, request).with_rule(rule or context.policy_rule),
        "entry.submitted" if entry is not None else "approval_request.created",
        changes,
    )
    return Submission(request, work.entry, chain, first_view, rule, limits, restarted)


async def undo_submission(session: Db, request_id: int, reason: str, context: AuditContext) -> RequestRow:
    """The workflow could not start: put the entry back to draft (generic requests end withdrawn)."""
    sql = await sql_of(session)
    request = await store.request(sql, request_id, lock=True)
    if request.status != RequestStatus.PENDING:
        return request
    await store.close_pending_steps(sql, request.id, StepStatus.WITHDRAWN, None)
    request = await store.set_request_status(sql, request.id, RequestStatus.WITHDRAWN, None)
    entry = await _entry(sql, request.entry_id) if request.entry_id is not None else None
    if entry is not None:
        undone = await store.unsubmit_entry(sql, entry.id)
        await entry_status_changed(session, undone, entry.status)
        entry = undone
    resource_type, resource_id = _audit_target(request)
    await record(
        session,
        _acting(context, request),
        "entry.submit_undone" if entry is not None else "approval_request.start_failed",
        resource_type,
        resource_id,
        {"status": ["pending", entry.status if entry else request.status], "reason": reason},
    )
    return request


# --- transitions (called from activities) -----------------------------------------------------------


async def record_decision(
    session: Db,
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
    sql = await sql_of(session)
    request = await store.request(sql, request_id, lock=True)
    step, entry = await store.step_with_entry(sql, step_id, request.entry_id)  # after the lock: as committed now
    if step is None or step.request_id != request.id:
        raise NotFound("approval step not found", id=step_id)
    work = await _Work.of(session, request, entry, limits, now)
    target = STEP_STATUS_FOR_ACTION[action]
    if step.status != StepStatus.PENDING:
        if step.status == target and step.decided_by_id == actor_id:
            return await _replayed_decision(work, step, comment)
        raise InvalidState("this step was already decided", step=step.sequence, status=step.status)
    if request.status != RequestStatus.PENDING:
        raise InvalidState(f"the request is {request.status}")
    await work.people.load(
        request.requester_id, actor_id, step.approver_id, next_link.approver_id if next_link else None
    )
    old_status = request.status
    delegate = actor_id if acting_for_id is not None else None
    step = await store.decide_step(sql, step.id, target, actor_id, now, comment, delegate)
    notices: list[NoticeView] = []
    new_step: StepRow | None = None  # the request's only open step from here on, if any
    if action == "approve" and next_link is not None:
        new_step, _ = await work.open_step(next_link, next_link.level, timers)
        notices += await work.notifier.step_waiting(new_step)
    else:
        await work.set_status(_REQUEST_STATUS_FOR_ACTION[action])
        notices += await work.notifier.outcome(comment, actor_id)
    changes: dict[str, Any] = {
        "status": [old_status, work.request.status],
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
    await work.audit(_acting(context, request, actor_id).with_rule(step.rule), f"approval.{target}", changes)
    return await work.current(decided_step_id=step.id, notices=notices, open_step=new_step)


async def _replayed_decision(work: _Work, step: StepRow, comment: str | None) -> Transition:
    """A retried activity after its first run committed: the same answer, and the same (deduplicated) notices."""
    notices: list[NoticeView] = []
    request = work.request
    following = await store.pending_step(work.sql, request.id)
    if request.status == RequestStatus.PENDING and following is not None and following.sequence > step.sequence:
        notices += await work.notifier.step_waiting(following)
    else:
        notices += await work.notifier.outcome(comment, step.decided_by_id)
    return await work.current(decided_step_id=step.id, notices=notices, open_step=following)


async def announce_first_step(session: Db, request_id: int, limits: Limits, now: datetime) -> Transition:
    """Notify the first approver (run by the workflow once it has started, so a failed start notifies nobody)."""
    sql = await sql_of(session)
    request, step, entry = await store.request_with_open_step(sql, request_id)
    work = await _Work.of(session, request, entry, limits, now)
    notices: list[NoticeView] = []
    if step is not None:
        await work.people.load(request.requester_id, step.approver_id, step.delegate_id)
        notices = await work.notifier.step_waiting(step)
    return await work.current(changed=False, notices=notices, open_step=step)


async def remind_step(session: Db, request_id: int, step_id: int, limits: Limits, now: datetime) -> Transition:
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    step = await store.step(sql, step_id)
    if step is None or step.status != StepStatus.PENDING or work.request.status != RequestStatus.PENDING:
        return await work.current(changed=False, open_step=_Unknown)
    if step.reminded_at is None:
        step = await store.set_step_reminded(sql, step.id, now)
        await work.audit(
            AuditContext(workflow_id=work.request.workflow_id),
            "approval.reminded",
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": step.delegate_id},
        )
    await work.load_entry()
    notices = await work.notifier.reminder(step)
    return await work.current(notices=notices, open_step=step)


async def escalate_step(
    session: Db, request_id: int, step_id: int, limits: Limits, now: datetime, timers: StepTimers
) -> Transition:
    """Move an overdue step to the next approver up the hierarchy (the step's approver's manager with a limit)."""
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    request = work.request
    step = await store.step(sql, step_id)
    if step is None or request.status != RequestStatus.PENDING:
        return await work.current(changed=False, open_step=_Unknown)
    await work.load_entry()
    if step.status == StepStatus.ESCALATED:
        following = await store.pending_step(sql, request.id)
        notices = await work.notifier.escalation(step, following) if following else []
        return await work.current(notices=notices, open_step=following)
    if step.status != StepStatus.PENDING:
        return await work.current(changed=False, open_step=_Unknown)
    target = escalation_target(await _candidates(session, step.approver_id), limits, request.requester_id)
    if target is None:
        return await work.current(changed=False, open_step=step)
    step = await store.close_step(sql, step.id, StepStatus.ESCALATED, now)
    new_step, _ = await work.open_step(target, step.level, timers)
    notices = await work.notifier.escalation(step, new_step)
    await work.audit(
        AuditContext(workflow_id=request.workflow_id).with_rule(new_step.rule),
        "approval.escalated",
        {"step": [step.sequence, new_step.sequence], "approver_id": [step.approver_id, new_step.approver_id]},
    )
    return await work.current(notices=notices, open_step=new_step)


async def expire_request(session: Db, request_id: int, limits: Limits, now: datetime) -> Transition:
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    request = work.request
    if request.status == RequestStatus.EXPIRED:
        await work.load_entry()
        return await work.current(notices=await work.notifier.outcome(None), open_step=_Unknown)
    if request.status not in OPEN_STATUSES:
        return await work.current(changed=False, open_step=_Unknown)
    old_status = request.status
    await store.close_pending_steps(sql, request.id, StepStatus.EXPIRED, now)
    await work.set_status(RequestStatus.EXPIRED)
    await work.audit(
        AuditContext(workflow_id=request.workflow_id),
        "approval.expired",
        {"status": [old_status, RequestStatus.EXPIRED], "round": request.round},
    )
    notices = await work.notifier.outcome(None)
    return await work.current(notices=notices, open_step=None)


async def withdraw_request(
    session: Db, request_id: int, actor_id: int, limits: Limits, now: datetime, context: AuditContext
) -> Transition:
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    request = work.request
    if request.requester_id != actor_id:
        raise Forbidden("only the requester may withdraw")
    if request.status == RequestStatus.WITHDRAWN:
        return await work.current(open_step=_Unknown)
    if request.status not in OPEN_STATUSES:
        raise InvalidState(f"the request is {request.status}; only a pending one can be withdrawn")
    old_status = request.status
    await store.close_pending_steps(sql, request.id, StepStatus.WITHDRAWN, now)
    await work.set_status(RequestStatus.WITHDRAWN)
    await work.audit(
        _acting(context, request, actor_id),
        "entry.withdrawn" if work.entry is not None else "approval_request.withdrawn",
        {"status": [old_status, RequestStatus.WITHDRAWN], "round": request.round},
    )
    return await work.current(open_step=None)


async def open_round(
    session: Db,
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
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    request = work.request
    if request.requester_id != actor_id:
        raise Forbidden("only the requester may resubmit")
    if request.round >= round_number and request.status == RequestStatus.PENDING:
        step = await store.pending_step(sql, request.id)
        await work.load_entry()
        notices = await work.notifier.step_waiting(step) if step else []
        return await work.current(notices=notices, open_step=step)
    if request.status != RequestStatus.CHANGES_REQUESTED:
        raise InvalidState(f"the request is {request.status}; only one returned for changes can be resubmitted")
    await work.load_entry()
    entry = work.entry
    amount = entry.amount if entry is not None else request.amount
    chain = approval_chain_for(amount, await _candidates(session, request.requester_id), limits)
    opening = Opening(
        title=entry.approval_title if entry is not None else request.title,
        justification=request.justification,
        amount=amount,
        policy_version=request.policy_version,
        chain=_chain_json(chain),
        round=round_number,
        submitted_at=now,
    )
    work.request = await store.reopen_request(sql, request.id, opening)
    await work.set_status(RequestStatus.PENDING)
    step, _ = await work.open_step(chain[0], 0, timers)
    notices = await work.notifier.step_waiting(step)
    await work.audit(
        _acting(context, work.request, actor_id),
        "entry.resubmitted" if entry is not None else "approval_request.resubmitted",
        {
            "status": [RequestStatus.CHANGES_REQUESTED, RequestStatus.PENDING],
            "round": round_number,
            "chain": work.request.chain,
            "amount": str(amount) if amount is not None else None,
        },
    )
    return await work.current(notices=notices, open_step=step)


async def reroute_step(
    session: Db,
    request_id: int,
    step_id: int,
    delegate_id: int | None,
    limits: Limits,
    now: datetime,
    context: AuditContext,
) -> Transition:
    """Point an open step at the approver's delegate (or back at the approver when `delegate_id` is None).
    `context` is the request that changed the delegation (its user is the actor of the audit row)."""
    sql = await sql_of(session)
    work = await _Work.of(session, await store.request(sql, request_id, lock=True), None, limits, now)
    request = work.request
    step = await store.step(sql, step_id)
    if (
        step is None
        or step.status != StepStatus.PENDING
        or request.status != RequestStatus.PENDING
        or delegate_id == request.requester_id
    ):
        return await work.current(changed=False, open_step=_Unknown)
    notices: list[NoticeView] = []
    if step.delegate_id != delegate_id:
        old = step.delegate_id
        step = await store.set_step_delegate(sql, step.id, delegate_id)
        await work.audit(
            _acting(context, request),
            "approval.rerouted",
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": [old, delegate_id]},
        )
    if delegate_id is not None:
        await work.load_entry()
        notices += await work.notifier.delegated(step, delegate_id)
    return await work.current(notices=notices, open_step=step)


# --- inbox ------------------------------------------------------------------------------------------

_DELEGATED_TO = (
    "EXISTS (SELECT 1 FROM delegations d WHERE d.user_id = s.approver_id AND d.delegate_id = %(user_id)s "
    "AND d.revoked_at IS NULL AND d.starts <= %(now)s AND d.ends > %(now)s)"
)
_INBOX_FROM = (
    "FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
    "WHERE s.status = 'pending' AND r.status = 'pending'"
)
_MINE = f" AND r.requester_id <> %(user_id)s AND (s.approver_id = %(user_id)s OR {_DELEGATED_TO})"


async def inbox(
    session: Db, user_id: int | None, now: datetime, limit: int, offset: int
) -> tuple[list[tuple[StepRow, RequestRow]], int]:
    """Pending steps waiting on `user_id` (as approver or active delegate); every pending step when None."""
    sql = await sql_of(session)
    where = _INBOX_FROM + (_MINE if user_id is not None else "")
    params = {"user_id": user_id, "now": now, "limit": limit, "offset": offset}
    total = await sql.scalar(f"SELECT count(*) {where}", params)
    rows = await sql.all(
        f"SELECT {store.STEP}, {store.REQUEST} {where} ORDER BY s.created_at, s.id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    split = width(StepRow)
    return [(StepRow(*row[:split]), RequestRow(*row[split:])) for row in rows], int(total or 0)


_PARTICIPANT = (
    "SELECT 1 FROM approval_steps s WHERE s.request_id = %(request_id)s AND (s.approver_id = %(user_id)s "
    f"OR s.delegate_id = %(user_id)s OR s.decided_by_id = %(user_id)s OR (s.status = 'pending' AND {_DELEGATED_TO})) "
    "LIMIT 1"
)


async def is_participant(session: Db, request_id: int, user_id: int, now: datetime) -> bool:
    """Whether the user is (or was) an approver or delegate of one of the request's steps."""
    found = await (await sql_of(session)).one(_PARTICIPANT, {"request_id": request_id, "user_id": user_id, "now": now})
    return found is not None


# --- generic requests and reading ---------------------------------------------------------------------


async def create_generic_request(
    session: Db,
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
    session: Db, authorizer: Authorizer, viewer: User, request_id: int, now: datetime
) -> RequestRow:
    """A request the viewer may see: their own, their team's, one they decide on, or any with `approval read_all`.
    Anything else is 404, so its existence does not leak."""
    try:
        request = await get_request(session, request_id)
    except NotFound:
        request = None
    if request is not None:
        if authorizer.allows(viewer.role, "approval", "read_all"):
            return request
        visibility = await visibility_for(session, authorizer, viewer)
        if visibility.can_see(request.requester_id) or await is_participant(session, request.id, viewer.id, now):
            return request
    raise NotFound("approval request not found", id=request_id)
