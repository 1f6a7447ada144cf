"""The approval workflow's activities: each runs one domain transition in one transaction, and commits.

Every transition is idempotent (a retry after a commit changes nothing and answers the same), and domain
refusals become non-retryable ApplicationErrors whose type the workflow and the API understand.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy.exc import DataError, DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from core.sql import Sql
from domain.approvals import outbox, transitions
from domain.duplicates.check import rules_from
from domain.errors import DomainError
from domain.fx.rates import terms_from
from domain.ledger.periods import closed_period
from domain.mail.delivery import Mailer, Recipient
from domain.metrics import events
from workflows.contracts import (
    EMAIL_LOCAL_ATTEMPT,
    AnnounceJob,
    ApprovalActivity,
    DecisionOutcome,
    EmailJob,
    EmailResult,
    OwnerJob,
    RecordDecisionJob,
    RerouteJob,
    ResubmitJob,
    StepJob,
    TransitionJob,
)

Job = TypeVar("Job", bound=TransitionJob)


@dataclass
class _Mail:
    notice_key: str
    job: EmailJob
    recipients: list[Recipient]
    result: EmailResult


class ApprovalActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps
        # Emails go out inside the workflow task (a local activity), where heartbeats do not apply.
        self.mailer = Mailer(deps.db, deps.mail, deps.storage, deps.settings)
        self._deliveries: set[asyncio.Task[list[str]]] = set()  # inline deliveries still finishing after their budget
        self._background: set[asyncio.Future[None]] = set()  # follow-up starts delivered after the answer

    async def _transition(
        self, transition: Callable[[Sql, Job], Awaitable[DecisionOutcome]], job: Job
    ) -> DecisionOutcome:
        """Run one transition in one transaction, then deliver the emails of its notices."""
        try:
            async with self.deps.db.transaction() as tx:
                outcome = await transition(tx.sql, job)
        except DomainError as error:
            # Permanent: the request is not in a state for this transition. Retrying will not change that.
            raise ApplicationError(error.message, error.details, type=error.refusal, non_retryable=True) from error
        except (DataError, psycopg.DataError) as error:
            # A value the database cannot store (the API lets none through; this guards the workflow's lock, which a
            # retry without end would hold): the decision is refused, the request stays as it was.
            refused = error.orig if isinstance(error, DataError) else error
            raise ApplicationError(
                f"the database refused a value: {refused}", type="ValidationFailed", non_retryable=True
            ) from error
        except (DBAPIError, psycopg.Error) as error:
            # The entry is dated in a closed period (the database's trigger refused the change): as permanent as a
            # domain refusal, so the decision answers 409 instead of being retried until the period is reopened.
            refusal = closed_period(error)
            if refusal is None:
                raise
            raise ApplicationError(
                refusal.message, refusal.details, type=refusal.refusal, non_retryable=True
            ) from error
        if outcome.changed and outcome.request_status == "approved" and outcome.entry_status is None:
            self._in_background(self._follow_ups(job.request_id))
        if outcome.notices:
            # Read after the commit, not in the transition: its end holds the audit chain's lock, one transaction
            # at a time (domain/budgets/ledger.py), and who gets an email needs no lock.
            async with self.deps.db.transaction(autocommit=True) as read:
                mail = [await self._mail(read.sql, notice.key, notice.email_job()) for notice in outcome.notices]
            outcome.emailed = await self._deliver(mail)
        return outcome

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _follow_ups(self, request_id: int) -> None:
        """What an approval started besides its own workflow (an approved invoice's), delivered right after the
        decision's answer, not before it (the approver waits on that); the outbox's relay delivers whatever this
        cannot, a few seconds later (the worker stopped, the engine away)."""
        if self.deps.engine is None:
            return
        try:
            async with self.deps.db.transaction() as tx:
                await outbox.deliver_follow_ups(tx.sql, self.deps.engine, request_id)
        except Exception as error:  # delivery is the relay's job too: nothing is lost
            activity.logger.warning("follow-up of request %s left to the outbox relay: %s", request_id, error)

    async def _mail(self, sql: Sql, notice_key: str, job: EmailJob) -> _Mail:
        result = EmailResult()
        return _Mail(notice_key, job, await self.mailer.recipients(sql, job, result), result)

    async def _deliver(self, mail: list[_Mail]) -> list[str]:
        """Send the committed transition's emails now, which spares most approvals a separate email activity; the
        keys of those settled go back to the workflow, which sends the rest durably ("send_email", with retries).

        Bounded by one email attempt's budget, so a slow mail server never holds the decision's answer longer
        than that. What is still sending then goes on in the background and records itself in the ledger, where
        the workflow's durable send of the same message finds it (waiting on its row) and does not send again."""
        if not mail:
            return []
        delivery = asyncio.ensure_future(self._deliver_all(mail))
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(delivery), EMAIL_LOCAL_ATTEMPT.total_seconds())
        except TimeoutError:
            activity.logger.warning("approval emails still sending after %s: left to the workflow", EMAIL_LOCAL_ATTEMPT)
            return []

    async def _deliver_all(self, mail: list[_Mail]) -> list[str]:
        settled: list[str] = []
        for item in mail:
            try:
                await self.mailer.deliver(item.job, item.recipients, item.result)
            except Exception as error:  # any failure here, the workflow retries durably
                activity.logger.info("email %s left to the workflow: %s", item.notice_key, error)
                continue
            settled.append(item.notice_key)
        return settled

    @activity.defn(name=ApprovalActivity.ANNOUNCE)
    async def announce_first_step(self, job: AnnounceJob) -> DecisionOutcome:
        return await self._transition(transitions.announce_first_step, job)

    @activity.defn(name=ApprovalActivity.RECORD_DECISION)
    async def record_decision(self, job: RecordDecisionJob) -> DecisionOutcome:
        outcome = await self._transition(transitions.record_decision, job)
        if outcome.changed:
            events.decision_recorded(job.action)
        return outcome

    @activity.defn(name=ApprovalActivity.REMIND)
    async def remind_step(self, job: StepJob) -> DecisionOutcome:
        outcome = await self._transition(transitions.remind_step, job)
        if outcome.changed:
            events.sla_event("reminded")
        return outcome

    @activity.defn(name=ApprovalActivity.ESCALATE)
    async def escalate_step(self, job: StepJob) -> DecisionOutcome:
        outcome = await self._transition(transitions.escalate_step, job)
        waiting = outcome.next_step is not None and outcome.next_step.step_id == job.step_id
        if outcome.changed:
            events.sla_event("escalated")
        elif waiting and outcome.request_status == "pending":
            events.sla_event("nobody_to_escalate_to")  # the step keeps waiting, past its escalation time
        return outcome

    @activity.defn(name=ApprovalActivity.EXPIRE)
    async def expire_request(self, job: TransitionJob) -> DecisionOutcome:
        outcome = await self._transition(transitions.expire_request, job)
        if outcome.changed and outcome.request_status == "expired":
            events.sla_event("expired")
        return outcome

    @activity.defn(name=ApprovalActivity.WITHDRAW)
    async def withdraw_request(self, job: OwnerJob) -> DecisionOutcome:
        return await self._transition(transitions.withdraw_request, job)

    @activity.defn(name=ApprovalActivity.RESUBMIT)
    async def open_round(self, job: ResubmitJob) -> DecisionOutcome:
        settings = self.deps.settings  # the worker's settings are the API's (the books' check at start)
        resubmit = functools.partial(
            transitions.open_round,
            terms=terms_from(settings),
            receipt_required_above=settings.attachments.receipt_required_above,
            duplicates=rules_from(settings),
        )
        return await self._transition(resubmit, job)

    @activity.defn(name=ApprovalActivity.REROUTE)
    async def reroute_step(self, job: RerouteJob) -> DecisionOutcome:
        return await self._transition(transitions.reroute_step, job)

    @activity.defn(name=ApprovalActivity.REFRESH)
    async def refresh_step(self, job: TransitionJob) -> DecisionOutcome:
        return await self._transition(transitions.refresh_step, job)

    def all(self) -> list[Callable[..., object]]:
        return [
            self.announce_first_step,
            self.record_decision,
            self.remind_step,
            self.escalate_step,
            self.expire_request,
            self.withdraw_request,
            self.open_round,
            self.reroute_step,
            self.refresh_step,
        ]
