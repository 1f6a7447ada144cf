"""EntryApprovalWorkflow: one durable approval lifecycle per entry (or generic request).

Submit commits the request and its first step, then starts this workflow (`approval-expense-42`). From there:
- decisions are the `decide` update: validators refuse the requester (403), anyone but the step's approver or
  their delegate (403) and a step that is no longer open (409) without writing history; the handler records the
  decision through an activity (one transaction: step, request, entry, audit row, next step) and returns the
  committed state. A lock serialises handlers, so concurrent approvals give one transition; the rest are 409.
- each step has durable timers: a reminder, then an escalation to the next approver up the hierarchy; an
  optional expiry ends the request. Timers and decisions share the lock, so they never race.
- request-changes returns the request to its owner; the `resubmit` update opens a new round in the same
  workflow (chain recomputed with the limits pinned at submit); `withdraw` ends it.
- the `delegation_changed` signal re-routes an open step to the approver's delegate.
- search attributes (EntryKind, EntryId, ApprovalStatus, CurrentApprover, AmountCents) follow every transition.
- transitions and their emails are local activities (patch LOCAL_ACTIVITIES): they run in the worker inside the
  workflow task, so a whole approval costs the engine two workflow tasks and no activity task. Every transition is
  idempotent and every email deduplicated, so a worker that dies mid-task simply runs them again. An email that
  fails is retried on durable timers, never holding a decision's answer for longer than one attempt.
- a start the API could not confirm (it timed out after the server accepted it) leaves a workflow whose submission
  the API then undid. Its first activity (or a later timer's) finds the request no longer open, or reopened in a
  later round, without this workflow: it ends as "undone" at once, notifying nobody (patch UNDONE_ENDS).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        AMOUNT_CENTS,
        APPROVAL_STATUS,
        CURRENT_APPROVER,
        EMAIL_LOCAL_ATTEMPT,
        EMAIL_RETRY,
        EMAIL_TIMEOUT,
        ENTRY_ID,
        ENTRY_KIND,
        REFUSALS,
        AnnounceJob,
        ApprovalActivity,
        ApprovalInput,
        ApprovalResult,
        ApprovalResume,
        ChainLink,
        DecisionOutcome,
        DecisionRequest,
        DelegationChange,
        LiveStatus,
        OwnerAction,
        OwnerJob,
        RecordDecisionJob,
        RerouteJob,
        ResubmitJob,
        StepChanged,
        StepInfo,
        StepJob,
        TransitionJob,
        amount_cents,
    )

PENDING = "pending"
CHANGES_REQUESTED = "changes_requested"
UNDONE = "undone"  # the submission was undone by the API (its start was not confirmed); only with UNDONE_ENDS
OPEN = frozenset({PENDING, CHANGES_REQUESTED})
FINAL = frozenset({"approved", "rejected", "withdrawn", "expired", UNDONE})

# Patch ids: workflows recorded before a change replay the old logic (tests/approvals/histories).
UNDONE_ENDS = "undone-submission-ends-workflow"
LOCAL_ACTIVITIES = "transitions-and-emails-as-local-activities"
CONTINUES_AS_NEW = "continues-as-new-when-the-history-is-long"

# Database activities: transient failures (a dropped connection, a restarting database) retry without end;
# domain refusals are non-retryable ApplicationErrors and come back to the caller as 403/404/409/422.
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=list(REFUSALS),
)


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "the start"


def _activity_summary(name: str, job: Any) -> str:
    """One line for the activity in the Temporal UI's timeline (ids only: the names are in the details)."""
    step = f"step {job.step_id}" if isinstance(job, StepJob | RecordDecisionJob | RerouteJob) else "the open step"
    if isinstance(job, RecordDecisionJob):
        return f"record {job.action.replace('_', ' ')} by user {job.actor_id} on {step}"
    if isinstance(job, ResubmitJob):
        return f"open round {job.round} (resubmitted by user {job.actor_id})"
    if isinstance(job, OwnerJob):
        return f"withdraw (by user {job.actor_id})"
    words = {
        ApprovalActivity.ANNOUNCE: "announce the first step",
        ApprovalActivity.REMIND: f"remind the approver of {step}",
        ApprovalActivity.ESCALATE: f"escalate {step} up the hierarchy",
        ApprovalActivity.EXPIRE: "expire the request",
        ApprovalActivity.REROUTE: f"re-route {step} to the delegate",
        ApprovalActivity.REFRESH: f"re-read {step} after a change in the database",
    }
    return words.get(name, name)


def _conflict(message: str) -> ApplicationError:
    return ApplicationError(message, type="Conflict", non_retryable=True)


def _forbidden(message: str) -> ApplicationError:
    return ApplicationError(message, type="Forbidden", non_retryable=True)


# Not sandboxed: the sandbox re-imports this module for every run it creates and wraps every activation, which cost
# a fifth of the worker's CPU per approval (docs/benchmarks.md). What it guards, this module keeps by construction:
# time only from workflow.now(), no I/O, no randomness, no global state; tests/approvals/test_replay.py replays
# recorded histories against every change.
@workflow.defn(sandboxed=False)
class EntryApprovalWorkflow:
    @workflow.init
    def __init__(self, request: ApprovalInput) -> None:
        self._input = request
        self._amount = request.amount  # a resubmission after changes may change it
        self._status = PENDING
        self._round = request.first_step.round if request.first_step else 1
        self._chain: list[ChainLink] = list(request.chain)
        self._step: StepInfo | None = None
        self._remind_at: datetime | None = None
        self._escalate_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._since: datetime | None = None  # when the open step, or the owner's turn, began (current details)
        self._changes = 0  # bumped on every transition, so the timer loop re-reads its deadlines
        self._lock = asyncio.Lock()
        self._deciding = False
        self._emails: list[Any] = []
        self._local_activities: bool | None = None  # patch LOCAL_ACTIVITIES, asked once per run (see _local)
        if request.auto_approve_rule:
            self._status = "approved"
        elif request.resume is not None:
            self._resume(request.resume)  # a run continued from a longer history: where the last one stood
        else:
            # Open the first step here, not in run(): an update may arrive in the very first workflow task.
            self._open_step(request.first_step)
            self._restart_expiry()

    # --- run ---------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: ApprovalInput) -> ApprovalResult:
        self._local()  # the patch is decided before the first command
        self._show()
        if request.auto_approve_rule:
            # Approved at submit, in the same transaction, by the recorded rule: nothing waits on anyone.
            self._upsert(initial=True)
            return ApprovalResult(request_id=request.request_id, status=self._status, rounds=self._round)
        self._upsert(initial=True)
        if request.resume is None:
            first_step_id = request.first_step.step_id if request.first_step else None
            announced = await self._activity(
                ApprovalActivity.ANNOUNCE, self._job(AnnounceJob, first_step_id=first_step_id)
            )
            if self._undone_ends():
                async with self._lock:  # a decision recorded meanwhile is applied first: only a foreign change counts
                    self._end_if_undone(announced)
            if self._status != UNDONE:
                self._send(announced)
        while self._status not in FINAL:
            if workflow.info().get_current_history_length() > request.history_limit and workflow.patched(
                CONTINUES_AS_NEW
            ):
                await self._continue_as_new()
            seen = self._changes
            due, kind = self._next_deadline()
            if due is None:
                await workflow.wait_condition(functools.partial(self._moved, seen))
                continue
            remaining = (due - workflow.now()).total_seconds()
            if remaining > 0:
                try:
                    moved = functools.partial(self._moved, seen)
                    await workflow.wait_condition(moved, timeout=timedelta(seconds=remaining))
                    continue
                except TimeoutError:
                    pass
            await self._fire(kind, seen)
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Emails go out durably even after the decision: the workflow ends when they are delivered (or refused).
        await asyncio.gather(*self._emails, return_exceptions=True)
        return ApprovalResult(request_id=request.request_id, status=self._status, rounds=self._round)

    def _moved(self, seen: int) -> bool:
        return self._changes != seen or self._status in FINAL

    # --- queries -----------------------------------------------------------------------------------

    @workflow.query
    def status(self) -> LiveStatus:
        step = self._step if self._status == PENDING else None
        return LiveStatus(
            request_id=self._input.request_id,
            status=self._status,
            round=self._round,
            step=step,
            current_approver_id=self._current_approver(),
            remind_at=self._remind_at if step else None,
            escalate_at=self._escalate_at if step else None,
            expires_at=self._expires_at,
            chain=self._chain,
            policy_version=self._input.policy_version,
        )

    # --- decisions ---------------------------------------------------------------------------------

    @workflow.update
    async def decide(self, decision: DecisionRequest) -> DecisionOutcome:
        async with self._lock:
            self._check_decision(decision)  # again: the state may have moved while this handler waited
            self._deciding = True
            try:
                step = self._step
                assert step is not None
                # Who decided on whose behalf, and who is asked next, the transition works out from the database.
                job = self._job(
                    RecordDecisionJob,
                    step_id=step.step_id,
                    action=decision.action,
                    actor_id=decision.actor_id,
                    comment=decision.comment,
                    audit=decision.audit,
                )
                outcome = await self._activity(ApprovalActivity.RECORD_DECISION, job)
            finally:
                self._deciding = False
            self._apply(outcome)
            return outcome

    @decide.validator
    def _validate_decide(self, decision: DecisionRequest) -> None:
        if self._deciding:
            raise _conflict("another decision on this request is being recorded")
        self._check_decision(decision)

    def _check_decision(self, decision: DecisionRequest) -> None:
        """The request's state, which the workflow knows best. Whether the actor may decide is checked where the
        decision is recorded, against the database (the transition): the update's actor is a claim, whoever sent
        it, and the workflow's view of the approver may lag a reassignment the database has made."""
        if decision.actor_id == self._input.requester_id:
            raise _forbidden("nobody decides on their own request")
        step = self._step
        if self._status != PENDING or step is None:
            raise _conflict(f"the request is {self._status}; no step waits for a decision")
        if decision.step_id != step.step_id:
            raise _conflict("this step was already decided")

    def _delegation_active(self, step: StepInfo) -> bool:
        now = workflow.now()
        if step.delegate_starts is not None and now < step.delegate_starts:
            return False
        return step.delegate_ends is None or now < step.delegate_ends

    # --- the owner's actions -----------------------------------------------------------------------

    @workflow.update
    async def withdraw(self, action: OwnerAction) -> DecisionOutcome:
        async with self._lock:
            self._check_owner(action, {PENDING, CHANGES_REQUESTED}, "withdrawn")
            self._deciding = True
            try:
                outcome = await self._activity(
                    ApprovalActivity.WITHDRAW, self._job(OwnerJob, actor_id=action.actor_id, audit=action.audit)
                )
            finally:
                self._deciding = False
            self._apply(outcome)
            return outcome

    @withdraw.validator
    def _validate_withdraw(self, action: OwnerAction) -> None:
        if self._deciding:
            raise _conflict("a decision on this request is being recorded")
        self._check_owner(action, {PENDING, CHANGES_REQUESTED}, "withdrawn")

    @workflow.update
    async def resubmit(self, action: OwnerAction) -> DecisionOutcome:
        async with self._lock:
            self._check_owner(action, {CHANGES_REQUESTED}, "resubmitted")
            self._deciding = True
            try:
                job = self._job(ResubmitJob, round=self._round + 1, actor_id=action.actor_id, audit=action.audit)
                outcome = await self._activity(ApprovalActivity.RESUBMIT, job)
            finally:
                self._deciding = False
            self._apply(outcome)
            return outcome

    @resubmit.validator
    def _validate_resubmit(self, action: OwnerAction) -> None:
        if self._deciding:
            raise _conflict("a decision on this request is being recorded")
        self._check_owner(action, {CHANGES_REQUESTED}, "resubmitted")

    def _check_owner(self, action: OwnerAction, allowed: set[str], verb: str) -> None:
        if action.actor_id != self._input.requester_id:
            raise _forbidden(f"only the requester may have it {verb}")
        if self._status not in allowed:
            raise _conflict(f"the request is {self._status}; it cannot be {verb}")

    # --- delegation --------------------------------------------------------------------------------

    @workflow.signal
    async def delegation_changed(self, change: DelegationChange) -> None:
        async with self._lock:
            step = self._step
            if self._status != PENDING or step is None or step.approver_id != change.approver_id:
                return
            if step.delegate_id == change.delegate_id and step.delegate_ends == change.ends:
                return
            job = self._job(
                RerouteJob,
                step_id=step.step_id,
                delegate_id=change.delegate_id,
                starts=change.starts,
                ends=change.ends,
                audit=change.audit,
            )
            outcome = await self._activity(ApprovalActivity.REROUTE, job)
            if outcome.changed and outcome.next_step is not None and outcome.next_step.step_id == step.step_id:
                rerouted = outcome.next_step.model_copy(
                    update={"delegate_starts": change.starts, "delegate_ends": change.ends}
                )
                outcome = outcome.model_copy(update={"next_step": rerouted})
                self._apply(outcome, restart_timers=False)
            else:
                self._send(outcome)

    @workflow.signal
    async def step_changed(self, change: StepChanged) -> None:
        """The database re-routed the open step (a delegation set or ended, an approver who can no longer decide,
        the requester's new manager): read it again, tell whoever it now waits on."""
        async with self._lock:
            if self._status != PENDING or self._step is None:
                return
            outcome = await self._activity(ApprovalActivity.REFRESH, self._job(TransitionJob, audit=change.audit))
            if self._end_if_undone(outcome):
                return
            same_step = outcome.next_step is not None and outcome.next_step.step_id == self._step.step_id
            self._apply(outcome, restart_timers=not same_step)

    # --- timers ------------------------------------------------------------------------------------

    def _next_deadline(self) -> tuple[datetime | None, str]:
        candidates: list[tuple[datetime, str]] = []
        if self._expires_at is not None:
            candidates.append((self._expires_at, "expire"))
        if self._status == PENDING and self._step is not None:
            if self._remind_at is not None:
                candidates.append((self._remind_at, "remind"))
            if self._escalate_at is not None:
                candidates.append((self._escalate_at, "escalate"))
        if not candidates:
            return None, ""
        due, kind = min(candidates, key=lambda item: item[0])
        return due, kind

    async def _fire(self, kind: str, seen: int) -> None:
        async with self._lock:
            if self._changes != seen or self._status in FINAL:
                return  # a decision got there first; the loop re-reads the deadlines
            step = self._step
            if kind == "expire":
                outcome = await self._activity(ApprovalActivity.EXPIRE, self._job(TransitionJob))
                if self._end_if_undone(outcome):
                    return
                self._apply(outcome)
                return
            assert step is not None
            if kind == "remind":
                self._remind_at = None
                outcome = await self._activity(ApprovalActivity.REMIND, self._job(StepJob, step_id=step.step_id))
                if self._end_if_undone(outcome):
                    return
                self._send(outcome)
                self._changes += 1
                self._show()
                return
            self._escalate_at = None
            outcome = await self._activity(ApprovalActivity.ESCALATE, self._job(StepJob, step_id=step.step_id))
            if self._end_if_undone(outcome):
                return
            if outcome.changed:
                self._apply(outcome)
            else:
                self._changes += 1  # nobody above: the step keeps waiting (until the expiry, if any)
                self._show(note="nobody above to escalate to")

    def _restart_expiry(self) -> None:
        seconds = self._input.timers.expiry_seconds
        self._expires_at = workflow.now() + timedelta(seconds=seconds) if seconds else None

    # --- a long history ----------------------------------------------------------------------------

    async def _continue_as_new(self) -> None:
        """Go on in a new run with the state as it stands (its history starts afresh): once nothing is being
        handled and every email this run started has gone out."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._emails, return_exceptions=True)
        resume = ApprovalResume(
            status=self._status,
            round=self._round,
            amount=self._amount,
            chain=self._chain,
            step=self._step,
            remind_at=self._remind_at,
            escalate_at=self._escalate_at,
            expires_at=self._expires_at,
            since=self._since,
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    def _resume(self, resume: ApprovalResume) -> None:
        self._status = resume.status
        self._round = resume.round
        self._amount = resume.amount
        self._chain = list(resume.chain)
        self._step = resume.step
        self._remind_at, self._escalate_at, self._expires_at = resume.remind_at, resume.escalate_at, resume.expires_at
        self._since = resume.since

    # --- state -------------------------------------------------------------------------------------

    def _end_if_undone(self, outcome: DecisionOutcome) -> bool:
        """End the workflow when the database moved without it (call with the lock held, so this workflow's own
        transitions are applied first): the API undid the submission after a start it could not confirm, or a
        later submission of the same subject reopened the request in a newer round. Nothing is sent."""
        if self._status not in OPEN or outcome.changed:
            return False  # an expiry that ended the request itself (changed) is this workflow's own doing
        if outcome.request_status in OPEN and outcome.round <= self._round:
            return False
        if not self._undone_ends():
            return False  # a workflow recorded before the patch keeps waiting, as it did then
        self._status = UNDONE
        self._open_step(None)
        self._expires_at = None
        self._changes += 1
        self._upsert()
        self._show()
        return True

    def _open_step(self, step: StepInfo | None) -> None:
        self._step = step
        if step is None:
            self._remind_at = self._escalate_at = None
            return
        now = workflow.now()
        self._since = now
        timers = self._input.timers
        self._remind_at = now + timedelta(seconds=timers.reminder_seconds)
        self._escalate_at = now + timedelta(seconds=timers.escalation_seconds)

    def _apply(self, outcome: DecisionOutcome, *, restart_timers: bool = True) -> None:
        previous_status = self._status
        previous_step = self._step.step_id if self._step else None
        amount_changed = outcome.amount is not None and outcome.amount != self._amount
        if amount_changed:
            self._amount = outcome.amount
        self._status = outcome.request_status
        self._round = outcome.round
        if outcome.chain:
            self._chain = list(outcome.chain)
        next_step = outcome.next_step if self._status == PENDING else None
        if next_step is None:
            self._open_step(None)
        elif next_step.step_id != previous_step and restart_timers:
            self._open_step(next_step)
        else:
            self._step = next_step
        if self._status != previous_status and self._status in {PENDING, CHANGES_REQUESTED}:
            self._restart_expiry()  # a new round, or the owner's turn: the clock starts again
        if self._status != previous_status and self._status == CHANGES_REQUESTED:
            self._since = workflow.now()
        self._changes += 1
        self._upsert(amount=amount_changed)
        self._send(outcome)
        self._show()

    def _current_approver(self) -> int | None:
        step = self._step
        if self._status != PENDING or step is None:
            return None
        if step.delegate_id is not None and self._delegation_active(step):
            return step.delegate_id
        return step.approver_id

    # --- what the Temporal UI shows ----------------------------------------------------------------

    def _show(self, note: str = "") -> None:
        """The current details of the Temporal UI: whom the request waits on, since when, and what comes next.
        From the workflow's own state (names came with the steps the activities answered): no I/O, no command."""
        workflow.set_current_details(self._details(note))

    def _details(self, note: str) -> str:
        status = self._status.replace("_", " ")
        round_note = f", round {self._round}" if self._round > 1 else ""
        step = self._step
        if self._status == CHANGES_REQUESTED:
            lines = [f"Changes requested{round_note}: waiting on the requester to resubmit since {_at(self._since)}"]
        elif self._status == PENDING and step is not None:
            lines = [f"Waiting on {self._waiting_on(step)}{round_note} since {_at(self._since)}"]
            if self._remind_at is not None:
                lines.append(f"Reminder due {_at(self._remind_at)}")
            if self._escalate_at is not None:
                lines.append(f"Escalates {_at(self._escalate_at)}")
        elif self._status in FINAL:
            lines = [f"{status.capitalize()}{round_note} at {_at(workflow.now())}"]
        else:
            lines = [f"{status.capitalize()}{round_note}"]
        if self._expires_at is not None and self._status in OPEN:
            lines.append(f"Expires {_at(self._expires_at)}")
        if note:
            lines.append(note.capitalize())
        return "\n\n".join(lines)

    def _waiting_on(self, step: StepInfo) -> str:
        """`Jane Doe (manager, level 1 of 2)`; a delegate in force: `Bob Roe for Jane Doe (...)`."""
        approver = step.approver_name or f"user {step.approver_id}"
        total = len(self._chain)
        level = f"level {step.level + 1} of {total}" if step.level < total else f"level {step.level + 1}"
        who = f"{approver} ({step.approver_role or 'approver'}, {level})"
        if step.delegate_id is not None and self._delegation_active(step):
            delegate = step.delegate_name or f"user {step.delegate_id}"
            return f"{delegate} for {who}"
        return who

    # --- patches -----------------------------------------------------------------------------------

    def _local(self) -> bool:
        """Patch LOCAL_ACTIVITIES: local transitions and emails, and search attributes upserted only when they
        change. Asked once, first thing (every patch marker also costs the engine a search-attribute update)."""
        if self._local_activities is None:
            self._local_activities = workflow.patched(LOCAL_ACTIVITIES)
        return self._local_activities

    def _undone_ends(self) -> bool:
        # Every run with LOCAL_ACTIVITIES also ends when undone: its history need not carry a second patch marker.
        return self._local() or workflow.patched(UNDONE_ENDS)

    def _upsert(self, *, initial: bool = False, amount: bool = False) -> None:
        if not self._input.upsert_search_attributes:
            return
        approver = self._current_approver()
        updates: list[SearchAttributeUpdate[Any]] = [
            APPROVAL_STATUS.value_set(self._status),
            CURRENT_APPROVER.value_set(str(approver)) if approver is not None else CURRENT_APPROVER.value_unset(),
        ]
        if initial:
            updates += [
                ENTRY_KIND.value_set(self._input.subject_kind),
                ENTRY_ID.value_set(str(self._input.subject_id)),
            ]
        if (initial or amount) and self._amount is not None:
            updates.append(AMOUNT_CENTS.value_set(amount_cents(self._amount)))
        if self._local():
            # The API starts the workflow with these attributes already set: write only what changed.
            current = workflow.info().typed_search_attributes
            updates = [update for update in updates if current.get(update.key) != update.value]
            if not updates:
                return
        workflow.upsert_search_attributes(updates)

    # --- activities and mail -----------------------------------------------------------------------

    def _job(self, job_type: type[Any], **fields: Any) -> Any:
        return job_type(
            workflow_id=workflow.info().workflow_id,
            request_id=self._input.request_id,
            now=workflow.now(),
            timers=self._input.timers,
            limits=self._input.limits,
            **fields,
        )

    async def _activity(self, name: str, job: Any) -> DecisionOutcome:
        timeout = timedelta(seconds=self._input.timers.activity_seconds)
        summary = _activity_summary(name, job)
        try:
            result: DecisionOutcome
            if self._local():
                result = await workflow.execute_local_activity(
                    name,
                    job,
                    result_type=DecisionOutcome,
                    start_to_close_timeout=timeout,
                    retry_policy=ACTIVITY_RETRY,
                    summary=summary,
                )
            else:
                result = await workflow.execute_activity(
                    name,
                    job,
                    result_type=DecisionOutcome,
                    start_to_close_timeout=timeout,
                    retry_policy=ACTIVITY_RETRY,
                    summary=summary,
                )
            return result
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type in REFUSALS:
                # A refusal (the state moved under us): fail the update with the domain's type, keep the workflow.
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise

    def _send(self, outcome: DecisionOutcome) -> None:
        for notice in outcome.notices:
            if notice.key in outcome.emailed:
                continue  # delivered by the transition itself, right after its commit
            job = notice.email_job()
            summary = f"email {notice.event_type} to user {notice.user_id}"
            if self._local():
                email = workflow.start_local_activity(
                    "send_email",
                    job,
                    start_to_close_timeout=EMAIL_LOCAL_ATTEMPT,
                    retry_policy=EMAIL_RETRY,
                    local_retry_threshold=timedelta(0),
                    summary=summary,
                )
            else:
                email = workflow.start_activity(
                    "send_email", job, start_to_close_timeout=EMAIL_TIMEOUT, retry_policy=EMAIL_RETRY, summary=summary
                )
            self._emails.append(email)


# Versioned workers (WORKER_DEPLOYMENT_NAME; docs/operations.md, "Rolling deploy") register this class instead: the
# same workflow under the same name, pinned. Temporal refuses a versioning behaviour from an unversioned worker, so
# the behaviour is declared here, on a class only versioned workers register, and never on the one above.
#
# Pinned: an approval runs to its end on the build it started on (continued-as-new runs too), so a change to this
# workflow is safe for the approvals in flight without a patch; auto-upgrade would move every open approval onto
# each new build at its next task, and every change would have to replay every open approval's history. The price:
# an approval may wait days on its reminder, escalation and expiry timers, and the build it is pinned to needs a
# running worker until its last approval ends. The operator keeps the old build's workers until Temporal reports
# that version drained. To retire it sooner, its open approvals are moved to the new build (`temporal workflow
# update-options ... --versioning-override-behavior pinned`), which is safe only for a build that replays their
# histories: the change made with `workflow.patched` and tests/approvals/test_replay.py passing on recordings of
# the old build. That is why changes here still go behind patches.
@workflow.defn(name="EntryApprovalWorkflow", sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class PinnedEntryApprovalWorkflow(EntryApprovalWorkflow):
    @workflow.run
    async def run(self, request: ApprovalInput) -> ApprovalResult:
        return await super().run(request)
