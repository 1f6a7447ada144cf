"""Reading approvals: the inbox, one request as its participants may see it, and the trail of steps and events."""

from __future__ import annotations

from datetime import datetime

from core.authz import Authorizer
from core.db import Tx
from domain.approvals import repository as requests
from domain.approvals.notices import link_for
from domain.approvals.schemas import ApprovalRequestOut, InboxItem, InboxPage, LiveView, Priced
from domain.audit.queries import AuditFilter, stream_rows
from domain.budgets.checks import flags_for
from domain.budgets.ledger import EXPENSE
from domain.duplicates import queries as duplicates
from domain.duplicates.check import summary_of
from domain.entries.schemas import ApprovalHistory, HistoryEvent, HistoryStep
from domain.errors import NotFound
from domain.models import User
from domain.models.rows import RequestRow, StepRow
from domain.pagination import Cursor, Pager
from domain.users.directory import People
from domain.users.visibility import visibility_for
from workflows.contracts import LiveStatus

ReadAll = ("approval", "read_all")


async def inbox(
    tx: Tx,
    base_currency: str,
    user_id: int | None,
    now: datetime,
    limit: int,
    offset: int,
    cursor: Cursor | None = None,
) -> InboxPage:
    """Steps waiting on `user_id` (as approver or delegate in force); every waiting step when None. Oldest first,
    by offset or after a cursor."""
    pager = Pager(limit, offset, cursor)
    keyset = requests.INBOX_KEYSET
    rows, total = await requests.inbox(tx.sql, user_id, now, pager.fetch, offset, pager.key(keyset))
    rows, next_cursor = pager.cut(keyset, rows, lambda row: (row[0].created_at, row[0].id))
    flags = await flags_for(
        tx.sql, [request.id for _, request, _ in rows if request.subject_kind == EXPENSE], base_currency
    )
    items = [
        InboxItem(
            request_id=request.id,
            step_id=step.id,
            step=step.sequence,
            round=step.round,
            subject_kind=request.subject_kind,
            entry_id=request.entry_id,
            invoice_id=request.invoice_id,
            title=request.title,
            **Priced.money_of(request, base_currency),
            requester_id=request.requester_id,
            approver_id=step.approver_id,
            delegate_id=step.delegate_id,
            waiting_since=step.created_at,
            remind_at=step.remind_at,
            escalate_at=step.escalate_at,
            link=link_for(request),
            workflow_id=request.workflow_id,
            budgets=flags.get(request.id, []),
            budget_id=budget_levels(request).get((step.round, step.level)),
            possible_duplicates=duplicates,
        )
        for step, request, duplicates in rows
    ]
    return InboxPage(items=items, total=total, limit=limit, offset=pager.page_offset, next_cursor=next_cursor)


async def visible_request(tx: Tx, authorizer: Authorizer, viewer: User, request_id: int, now: datetime) -> RequestRow:
    """A request the viewer may see: their own, their team's, one they decide on, or any with `approval read_all`.
    Anything else is 404, so its existence does not leak."""
    try:
        request = await requests.request(tx.sql, request_id)
    except NotFound:
        request = None
    if request is not None:
        if authorizer.allows(viewer.role, *ReadAll):
            return request
        visibility = await visibility_for(tx.sql, authorizer, viewer)
        if visibility.can_see(request.requester_id) or await requests.is_participant(
            tx.sql, request.id, viewer.id, now
        ):
            return request
    raise NotFound("approval request not found", id=request_id)


def _step_summary(step: StepRow, names: dict[int, str]) -> str:
    approver = names.get(step.approver_id, f"user {step.approver_id}")
    if step.status == "pending":
        target = f"{names.get(step.delegate_id, '')} on behalf of {approver}" if step.delegate_id else approver
        return f"waiting on {target}"
    if step.decided_by_id is None:
        return f"{step.status} (was waiting on {approver})"
    decider = names.get(step.decided_by_id, f"user {step.decided_by_id}")
    verb = step.status.replace("_", " ")
    if step.decided_by_id != step.approver_id:
        return f"{verb} by {decider} on behalf of {approver}"
    return f"{verb} by {decider}"


def budget_levels(request: RequestRow | None) -> dict[tuple[int, int], int]:
    """(round, level) -> budget id of the levels an over-budget budget added to the request's current chain."""
    if request is None:
        return {}
    return {(request.round, int(link["level"])): int(link["budget_id"]) for link in request.chain
            if link.get("budget_id") is not None}  # fmt: skip


def _history_steps(
    steps: list[StepRow], names: dict[int, str], budgets: dict[tuple[int, int], int] | None = None
) -> list[HistoryStep]:
    budgets = budgets or {}
    return [
        HistoryStep(
            sequence=step.sequence,
            round=step.round,
            level=step.level,
            status=step.status,
            approver_id=step.approver_id,
            approver_name=names.get(step.approver_id),
            delegate_id=step.delegate_id,
            decided_by_id=step.decided_by_id,
            decided_by_name=names.get(step.decided_by_id) if step.decided_by_id else None,
            on_behalf_of_id=step.approver_id
            if step.decided_by_id is not None and step.decided_by_id != step.approver_id
            else None,
            comment=step.comment,
            rule=step.rule,
            opened_at=step.opened_at,
            remind_at=step.remind_at,
            escalate_at=step.escalate_at,
            decided_at=step.decided_at,
            summary=_step_summary(step, names),
            budget_id=budgets.get((step.round, step.level)),
        )
        for step in steps
    ]


def _named(steps: list[StepRow]) -> set[int]:
    return {i for step in steps for i in (step.approver_id, step.delegate_id, step.decided_by_id) if i is not None}


async def history(
    tx: Tx, request_id: int | None, resource_type: str, resource_id: int, workflow_url: str | None
) -> ApprovalHistory:
    """Every step and decision (actor, time, comment), the audit trail of the subject, and the workflow link."""
    request = await requests.request(tx.sql, request_id) if request_id is not None else None
    steps = await requests.steps_of(tx.sql, request_id) if request_id is not None else []
    audit = AuditFilter(resource_type=resource_type, resource_id=str(resource_id))
    trail = [row async for row in stream_rows(tx, audit)]
    names = await People(tx.sql).names(_named(steps) | {row.actor_id for row in trail if row.actor_id is not None})
    events = []
    for row in trail:
        changes = row.changes or {}
        actor = names.get(row.actor_id) if row.actor_id else None
        summary = row.action
        if changes.get("on_behalf_of") is not None:
            summary += f" by {actor} on behalf of {names.get(int(changes['on_behalf_of']), changes['on_behalf_of'])}"
        elif actor:
            summary += f" by {actor}"
        fx = changes.get("fx")
        if isinstance(fx, dict) and changes.get("currency") != changes.get("base_currency"):
            summary += (
                f": {changes['original_amount']} {changes['currency']} = {changes['base_amount']} "
                f"{changes['base_currency']} at {fx['rate']} ({fx['source']}, {fx['rate_date']})"
            )
        found = summary_of(changes)
        if found:
            summary += f"; {found}"
        step_no = changes.get("step")
        events.append(
            HistoryEvent(
                at=row.occurred_at,
                action=row.action,
                actor_id=row.actor_id,
                actor_name=actor,
                summary=summary,
                comment=changes.get("comment") or changes.get("reason"),
                step=step_no if isinstance(step_no, int) else None,
            )
        )
    return ApprovalHistory(
        request_id=request.id if request else None,
        status=request.status if request else "draft",
        round=request.round if request else None,
        workflow_id=request.workflow_id if request else None,
        workflow_url=workflow_url if request else None,
        policy_version=request.policy_version if request else None,
        chain=list(request.chain) if request else [],
        steps=_history_steps(steps, names, budget_levels(request)),
        events=events,
    )


async def request_view(
    tx: Tx, request_id: int, base_currency: str, workflow_url: str, live: LiveStatus | None
) -> ApprovalRequestOut:
    """A request as committed now, with its steps, and what its workflow says right now when `live` is given."""
    request = await requests.request(tx.sql, request_id)
    steps = await requests.steps_of(tx.sql, request.id)
    names = await People(tx.sql).names(_named(steps))
    live_view = None
    if live is not None:
        live_view = LiveView(
            status=live.status,
            round=live.round,
            current_approver_id=live.current_approver_id,
            step=live.step.sequence if live.step else None,
            remind_at=live.remind_at,
            escalate_at=live.escalate_at,
            expires_at=live.expires_at,
        )
    return ApprovalRequestOut(
        id=request.id,
        subject_kind=request.subject_kind,
        entry_id=request.entry_id,
        invoice_id=request.invoice_id,
        title=request.title,
        justification=request.justification,
        **Priced.money_of(request, base_currency),
        requester_id=request.requester_id,
        status=request.status,
        round=request.round,
        workflow_id=request.workflow_id,
        workflow_url=workflow_url,
        policy_version=request.policy_version,
        chain=list(request.chain),
        submitted_at=request.submitted_at,
        decided_at=request.decided_at,
        steps=_history_steps(steps, names, budget_levels(request)),
        live=live_view,
        budgets=(await flags_for(tx.sql, [request.id], base_currency)).get(request.id, []),
        possible_duplicates=await duplicates.of_entry(tx.sql, request.entry_id) if request.entry_id else [],
    )
