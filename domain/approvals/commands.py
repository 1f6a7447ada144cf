"""What people ask of approvals: submit an entry, decide, withdraw, resubmit, open a generic request, delegate.

Each command is the whole sequence, written once here: claim the Idempotency-Key (a repeat gets the first answer),
read and check what the database knows, commit, tell the workflow (start it, or send it an Update) and answer with
the state the workflow's activity committed. The workflow's validators and the transitions check again against their
own, authoritative state; the checks here answer early and clearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from core.authz import Authorizer
from core.db import Tx
from core.engine import WorkflowEngine
from core.settings import Settings
from domain.approvals import delegations, outbox, queries, rules
from domain.approvals import repository as requests
from domain.approvals.lifecycle import ApprovalLifecycle, timers_from, update_id, workflow_url
from domain.approvals.repository import WaitingStep
from domain.approvals.rerouting import reroute_request
from domain.approvals.schemas import ApprovalRequestOut, DelegationOut, GenericRequestCreate
from domain.approvals.transitions import (
    FINAL_STATUSES,
    STEP_STATUS_FOR_ACTION,
    RequestOpening,
    open_request,
)
from domain.audit.service import AuditContext
from domain.auth import rate_limits
from domain.duplicates import queries as duplicates
from domain.duplicates.check import rules_from
from domain.duplicates.schemas import PossibleDuplicate
from domain.entries import repository as entries
from domain.entries import service as entry_rules
from domain.entries.schemas import EntryOut
from domain.errors import DomainError, Forbidden, InvalidState, NotFound, ValidationFailed
from domain.fx import rates as fx_rates
from domain.fx.rates import Locked, terms_from
from domain.idempotency.once import Replayed, once
from domain.models import EntryKind, EntryStatus, RequestStatus, User
from domain.models.rows import EntryRow, RequestRow, StepRow
from domain.money import fits, minor_units
from workflows.contracts import DecisionRequest, OwnerAction, approval_workflow_id

Action = Literal["approve", "reject", "request_changes"]
OwnerVerb = Literal["withdraw", "resubmit"]


@dataclass(frozen=True)
class Caller:
    """Who asks: the user, where from (the audit context), and the Idempotency-Key they sent, if any."""

    user: User
    audit: AuditContext
    key: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A decision as asked for: the action, and the comment (the reason, for a rejection)."""

    action: Action
    comment: str | None = None

    def body(self) -> dict[str, str | None]:
        """The request body as the client sent it (what an Idempotency-Key's request is recognised by)."""
        return {"reason" if self.action == "reject" else "comment": self.comment}


@dataclass(frozen=True)
class _Decision:
    """The update a decision sends. `if_refused` is set when it re-sends a decision the database recorded already:
    the answer to give if the workflow, which heard of it, refuses it."""

    update: DecisionRequest
    if_refused: DomainError | None = None


class ApprovalCommands:
    def __init__(self, settings: Settings, authorizer: Authorizer, engine: WorkflowEngine) -> None:
        self.settings = settings
        self.authorizer = authorizer
        self.lifecycle = ApprovalLifecycle(engine)

    def opening(
        self,
        caller: User,
        entry: EntryRow | None,
        title: str,
        justification: str,
        amount: Decimal | None,
        fx: Locked | None = None,
    ) -> RequestOpening:
        """A submission by `caller` under the policy and settings in force now (pinned for the request's life)."""
        return RequestOpening(
            subject_kind=entry.kind if entry is not None else "generic",
            entry=entry,
            requester_id=caller.id,
            requester_role=caller.role,
            title=title,
            justification=justification,
            amount=amount,
            limits=self.authorizer.limits_snapshot(),
            policy_version=self.authorizer.version,
            timers=timers_from(self.settings),
            now=datetime.now(UTC),
            workflow_id_for=approval_workflow_id,
            history_limit=self.settings.approvals.history_limit,
            fx=fx,
            receipt_required_above=self.settings.attachments.receipt_required_above,
            duplicates=rules_from(self.settings),
        )

    # --- entries -----------------------------------------------------------------------------------------------

    async def submit_entry(self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int) -> EntryOut | Replayed:
        """Pin the chain and the policy version, then start the entry's approval workflow. An entry returned for
        changes continues the same workflow in a new round. 503 when the engine is away (nothing changes)."""
        scope = f"POST /{entry_rules.PATHS[kind]}/{entry_id}/submit"
        return await _once(tx, caller, scope, None, 200, self._submit_entry, tx, caller, kind, entry_id)

    async def _submit_entry(self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int) -> EntryOut:
        user = caller.user
        entry = await entry_rules.visible_entry(tx, self.authorizer, user, kind, entry_id, lock=True)
        if entry.status == EntryStatus.CHANGES_REQUESTED and entry.approval_request_id is not None:
            entry_rules.owned(entry, user, "submit")
            await self._owner_update(tx, caller, await requests.request(tx.sql, entry.approval_request_id), "resubmit")
            resubmitted = await self._entry_now(tx, entry.id)
            if kind == EntryKind.EXPENSE:  # as the resubmission's check (in the workflow's activity) left them
                resubmitted.possible_duplicates = await duplicates.of_entry(tx.sql, entry.id)
            return resubmitted
        entry_rules.check_submittable(entry, user)
        terms = terms_from(self.settings)
        fx = await fx_rates.lock(tx.sql, entry.currency, entry.amount, entry.entry_date, terms)
        opening = self.opening(user, entry, entry.approval_title, entry.description, fx.base_amount, fx)
        submission = await open_request(tx.sql, opening, caller.audit)
        await self.lifecycle.start_or_undo(tx, submission, caller.audit)
        assert submission.entry is not None
        out = EntryOut.model_validate(submission.entry)  # as this request committed it
        if kind == EntryKind.EXPENSE:
            out.possible_duplicates = [PossibleDuplicate.of(row) for row in submission.duplicates.rows]
        return out

    async def decide_entry(
        self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int, verdict: Verdict
    ) -> EntryOut | Replayed:
        """Only the current step's approver (or their delegate in force) decides, never on their own entry (403); a
        step no longer open is 409. The answer shows the committed state."""
        scope = f"POST /{entry_rules.PATHS[kind]}/{entry_id}/{verdict.action}"
        return await _once(tx, caller, scope, verdict.body(), 200, self._decide_entry, tx, caller, kind, entry_id,
            verdict,
        )  # fmt: skip

    async def _decide_entry(self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int, verdict: Verdict) -> EntryOut:
        found = await entries.with_approval(tx.sql, entry_id, kind.value)
        if found is None:
            raise NotFound(f"{kind.value} entry not found", id=entry_id)
        entry, request, step = found
        # The pending step's own approver or delegate sees the entry by that alone: no visibility query for them.
        if step is None or caller.user.id not in (step.approver_id, step.delegate_id):
            await entry_rules.check_visible(tx, self.authorizer, caller.user, entry)
        if request is None:
            raise InvalidState(f"this {entry_rules.noun(kind)} was never submitted")
        await self._decide(tx, caller, request, step, verdict)
        return await self._entry_now(tx, entry.id)

    async def withdraw_entry(self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int) -> EntryOut | Replayed:
        """Ends the approval cleanly: its workflow completes and the entry reads `withdrawn`."""
        scope = f"POST /{entry_rules.PATHS[kind]}/{entry_id}/withdraw"
        return await _once(tx, caller, scope, None, 200, self._withdraw_entry, tx, caller, kind, entry_id)

    async def _withdraw_entry(self, tx: Tx, caller: Caller, kind: EntryKind, entry_id: int) -> EntryOut:
        entry = await entry_rules.visible_entry(tx, self.authorizer, caller.user, kind, entry_id)
        entry_rules.owned(entry, caller.user, "withdraw")
        if entry.approval_request_id is None or entry.status not in (
            EntryStatus.PENDING,
            EntryStatus.CHANGES_REQUESTED,
        ):
            raise InvalidState(f"only a pending entry can be withdrawn; this one is {entry.status}")
        await self._owner_update(tx, caller, await requests.request(tx.sql, entry.approval_request_id), "withdraw")
        return await self._entry_now(tx, entry.id)

    async def _entry_now(self, tx: Tx, entry_id: int) -> EntryOut:
        """The entry as the workflow's activity committed it (it did before the workflow answered)."""
        entry = await entries.get(tx.sql, entry_id)
        if entry is None:
            raise NotFound("entry not found", id=entry_id)
        return EntryOut.model_validate(entry)

    # --- generic requests --------------------------------------------------------------------------------------

    async def create_request(self, tx: Tx, caller: Caller, body: GenericRequestCreate) -> ApprovalRequestOut | Replayed:
        """A request for approval of anything: the same chain, limits and lifecycle as an entry."""
        scope, asked = "POST /approvals", body.model_dump(mode="json")
        return await _once(tx, caller, scope, asked, 201, self._create_request, tx, caller, body)

    async def _create_request(self, tx: Tx, caller: Caller, body: GenericRequestCreate) -> ApprovalRequestOut:
        base = self.settings.approvals.base_currency
        maximum = self.settings.approvals.max_entry_amount
        if body.amount is not None and not fits(body.amount, base):
            raise ValidationFailed(f"a request's amount is in {base}, which has {minor_units(base)} decimal places",
                                   field="amount")  # fmt: skip
        if body.amount is not None and body.amount > maximum:
            raise ValidationFailed(f"amount must not exceed {maximum}", field="amount")
        opening = self.opening(caller.user, None, body.title, body.justification, body.amount)
        submission = await open_request(tx.sql, opening, caller.audit)
        await self.lifecycle.start_or_undo(tx, submission, caller.audit)
        return await self.request_view(tx, submission.request.id)

    async def decide_request(
        self, tx: Tx, caller: Caller, request_id: int, verdict: Verdict
    ) -> ApprovalRequestOut | Replayed:
        scope = f"POST /approvals/{request_id}/{verdict.action}"
        return await _once(tx, caller, scope, verdict.body(), 200, self._decide_request, tx, caller, request_id,
            verdict,
        )  # fmt: skip

    async def _decide_request(self, tx: Tx, caller: Caller, request_id: int, verdict: Verdict) -> ApprovalRequestOut:
        request = await queries.visible_request(tx, self.authorizer, caller.user, request_id, datetime.now(UTC))
        await self._decide(tx, caller, request, await requests.pending_step(tx.sql, request.id), verdict)
        return await self.request_view(tx, request.id)

    async def request_owner_action(
        self, tx: Tx, caller: Caller, request_id: int, verb: OwnerVerb
    ) -> ApprovalRequestOut | Replayed:
        """`withdraw` or `resubmit` one's own request."""
        scope = f"POST /approvals/{request_id}/{verb}"
        return await _once(tx, caller, scope, None, 200, self._request_owner_action, tx, caller, request_id, verb)

    async def _request_owner_action(
        self, tx: Tx, caller: Caller, request_id: int, verb: OwnerVerb
    ) -> ApprovalRequestOut:
        request = await queries.visible_request(tx, self.authorizer, caller.user, request_id, datetime.now(UTC))
        if request.requester_id != caller.user.id:
            raise Forbidden(f"only the requester may {verb} this request")
        await self._owner_update(tx, caller, request, verb)
        return await self.request_view(tx, request.id)

    async def request_view(self, tx: Tx, request_id: int, *, live: bool = False) -> ApprovalRequestOut:
        """The request as committed now; with `live`, what its workflow says right now (left out when it cannot
        answer in time)."""
        request = await requests.request(tx.sql, request_id)
        status = None
        if live and request.status not in FINAL_STATUSES:
            status = await self.lifecycle.live_status(request.workflow_id)
        return await queries.request_view(
            tx,
            request.id,
            self.settings.approvals.base_currency,
            workflow_url(self.settings, request.workflow_id),
            status,
        )

    # --- decisions and the owner's actions, whatever the subject -----------------------------------------------

    async def _decide(
        self, tx: Tx, caller: Caller, request: RequestRow, step: StepRow | None, verdict: Verdict
    ) -> None:
        decision = await self._decision(tx, caller, request, step, verdict)
        await tx.commit()  # the key's claim is stored; nothing is held open while the workflow decides
        try:
            await self.lifecycle.update(
                request.workflow_id, "decide", decision.update, update_id(caller.user.id, "decide", caller.key)
            )
        except (InvalidState, Forbidden, NotFound):
            if decision.if_refused is None:
                raise
            raise decision.if_refused from None  # the workflow had it already: answer as the database does

    async def _decision(
        self, tx: Tx, caller: Caller, request: RequestRow, step: StepRow | None, verdict: Verdict
    ) -> _Decision:
        """Check what the database knows of the request and its pending `step` (403 own request, 409 nothing open,
        403 someone else's step) and build the update's argument."""
        user = caller.user
        if user.id == request.requester_id:
            raise Forbidden("nobody decides on their own request")
        if request.status != RequestStatus.PENDING or step is None:
            refusal = InvalidState(
                f"the request is {request.status}; no step waits for a decision", status=request.status
            )
            return _catch_up(await requests.steps_of(tx.sql, request.id), request, caller, verdict, refusal)
        # Who the caller decides as, for an early and clear answer; the rule in full (one decision per round, the
        # limit, an active delegator) is checked where the decision is recorded, whoever sends it.
        try:
            acting_for = await rules.acting_for(tx.sql, step, user.id, request.requester_id, datetime.now(UTC))
        except Forbidden:
            steps = await requests.steps_of(tx.sql, request.id)
            if not _decided_earlier(steps, user):
                raise
            refusal = InvalidState("the step you could decide has already been decided")
            return _catch_up(steps, request, caller, verdict, refusal)
        return _decision(caller, verdict, step.id, acting_for)

    async def _owner_update(self, tx: Tx, caller: Caller, request: RequestRow, verb: OwnerVerb) -> None:
        await tx.commit()
        action = OwnerAction(actor_id=caller.user.id, audit=caller.audit)
        await self.lifecycle.update(request.workflow_id, verb, action, update_id(caller.user.id, verb, caller.key))

    # --- delegation --------------------------------------------------------------------------------------------

    async def set_delegation(
        self, tx: Tx, caller: Caller, delegate_id: int, starts: datetime, ends: datetime
    ) -> DelegationOut:
        """Replaces any earlier delegation. Steps already waiting on the caller go to whoever should decide them
        now (the delegate, when their own authority covers the step; else the caller's next approver): listed in
        `rerouted`. A workflow the engine could not be told of now is listed in `reroute_failed` (it hears of it
        within seconds, from the outbox relay; the delegate may decide meanwhile)."""
        await rate_limits.hit(tx, self._delegation_limit(), str(caller.user.id))
        now = datetime.now(UTC)
        delegation, waiting = await delegations.set_delegation(
            tx.sql, caller.user, delegate_id, starts, ends, now, caller.audit, self.authorizer.limits_snapshot()
        )
        rerouted, failed = await self._reroute(tx, caller, waiting, now, "delegation set")
        out = DelegationOut.model_validate(delegation)
        out.active = delegation.starts <= now < delegation.ends
        out.rerouted, out.reroute_failed = rerouted, failed
        return out

    async def revoke_delegation(self, tx: Tx, caller: Caller) -> None:
        """End the caller's delegation; the steps waiting on them come back."""
        await rate_limits.hit(tx, self._delegation_limit(), str(caller.user.id))
        now = datetime.now(UTC)
        waiting = await delegations.revoke_delegation(tx.sql, caller.user, now, caller.audit)
        await self._reroute(tx, caller, waiting, now, "delegation ended")

    async def _reroute(
        self, tx: Tx, caller: Caller, waiting: list[WaitingStep], now: datetime, reason: str
    ) -> tuple[list[str], list[str]]:
        """Re-route the steps (in this transaction), commit, and tell their workflows (only those that changed)."""
        messages: dict[int, str] = {}
        for step in waiting:
            message = await reroute_request(tx.sql, step.request_id, now, caller.audit, reason)
            if message is not None:
                messages[message] = step.workflow_id
        await tx.commit()
        failed = await outbox.deliver(tx.sql, self.lifecycle.engine, list(messages))
        return [workflow_id for workflow_id in messages.values() if workflow_id not in failed], failed

    def _delegation_limit(self) -> rate_limits.Limit:
        per_hour = self.settings.approvals.delegation_changes_per_hour
        return rate_limits.Limit("delegation:user", "delegation changes", per_hour, 3600)


async def _once(
    tx: Tx, caller: Caller, scope: str, body: object, status_code: int, command: Any, *arguments: object
) -> Any:
    """The command once per the caller's Idempotency-Key (domain/idempotency/once.py)."""
    return await once(tx, caller.user.id, caller.key, scope, body, status_code, command, *arguments)


def _decision(
    caller: Caller, verdict: Verdict, step_id: int, acting_for: int | None, if_refused: DomainError | None = None
) -> _Decision:
    update = DecisionRequest(
        action=verdict.action,
        actor_id=caller.user.id,
        step_id=step_id,
        comment=verdict.comment,
        acting_for=acting_for,
        audit=caller.audit,
    )
    return _Decision(update, if_refused)


def _catch_up(
    steps: list[StepRow], request: RequestRow, caller: Caller, verdict: Verdict, refusal: DomainError
) -> _Decision:
    """The caller's own last decision, when it is this same action, sent to the workflow again rather than refused.

    A worker that dies after a transition commits but before its workflow task completes leaves a workflow that
    never heard of the decision (the update dies with the task). The caller's retry is then the only thing that
    can tell it: the workflow accepts the step it still waits on, the transition answers the repeat with what it
    committed, and the workflow catches up. A workflow that did hear refuses the step, and the caller gets
    `refusal`, as before."""
    own = [step for step in steps if step.decided_by_id == caller.user.id]
    if not own or own[-1].status != STEP_STATUS_FOR_ACTION.get(verdict.action) or own[-1].round != request.round:
        raise refusal
    step = own[-1]
    acting_for = step.approver_id if step.approver_id != caller.user.id else None
    return _decision(caller, verdict, step.id, acting_for, if_refused=refusal)


def _decided_earlier(steps: list[StepRow], user: User) -> bool:
    return any(
        step.status != "pending" and user.id in (step.approver_id, step.delegate_id, step.decided_by_id)
        for step in steps
    )
