"""The approval transitions: open a request, decide, remind, escalate, expire, withdraw, resubmit, re-route, undo.

The workflow orchestrates; these are the only functions that change a request. Each runs in ONE transaction (an
activity's, or the submitting request's), changes the request, its step and its entry together, writes one audit
row and creates the in-app notifications (deduplicated per workflow, event and step). Each is idempotent: run again
after a commit (a retried activity), it changes nothing and answers as the first run did.

They take the workflow's job (workflows.contracts: the request, the workflow's clock, the pinned limits and timers,
who acted) and answer with a `DecisionOutcome`, the one type the activity hands back to the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from core.engine import UserMetadata
from core.sql import Sql
from domain.approvals import outbox, rules
from domain.approvals import repository as requests
from domain.approvals.chain import Candidate, Limits, approval_chain_for, auto_approve_rule, budget_level
from domain.approvals.notices import Notifier, link_for
from domain.approvals.repository import NewStep, Opening
from domain.approvals.rules import Route
from domain.approvals.workflow_texts import approval_metadata
from domain.attachments.receipts import require_receipt
from domain.audit.service import AuditContext, record
from domain.budgets import ledger as budgets
from domain.duplicates.check import DuplicateRules, Findings, check_expense
from domain.entries import repository as entries
from domain.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from domain.fx import rates as fx_rates
from domain.fx.rates import Locked, Terms
from domain.invoices import issuing
from domain.invoices import repository as invoices
from domain.invoices.repository import InvoiceRow
from domain.models import RequestStatus, StepStatus
from domain.models.rows import EntryRow, RequestRow, StepRow
from domain.money import plain_str
from domain.users.directory import People, Person, manager_chain
from workflows.contracts import (
    AnnounceJob,
    ApprovalInput,
    ApprovalTimers,
    ChainLink,
    DecisionOutcome,
    LockedRate,
    Notice,
    OwnerJob,
    RecordDecisionJob,
    RerouteJob,
    ResubmitJob,
    StepInfo,
    StepJob,
    TransitionJob,
    covers,
)

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


def subject_id_of(request: RequestRow) -> int:
    """What the request is about: its entry, its invoice, or (a generic request) itself."""
    if request.entry_id is not None:
        return request.entry_id
    return request.invoice_id if request.invoice_id is not None else request.id


def chain_links(request: RequestRow) -> list[ChainLink]:
    return [ChainLink.model_validate(item) for item in request.chain]


def _chain_json(chain: list[ChainLink]) -> list[dict[str, Any]]:
    # A link's budget_id only where a budget added it: the chains pinned before budgets read the same.
    return [link.model_dump(exclude_defaults=True) for link in chain]


def _audit_target(request: RequestRow) -> tuple[str, int]:
    if request.entry_id is not None:
        return "entry", request.entry_id
    if request.invoice_id is not None:
        return "invoice", request.invoice_id
    return "approval_request", request.id


def _subject_action(request: RequestRow, verb: str, generic: str) -> str:
    """An owner's action as the audit trail names it: `entry.<verb>`, `invoice.<verb>`, else `generic`."""
    if request.entry_id is not None:
        return f"entry.{verb}"
    return f"invoice.{verb}" if request.invoice_id is not None else generic


def candidates(managers: list[Person]) -> list[Candidate]:
    return [Candidate(manager.id, manager.role, manager.is_active) for manager in managers]


def line_at(managers: list[Person], approver_id: int) -> list[Person] | None:
    """The managers from `approver_id` upwards, cut from a requester's manager chain (None when they are not in it)."""
    for index, manager in enumerate(managers):
        if manager.id == approver_id:
            return managers[index:]
    return None


def _step_limit(step: StepRow, limits: Limits, role: str) -> str | None:
    # The rule pinned on the step ("p, manager, approval_limit, approve, 10000.00") names the limit in force.
    return rules.step_limit(step) or limits.get(role, {}).get("approve")


# --- one transition's work ------------------------------------------------------------------------------------


@dataclass
class Work:
    """A transition of one request in one transaction: the request as it now stands, its entry, the people named,
    and the terms it runs by (the pinned limits and timers, the workflow's clock)."""

    sql: Sql
    request: RequestRow
    entry: EntryRow | None
    people: People
    limits: Limits
    timers: ApprovalTimers
    now: datetime
    # The delegation window of each step routed here to a delegate (so it needs no second read).
    _windows: dict[int, tuple[datetime, datetime] | None] = field(default_factory=dict)

    @classmethod
    async def locked(cls, sql: Sql, job: TransitionJob) -> Work:
        """The work on `job`'s request, its row locked for the transaction (transitions of one request queue)."""
        request = await requests.request(sql, job.request_id, lock=True)
        return cls(sql, request, None, People(sql), job.limits, job.timers, job.now)

    @property
    def notifier(self) -> Notifier:
        return Notifier(self.sql, self.request, self.entry, self.people)

    async def load_entry(self) -> None:
        if self.entry is None and self.request.entry_id is not None:
            self.entry = await entries.get(self.sql, self.request.entry_id)

    async def set_status(self, status: str) -> None:
        """The request's and its entry's new status (the dashboard's totals follow the entry by themselves)."""
        decided_at = self.now if status in FINAL_STATUSES else None
        self.request = await requests.set_request_status(self.sql, self.request.id, status, decided_at)
        if self.request.invoice_id is not None:
            await issuing.follow(self.sql, self.request, self.now)
        await self.load_entry()
        if self.entry is not None and self.entry.status != status:
            submitted_at = self.now if status == RequestStatus.PENDING else None
            self.entry = await entries.set_status(
                self.sql, self.entry.id, status, decided_at=decided_at, submitted_at=submitted_at
            )

    async def route(
        self,
        start_id: int,
        need: rules.Need,
        *,
        include_start: bool = True,
        level: int,
        line: list[Person] | None = None,
        fresh_round: bool = False,
    ) -> Route:
        """Who a step at `level` goes to, from `start_id` upwards (rules.route); ValidationFailed when nobody may
        decide it: no step is opened that nobody can decide. `line`: start_id and the managers above, when read
        already; `fresh_round`: nobody has decided in this round yet (nothing to read)."""
        excluded = set() if fresh_round else await rules.decided_in_round(self.sql, self.request)
        found = await rules.route(
            self.sql,
            self.request,
            start_id,
            need,
            self.limits,
            self.now,
            excluded=excluded,
            include_start=include_start,
            line=line,
            people=self.people,
        )
        if found is None:
            raise ValidationFailed(
                "nobody above in the manager tree may decide this step (everyone who might has already decided, is "
                "away without a delegate who may, or lacks the limit); ask an admin to set the manager tree",
                reason="no_approver_left",
                level=level,
            )
        return found

    async def open_step(self, route: Route, level: int, *, first: bool = False) -> StepRow:
        """A new pending step routed to `route` (its approver, or their delegate in force in their stead)."""
        request = self.request
        last = 0 if first else await requests.last_sequence(self.sql, request.id)  # a new request has no step yet
        new = NewStep(
            request_id=request.id,
            sequence=last + 1,
            round=request.round,
            level=level,
            approver_id=route.approver_id,
            delegate_id=route.delegate_id,
            rule=route.rule,
            remind_at=self.now + timedelta(seconds=self.timers.reminder_seconds),
            escalate_at=self.now + timedelta(seconds=self.timers.escalation_seconds),
            opened_at=self.now,
        )
        step = await requests.insert_step(self.sql, new)
        self._windows[step.id] = route.window
        return step

    async def step_info(self, step: StepRow) -> StepInfo:
        """The open step as the workflow tracks it: its approver's role and limit, and the delegate's window."""
        approver = await self.people.get(step.approver_id)
        role = approver.role if approver is not None else ""
        window = self._windows.get(step.id)
        if step.delegate_id is not None and window is None:
            found = await requests.current_delegation(self.sql, step.approver_id, self.now)
            if found is not None and found[0].delegate_id == step.delegate_id:
                window = (found[0].starts, found[0].ends)
        starts, ends = window if window is not None else (None, None)
        delegate = await self.people.get(step.delegate_id)
        return StepInfo(
            step_id=step.id,
            sequence=step.sequence,
            round=step.round,
            level=step.level,
            approver_id=step.approver_id,
            approver_role=role,
            limit=_step_limit(step, self.limits, role),
            delegate_id=step.delegate_id,
            delegate_starts=starts,
            delegate_ends=ends,
            approver_name=approver.full_name if approver is not None else None,
            delegate_name=delegate.full_name if delegate is not None else None,
        )

    async def audit(self, context: AuditContext, action: str, changes: dict[str, Any]) -> None:
        resource_type, resource_id = _audit_target(self.request)
        await record(self.sql, context, action, resource_type, resource_id, changes)

    def acting(self, context: AuditContext, actor_id: int | None = None) -> AuditContext:
        return context.acting(workflow_id=self.request.workflow_id, actor_id=actor_id)

    async def outcome(
        self,
        open_step: StepRow | None,
        *,
        decided_step_id: int | None = None,
        changed: bool = True,
        notices: list[Notice] | None = None,
    ) -> DecisionOutcome:
        """The request as it stands now, with `open_step` its pending step (None: no step waits)."""
        await self.load_entry()
        request = self.request
        return DecisionOutcome(
            request_status=request.status,
            entry_status=self.entry.status if self.entry else None,
            round=request.round,
            decided_step_id=decided_step_id,
            next_step=await self.step_info(open_step) if open_step else None,
            chain=chain_links(request),
            changed=changed,
            notices=notices or [],
            amount=request.amount,
        )

    async def as_it_stands(self) -> DecisionOutcome:
        """Nothing to do: the request as it stands (its pending step read again)."""
        return await self.outcome(await requests.pending_step(self.sql, self.request.id), changed=False)


# --- opening a request -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOpening:
    """What a submission asks to open: the subject (an entry, or a generic request's title and amount), who asks,
    and the terms pinned for the request's life (the policy's limits and version, the SLA timers)."""

    subject_kind: str
    entry: EntryRow | None
    requester_id: int
    requester_role: str
    title: str
    justification: str
    amount: Any
    limits: Limits
    policy_version: str
    timers: ApprovalTimers
    now: datetime
    workflow_id_for: Any  # (subject_kind, subject_id) -> workflow id
    history_limit: int = 10_000  # the workflow continues as a new run past this many events
    fx: Locked | None = None  # an entry's or invoice's rate, locked for this submit (`amount` is its base amount)
    invoice: InvoiceRow | None = None  # an invoice's approval before it is sent (subject_kind `invoice`)
    # An expense above this base amount needs a stored receipt (RECEIPT_REQUIRED_ABOVE); None: no requirement.
    receipt_required_above: Decimal | None = None
    duplicates: DuplicateRules = field(default_factory=DuplicateRules)  # the duplicate check's thresholds


@dataclass(frozen=True)
class Submission:
    """A request committed-to-be, and the input its workflow starts with. `restarted`: a resubmission of a request
    whose earlier start was undone, whose workflow (the API could not tell whether it started) is to be replaced.
    `outbox_id`: the start, kept in the outbox with the submission (delivered late if the API cannot)."""

    request: RequestRow
    entry: EntryRow | None
    input: ApprovalInput
    restarted: bool = False
    outbox_id: int | None = None
    duplicates: Findings = field(default_factory=Findings)  # an expense's possible duplicates, as its check left them
    metadata: UserMetadata | None = None  # what the Temporal UI shows of its workflow (workflow_texts.py)


def _fx_changes(fx: Locked) -> dict[str, Any]:
    """The locked rate in an audit row: the entry's own amount, its base amount, and the rates behind it."""
    return {
        "currency": fx.currency,
        "original_amount": plain_str(fx.amount),
        "base_amount": plain_str(fx.base_amount),
        "base_currency": fx.base_currency,
        "fx": fx.rate.describe(),
    }


def locked_rate(fx: Locked | None) -> LockedRate | None:
    if fx is None:
        return None
    rate = fx.rate
    return LockedRate(currency=fx.currency, original_amount=fx.amount, base_currency=fx.base_currency,
                      rate=rate.rate, rate_date=rate.day, source=rate.source)  # fmt: skip


async def _assess(sql: Sql, entry: EntryRow, managers: list[Person], base_amount: Any) -> budgets.Assessment:
    """The budgets an expense falls in (its owner's team subtrees, its category, its date) and what each has left."""
    line = [entry.owner_id, *(manager.id for manager in managers)]
    return await budgets.assess(sql, line_ids=line, category=entry.category, day=entry.entry_date, amount=base_amount)


async def _with_budget_level(
    sql: Sql,
    chain: list[ChainLink],
    managers: list[Person],
    budget: budgets.Assessment,
    limits: Limits,
    requester_id: int,
) -> list[ChainLink]:
    """The chain with the extra level an over-budget `extra_approval` budget asks for (its owner, or above)."""
    charge = budget.extra_approval
    if charge is None:
        return chain
    owner = next((m for m in managers if m.id == charge.owner_id), None) or await People(sql).get(charge.owner_id)
    owner_candidate = candidates([owner])[0] if owner is not None else None
    link = budget_level(chain, candidates(managers), owner_candidate, limits, budget.amount, charge.budget_id,
                        requester_id)  # fmt: skip
    return [*chain, link]


async def open_request(sql: Sql, opening: RequestOpening, context: AuditContext) -> Submission:
    """Pin the chain and the policy version, open the first step (or auto-approve), and write the audit row. The
    caller commits, then starts the workflow."""
    limits = opening.limits
    entry = opening.entry
    budget: budgets.Assessment | None = None
    if entry is not None and entry.kind == budgets.EXPENSE:
        # The budgets first: a `block` one refuses (409) before anything is written, and an `extra_approval` one adds
        # a level to the chain (and rules out approving at once). They are charged last (budgets.commit).
        assert opening.fx is not None, "an entry's submit locks its rate first"
        await require_receipt(sql, entry, opening.fx.base_amount, opening.receipt_required_above,
                              opening.fx.base_currency)  # fmt: skip
        managers = await manager_chain(sql, opening.requester_id)
        budget = await _assess(sql, entry, managers, opening.fx.base_amount)
        budgets.enforce(budget, opening.fx.base_currency)
        rule = None if budget.extra_approval else auto_approve_rule(limits, opening.requester_role, opening.amount)
    else:
        rule = auto_approve_rule(limits, opening.requester_role, opening.amount)
        managers = [] if rule else await manager_chain(sql, opening.requester_id)
    chain = [] if rule else approval_chain_for(opening.amount, candidates(managers), limits)
    if budget is not None and not rule:
        chain = await _with_budget_level(sql, chain, managers, budget, limits, opening.requester_id)
    pinned = Opening(
        opening.title,
        opening.justification,
        opening.amount,
        opening.policy_version,
        _chain_json(chain),
        1,
        opening.now,
        limits,
        opening.fx,
    )
    invoice = opening.invoice
    previous_id = entry.approval_request_id if entry is not None else invoice.approval_request_id if invoice else None
    restarted = previous_id is not None
    if previous_id is not None:
        # A submission whose workflow never started was undone (or an invoice's approval ended without approval);
        # the same request (and workflow id) is reused.
        previous = await requests.request(sql, previous_id, lock=True)
        pinned = Opening(**{**pinned.__dict__, "round": previous.round + 1})
        request = await requests.reopen_request(sql, previous.id, pinned)
    else:
        # A generic request is named by its own id, drawn first; an entry's or an invoice's by its subject (the
        # INSERT draws the id).
        request_id = await requests.new_request_id(sql) if entry is None and invoice is None else None
        subject_id = entry.id if entry is not None else invoice.id if invoice is not None else request_id
        request = await requests.insert_request(
            sql,
            request_id=request_id,
            subject_kind=opening.subject_kind,
            entry_id=entry.id if entry is not None else None,
            invoice_id=invoice.id if invoice is not None else None,
            requester_id=opening.requester_id,
            workflow_id=opening.workflow_id_for(opening.subject_kind, subject_id),
            opening=pinned,
        )
    work = Work(sql, request, None, People(sql), limits, opening.timers, opening.now)
    work.people.know(*managers)
    findings = Findings()
    if entry is not None:
        assert opening.fx is not None, "an entry's submit locks its rate first"
        work.entry = await entries.submit(sql, entry.id, request, opening.now, opening.fx)
        # Its base amount is locked now: what the check compares. It warns, it never refuses.
        findings = await check_expense(sql, work.entry, opening.duplicates)
    if invoice is not None:
        assert opening.fx is not None, "an invoice's submit locks its rate first"
        await issuing.submitted(sql, invoice.id, request, opening.fx, opening.now)
    first_step: StepInfo | None = None
    routed: Route | None = None
    if rule:
        await work.set_status(RequestStatus.APPROVED)
    else:
        first = chain[0]
        need = rules.need_of(first.limit, opening.amount)
        line = line_at(managers, first.approver_id)
        routed = await work.route(first.approver_id, need, level=0, line=line, fresh_round=True)
        step = await work.open_step(routed, 0, first=not restarted)
        first_step = await work.step_info(step)
    request = work.request
    changes: dict[str, Any] = {
        "status": ["draft" if entry is not None or invoice is not None else None, request.status],
        "workflow_id": request.workflow_id,
        "policy_version": opening.policy_version,
        "chain": request.chain,
        "round": request.round,
    }
    if opening.fx is not None:
        changes |= _fx_changes(opening.fx)
    if budget is not None and budget.charges:
        changes["budgets"] = budget.flags()
    if rule:
        changes["auto_approved_by_rule"] = rule
    if routed is not None and routed.passed_over:
        changes["passed_over"] = list(routed.passed_over)
    if findings.found_ids:
        changes["possible_duplicates"] = findings.for_audit()
    start = ApprovalInput(
        request_id=request.id,
        subject_kind=request.subject_kind,
        subject_id=subject_id_of(request),
        entry_id=request.entry_id,
        requester_id=request.requester_id,
        title=request.title,
        amount=request.amount,
        fx=locked_rate(opening.fx),
        policy_version=request.policy_version,
        limits={role: dict(values) for role, values in limits.items()},
        chain=chain,
        first_step=first_step,
        auto_approve_rule=rule,
        timers=opening.timers,
        link=link_for(request),
        history_limit=opening.history_limit,
    )
    # The outbox row before the audit row: what follows the audit row waits on the audit chain's lock (held to the
    # commit, one transaction at a time), so it is kept short.
    attributes = outbox.search_attributes(start, request.status)
    names = await work.people.names({request.requester_id, *(link.approver_id for link in chain)})
    metadata = approval_metadata(request, work.entry, chain, names, auto_approve_rule=rule)
    outbox_id = await outbox.add_start(
        sql, request.id, request.workflow_id, start, attributes, replace=restarted, metadata=metadata
    )
    await work.audit(
        work.acting(context).with_rule(rule or context.policy_rule),
        _subject_action(request, "submitted", "approval_request.created"),
        changes,
    )
    if budget is not None and opening.fx is not None:  # last, after the audit row (domain/budgets/ledger.py)
        await budgets.commit(sql, budget, request, opening.fx.base_currency)
        if rule:
            await budgets.settle(sql, request)
    return Submission(request, work.entry, start, restarted, outbox_id, findings, metadata)


async def undo_submission(sql: Sql, request_id: int, reason: str, context: AuditContext) -> RequestRow:
    """The workflow could not start: put the entry back to draft (generic requests end withdrawn)."""
    request = await requests.request(sql, request_id, lock=True)
    if request.status != RequestStatus.PENDING:
        return request
    await requests.close_pending_steps(sql, request.id, StepStatus.WITHDRAWN, None)
    request = await requests.set_request_status(sql, request.id, RequestStatus.WITHDRAWN, None)
    await outbox.cancel(sql, request.id)
    held = await budgets.open_commitments(sql, request)
    entry = await entries.unsubmit(sql, request.entry_id) if request.entry_id is not None else None
    if request.invoice_id is not None:
        await invoices.update_invoice(sql, request.invoice_id, {"status": issuing.DRAFT})
    resource_type, resource_id = _audit_target(request)
    await record(
        sql,
        context.acting(workflow_id=request.workflow_id),
        _subject_action(request, "submit_undone", "approval_request.start_failed"),
        resource_type,
        resource_id,
        {"status": ["pending", entry.status if entry else request.status], "reason": reason}
        | ({"budgets_released": held} if held else {}),
    )
    await budgets.release(sql, request, "submission undone")  # last, after the audit row (domain/budgets/ledger.py)
    return request


# --- transitions (run by the workflow's activities) -----------------------------------------------------------


async def announce_first_step(sql: Sql, job: AnnounceJob) -> DecisionOutcome:
    """Notify the first approver (run by the workflow once it has started, so a failed start notifies nobody), and
    confirm the start in the outbox: the relay has nothing left to deliver for it."""
    request, step, entry = await requests.request_with_open_step(sql, job.request_id)
    if job.first_step_id is not None:
        await outbox.started(sql, request.id, job.first_step_id)
    work = Work(sql, request, entry, People(sql), job.limits, job.timers, job.now)
    notices: list[Notice] = []
    if step is not None:
        await work.people.load(request.requester_id, step.approver_id, step.delegate_id)
        notices = await work.notifier.step_waiting(step)
    return await work.outcome(step, changed=False, notices=notices)


async def record_decision(sql: Sql, job: RecordDecisionJob) -> DecisionOutcome:
    """Close the step with the decision and, in the same transaction, open the next level or end the request.

    Who decided is checked here, against the database, whoever sent the decision (the API, or an update sent
    straight to Temporal): the job's actor and `acting_for` are claims, not facts (rules.authority). Who is asked
    next is decided here too (rules.route), from what the database says of this round."""
    request = await requests.request(sql, job.request_id, lock=True)
    step, entry = await requests.step_with_entry(sql, job.step_id, request.entry_id)  # after the lock: as it is now
    if step is None or step.request_id != request.id:
        raise NotFound("approval step not found", id=job.step_id)
    work = Work(sql, request, entry, People(sql), job.limits, job.timers, job.now)
    target = STEP_STATUS_FOR_ACTION[job.action]
    if step.status != StepStatus.PENDING:
        if step.status == target and step.decided_by_id == job.actor_id:
            return await _replayed_decision(work, step, job.comment)
        raise InvalidState("this step was already decided", step=step.sequence, status=step.status)
    if request.status != RequestStatus.PENDING:
        raise InvalidState(f"the request is {request.status}")
    authority = await rules.authority(sql, request, step, job.actor_id, job.limits, job.now, work.people)
    old_status = request.status
    delegate = job.actor_id if authority.acting_for is not None else None
    step = await requests.decide_step(sql, step.id, target, job.actor_id, job.now, job.comment, delegate)
    notices: list[Notice] = []
    new_step: StepRow | None = None  # the request's only open step from here on, if any
    changes: dict[str, Any] = {
        "decision": job.action,
        "step": step.sequence,
        "level": step.level,
        "round": step.round,
        "approver_id": step.approver_id,
    }
    routed = await _next_level(work, step, authority) if job.action == "approve" else None
    if routed is not None:
        new_step = await work.open_step(routed, step.level + 1)
        notices += await work.notifier.step_waiting(new_step)
        changes["next_approver_id"] = routed.approver_id
        if routed.delegate_id is not None:
            changes["next_delegate_id"] = routed.delegate_id
        if routed.passed_over:
            changes["passed_over"] = list(routed.passed_over)
    else:
        await work.set_status(_REQUEST_STATUS_FOR_ACTION[job.action])
        notices += await work.notifier.outcome(job.comment, job.actor_id)
    changes["status"] = [old_status, work.request.status]
    if authority.acting_for is not None:
        changes["on_behalf_of"] = authority.acting_for
    if job.comment:
        changes["comment"] = job.comment
    await work.audit(work.acting(job.audit, job.actor_id).with_rule(step.rule), f"approval.{target}", changes)
    if new_step is None:
        # The saga's last move, last in the transaction (domain/budgets/ledger.py): approved, the commitment becomes
        # actual spend; rejected or sent back for changes, it is given back.
        if job.action == "approve":
            await budgets.settle(sql, work.request)
        else:
            await budgets.release(sql, work.request, job.action)
    return await work.outcome(new_step, decided_step_id=step.id, notices=notices)


async def _next_level(work: Work, step: StepRow, authority: rules.Authority) -> Route | None:
    """After an approval: who decides the next level, or None when the request is approved.

    The chain's next level goes to its approver, or, when they have decided already this round (or may not now),
    to the next distinct person above whose limit covers the amount. Without a next level, the request is approved
    only when the decider's limit covers the amount; else it goes to the next such person above the step's
    approver (rule 5)."""
    amount = work.request.amount
    following = [link for link in chain_links(work.request) if link.level > step.level]
    if following:
        link = min(following, key=lambda candidate: candidate.level)
        return await work.route(link.approver_id, rules.need_of(link.limit, amount), level=step.level + 1)
    if covers(authority.limit, amount):
        return None
    return await work.route(step.approver_id, amount, include_start=False, level=step.level + 1)


async def _replayed_decision(work: Work, step: StepRow, comment: str | None) -> DecisionOutcome:
    """A retried activity after its first run committed: the same answer, and the same (deduplicated) notices."""
    notices: list[Notice] = []
    request = work.request
    following = await requests.pending_step(work.sql, request.id)
    if request.status == RequestStatus.PENDING and following is not None and following.sequence > step.sequence:
        notices += await work.notifier.step_waiting(following)
    else:
        notices += await work.notifier.outcome(comment, step.decided_by_id)
    return await work.outcome(following, decided_step_id=step.id, notices=notices)


async def remind_step(sql: Sql, job: StepJob) -> DecisionOutcome:
    work = await Work.locked(sql, job)
    step = await requests.step(sql, job.step_id)
    if step is None or step.status != StepStatus.PENDING or work.request.status != RequestStatus.PENDING:
        return await work.as_it_stands()
    if step.reminded_at is None:
        step = await requests.set_step_reminded(sql, step.id, job.now)
        await work.audit(
            AuditContext(workflow_id=work.request.workflow_id),
            "approval.reminded",
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": step.delegate_id},
        )
    await work.load_entry()
    return await work.outcome(step, notices=await work.notifier.reminder(step))


async def escalate_step(sql: Sql, job: StepJob) -> DecisionOutcome:
    """Move an overdue step to the next approver up the hierarchy (the step's approver's manager with a limit)."""
    work = await Work.locked(sql, job)
    request = work.request
    step = await requests.step(sql, job.step_id)
    if step is None or request.status != RequestStatus.PENDING:
        return await work.as_it_stands()
    await work.load_entry()
    if step.status == StepStatus.ESCALATED:
        following = await requests.pending_step(sql, request.id)
        notices = await work.notifier.escalation(step, following) if following else []
        return await work.outcome(following, notices=notices)
    if step.status != StepStatus.PENDING:
        return await work.as_it_stands()
    excluded = await rules.decided_in_round(sql, request) | {step.approver_id}
    if step.delegate_id is not None:
        excluded.add(step.delegate_id)
    target = await rules.route(
        sql, request, step.approver_id, request.amount, job.limits, job.now, excluded=excluded, include_start=False
    )
    if target is None:
        return await work.outcome(step, changed=False)  # nobody above may: the step keeps waiting (or expires)
    step = await requests.close_step(sql, step.id, StepStatus.ESCALATED, job.now)
    new_step = await work.open_step(target, step.level)
    notices = await work.notifier.escalation(step, new_step)
    changes: dict[str, Any] = {
        "step": [step.sequence, new_step.sequence],
        "approver_id": [step.approver_id, new_step.approver_id],
    }
    if target.passed_over:
        changes["passed_over"] = list(target.passed_over)
    await work.audit(
        AuditContext(workflow_id=request.workflow_id).with_rule(new_step.rule), "approval.escalated", changes
    )
    return await work.outcome(new_step, notices=notices)


async def expire_request(sql: Sql, job: TransitionJob) -> DecisionOutcome:
    work = await Work.locked(sql, job)
    request = work.request
    if request.status == RequestStatus.EXPIRED:
        await work.load_entry()
        return await work.outcome(None, notices=await work.notifier.outcome(None))
    if request.status not in OPEN_STATUSES:
        return await work.as_it_stands()
    old_status = request.status
    await requests.close_pending_steps(sql, request.id, StepStatus.EXPIRED, job.now)
    await work.set_status(RequestStatus.EXPIRED)
    await work.audit(
        AuditContext(workflow_id=request.workflow_id),
        "approval.expired",
        {"status": [old_status, RequestStatus.EXPIRED], "round": request.round},
    )
    await budgets.release(sql, request, "expired")  # last, after the audit row (domain/budgets/ledger.py)
    return await work.outcome(None, notices=await work.notifier.outcome(None))


async def withdraw_request(sql: Sql, job: OwnerJob) -> DecisionOutcome:
    work = await Work.locked(sql, job)
    request = work.request
    if request.requester_id != job.actor_id:
        raise Forbidden("only the requester may withdraw")
    if request.status == RequestStatus.WITHDRAWN:
        return await work.outcome(await requests.pending_step(sql, request.id))
    if request.status not in OPEN_STATUSES:
        raise InvalidState(f"the request is {request.status}; only a pending one can be withdrawn")
    old_status = request.status
    await requests.close_pending_steps(sql, request.id, StepStatus.WITHDRAWN, job.now)
    await work.set_status(RequestStatus.WITHDRAWN)
    await work.audit(
        work.acting(job.audit, job.actor_id),
        _subject_action(request, "withdrawn", "approval_request.withdrawn"),
        {"status": [old_status, RequestStatus.WITHDRAWN], "round": request.round},
    )
    await budgets.release(sql, request, "withdrawn")  # last, after the audit row (domain/budgets/ledger.py)
    return await work.outcome(None)


async def open_round(
    sql: Sql,
    job: ResubmitJob,
    terms: Terms,
    receipt_required_above: Decimal | None = None,
    duplicates: DuplicateRules = DuplicateRules(),
) -> DecisionOutcome:
    """A resubmission after changes: a new round whose chain is recomputed (the amount may have changed) with the
    limits pinned at the first submit. An expense above `receipt_required_above` (the worker's setting) needs a
    stored receipt, as at the first submit, and is checked for possible duplicates again (`duplicates`)."""
    work = await Work.locked(sql, job)
    request = work.request
    if request.requester_id != job.actor_id:
        raise Forbidden("only the requester may resubmit")
    if request.round >= job.round and request.status == RequestStatus.PENDING:
        step = await requests.pending_step(sql, request.id)
        await work.load_entry()
        notices = await work.notifier.step_waiting(step) if step else []
        return await work.outcome(step, notices=notices)
    if request.status != RequestStatus.CHANGES_REQUESTED:
        raise InvalidState(f"the request is {request.status}; only one returned for changes can be resubmitted")
    if request.entry_id is not None:
        # Locked before its amount is read: an edit waits, then finds it pending (409); an edit that got there first
        # is the amount the new chain is computed for.
        work.entry = await entries.get(sql, request.entry_id, lock=True)
        if work.entry is None or work.entry.status != RequestStatus.CHANGES_REQUESTED:
            raise InvalidState("the entry is no longer returned for changes")
    entry = work.entry
    fx: Locked | None = None
    findings = Findings()
    if entry is not None:  # a resubmit is a submit: the rate is locked again, for the entry as it is now
        fx = await fx_rates.lock(sql, entry.currency, entry.amount, entry.entry_date, terms)
        await require_receipt(sql, entry, fx.base_amount, receipt_required_above, fx.base_currency)
        work.entry = entry = await entries.relock(sql, entry.id, fx)
        findings = await check_expense(sql, entry, duplicates)  # and checked again, as it is now
    elif request.invoice_id is not None:  # the invoice as its draft now stands (edited after it came back)
        invoice = await invoices.invoice(sql, request.invoice_id, lock=True)
        if invoice.status != issuing.DRAFT:
            raise InvalidState("the invoice is no longer a draft returned for changes")
        fx = await fx_rates.lock(sql, invoice.currency, invoice.total, invoice.issue_date, terms)
        await invoices.update_invoice(sql, invoice.id, issuing.locked_rate_fields(fx))
    amount = fx.base_amount if fx is not None else request.amount
    managers = await manager_chain(sql, request.requester_id)
    work.people.know(*managers)
    budget: budgets.Assessment | None = None
    if entry is not None and entry.kind == budgets.EXPENSE:
        assert fx is not None
        budget = await _assess(sql, entry, managers, amount)
        budgets.enforce(budget, fx.base_currency)  # refused: the request stays returned for changes
    chain = approval_chain_for(amount, candidates(managers), job.limits)
    if budget is not None:
        chain = await _with_budget_level(sql, chain, managers, budget, job.limits, request.requester_id)
    opening = Opening(
        title=entry.approval_title if entry is not None else request.title,
        justification=request.justification,
        amount=amount,
        policy_version=request.policy_version,
        chain=_chain_json(chain),
        round=job.round,
        submitted_at=job.now,
        limits=job.limits,
        fx=fx,
    )
    work.request = await requests.reopen_request(sql, request.id, opening)
    await work.set_status(RequestStatus.PENDING)
    need = rules.need_of(chain[0].limit, amount)
    line = line_at(managers, chain[0].approver_id)
    routed = await work.route(chain[0].approver_id, need, level=0, line=line, fresh_round=True)
    step = await work.open_step(routed, 0)
    notices = await work.notifier.step_waiting(step)
    await work.audit(
        work.acting(job.audit, job.actor_id),
        _subject_action(request, "resubmitted", "approval_request.resubmitted"),
        {
            "status": [RequestStatus.CHANGES_REQUESTED, RequestStatus.PENDING],
            "round": job.round,
            "chain": work.request.chain,
            "amount": str(amount) if amount is not None else None,
            **(_fx_changes(fx) if fx is not None else {}),
            **({"budgets": budget.flags()} if budget is not None and budget.charges else {}),
            **({"possible_duplicates": findings.for_audit()} if findings.found_ids else {}),
        },
    )
    if budget is not None and fx is not None:  # last, after the audit row (domain/budgets/ledger.py)
        await budgets.commit(sql, budget, work.request, fx.base_currency)
    return await work.outcome(step, notices=notices)


async def reroute_step(sql: Sql, job: RerouteJob) -> DecisionOutcome:
    """Point an open step at the approver's delegate (or back at the approver when `delegate_id` is None). The job's
    audit context is the request that changed the delegation (its user is the actor of the audit row)."""
    work = await Work.locked(sql, job)
    request = work.request
    step = await requests.step(sql, job.step_id)
    if (
        step is None
        or step.status != StepStatus.PENDING
        or request.status != RequestStatus.PENDING
        or job.delegate_id == request.requester_id
    ):
        return await work.as_it_stands()
    notices: list[Notice] = []
    if step.delegate_id != job.delegate_id:
        old = step.delegate_id
        step = await requests.set_step_delegate(sql, step.id, job.delegate_id)
        await work.audit(
            work.acting(job.audit),
            "approval.rerouted",
            {"step": step.sequence, "approver_id": step.approver_id, "delegate_id": [old, job.delegate_id]},
        )
    if job.delegate_id is not None:
        await work.load_entry()
        notices += await work.notifier.delegated(step, job.delegate_id)
    return await work.outcome(step, notices=notices)


async def refresh_step(sql: Sql, job: TransitionJob) -> DecisionOutcome:
    """The request as the database has it after it re-routed the open step: tell whoever it now waits on (the same
    notice the re-routing created, so in-app it is one; its email goes out now)."""
    request, step, entry = await requests.request_with_open_step(sql, job.request_id)
    work = Work(sql, request, entry, People(sql), job.limits, job.timers, job.now)
    notices: list[Notice] = []
    if step is not None and request.status == RequestStatus.PENDING:
        notices = await work.notifier.step_waiting(step, rerouted=True)
    return await work.outcome(step, changed=False, notices=notices)
