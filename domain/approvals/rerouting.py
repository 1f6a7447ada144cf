"""Re-routing an open step in place (rule 4 of docs/controls.md): when a delegation is set or ended, or an approver
or requester changes (role, activity, manager), the pending step goes to whoever should decide it now. The same step
(its id), a new approver or delegate: audited, the new waiter notified in-app at once, and the workflow told through
the outbox (it reads the step again and sends the email)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.sql import Sql
from domain.approvals import outbox, rules
from domain.approvals import repository as requests
from domain.approvals.chain import Limits, approval_chain_for
from domain.approvals.transitions import Work, candidates
from domain.audit.service import AuditContext
from domain.models import RequestStatus
from domain.users.directory import People, manager_chain
from workflows.contracts import ApprovalTimers, StepChanged


async def reroute_request(
    sql: Sql, request_id: int, now: datetime, context: AuditContext, reason: str, *, new_chain: bool = False
) -> int | None:
    """Point the request's open step at whoever should decide it now (rules.route), in place: the same step, a new
    approver or delegate. `new_chain`: the requester's managers changed, so the step's level is routed from the chain
    as it would be computed now. Audited, and its workflow told through the outbox; the outbox message's id (None
    when nothing changes: nothing is told)."""
    request = await requests.request(sql, request_id, lock=True)
    step = await requests.pending_step(sql, request.id)
    if request.status != RequestStatus.PENDING or step is None:
        return None
    if request.limits is None:
        return None  # opened before requests kept their limits: its workflow routes it at its next transition
    limits: Limits = request.limits
    start_id, need = step.approver_id, rules.need_of(rules.step_limit(step), request.amount)
    if new_chain:
        chain = approval_chain_for(request.amount, candidates(await manager_chain(sql, request.requester_id)), limits)
        link = next((item for item in chain if item.level == step.level), None)
        if link is not None:
            start_id, need = link.approver_id, rules.need_of(link.limit, request.amount)
    excluded = await rules.decided_in_round(sql, request)
    routed = await rules.route(sql, request, start_id, need, limits, now, excluded=excluded)
    if routed is None or (routed.approver_id, routed.delegate_id) == (step.approver_id, step.delegate_id):
        return None
    moved = await requests.reassign_step(sql, step.id, routed.approver_id, routed.delegate_id, routed.rule)
    if moved is None:
        return None
    work = Work(sql, request, None, People(sql), limits, ApprovalTimers(), now)
    await work.load_entry()
    await work.notifier.step_waiting(moved, rerouted=True)  # in-app at once; the workflow sends the email
    changes: dict[str, Any] = {
        "step": moved.sequence,
        "approver_id": [step.approver_id, moved.approver_id],
        "delegate_id": [step.delegate_id, moved.delegate_id],
        "reason": reason,
    }
    if routed.passed_over:
        changes["passed_over"] = list(routed.passed_over)
    await work.audit(work.acting(context).with_rule(moved.rule), "approval.rerouted", changes)
    change = StepChanged(reason=reason, audit=context)
    return await outbox.add_step_changed(sql, request.id, request.workflow_id, change)


async def reroute_for_user(
    sql: Sql, user_id: int, now: datetime, context: AuditContext, *, requester_moved: bool
) -> list[int]:
    """Rule 4, nobody waits on someone who can no longer decide: after a user's role, activity or manager changed,
    every pending request waiting on them (as approver or delegate) goes to whoever should decide it now, and, when
    their manager changed, their own pending requests follow their new chain. The outbox messages written."""
    messages = []
    for request_id in await requests.pending_requests_involving(sql, user_id):
        request = await requests.request(sql, request_id)
        moved = requester_moved and request.requester_id == user_id
        reason = "the requester's manager changed" if moved else "a change to the approver's role, activity or team"
        message = await reroute_request(sql, request_id, now, context, reason, new_chain=moved)
        if message is not None:
            messages.append(message)
    return messages
