"""The approval controls under random sequences (hypothesis): submit, decide (as anyone), forged updates straight to
Temporal, delegate, revoke, demote, promote, move, escalate (time-skipping server), resubmit and withdraw, run
through the same commands the API uses, on real PostgreSQL and a real (time-skipping) Temporal.

The checks are an oracle of their own, written from docs/controls.md rather than from domain/approvals/rules.py:
- every decision that was recorded was made by someone authorised at that moment: not the requester, not someone
  who already decided in that round, the step's approver or their delegate in force (the approver active), active,
  an approving role, and a limit that covers the step;
- every approved request: distinct deciders in its last round, none the requester, the last decider's limit
  covering the amount;
- every request: one terminal state (the entry's status is the request's), and nothing waiting on someone inactive
  or unauthorised.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.approvals import ApprovalActivities
from activities.deps import ActivityDeps
from core.engine import EngineUnavailable, UpdateRefused, WorkflowEngine
from domain.approvals import outbox
from domain.approvals.commands import ApprovalCommands, Caller, Verdict
from domain.audit.service import AuditContext
from domain.entries import service as entries
from domain.entries.schemas import ExpenseCreate
from domain.errors import DomainError
from domain.fx.rates import terms_from
from domain.models import EntryKind
from domain.users import service as users
from domain.users.caller import load_user
from domain.users.schemas import UserUpdate
from tests.approvals.conftest import EmailOutbox
from tests.conftest import MakeUser, TestUser
from workflows.approval import EntryApprovalWorkflow
from workflows.contracts import DecisionOutcome, DecisionRequest

LIMITS = {"manager": Decimal("10000.00"), "admin": Decimal("100000.00"), "superadmin": None}  # None: unlimited
AMOUNTS = ("500.00", "9000.00", "15000.00", "120000.00")
PEOPLE = ("S", "A", "M1", "M2", "E1", "E2")
FINAL = {"approved", "rejected", "withdrawn", "expired"}


@dataclass
class World:
    """One example's organisation and what it did: S > A > M1, M2; E1 under M1, E2 under M2."""

    deps: ActivityDeps
    commands: ApprovalCommands
    engine: WorkflowEngine
    env: WorkflowEnvironment
    people: dict[str, TestUser]
    entries: list[int] = field(default_factory=list)
    recorded: int = 0  # decisions recorded (a sanity figure: the examples do decide things)

    def id(self, name: str) -> int:
        return self.people[name].id


@pytest.fixture
async def world(skipping: WorkflowEnvironment, activity_deps: ActivityDeps, make_user: MakeUser) -> AsyncIterator[Any]:
    """A worker on the time-skipping server, and a maker of fresh organisations (one per example)."""
    queue_prefix = f"props-{uuid.uuid4().hex[:8]}"
    temporal = activity_deps.settings.temporal.model_copy(update={"task_queue_prefix": queue_prefix})
    settings_ = activity_deps.settings.model_copy(update={"temporal": temporal})
    deps = replace(activity_deps, settings=settings_, mail=EmailOutbox())
    engine = WorkflowEngine(temporal, skipping.client)
    activities = [*ApprovalActivities(deps).all(), EmailOutbox().send_email]
    async with Worker(
        skipping.client, task_queue=engine.queues.approvals, workflows=[EntryApprovalWorkflow], activities=activities
    ):

        async def make() -> World:
            s = await make_user("superadmin")
            a = await make_user("admin", manager=s)
            m1, m2 = await make_user("manager", manager=a), await make_user("manager", manager=a)
            e1, e2 = await make_user("employee", manager=m1), await make_user("employee", manager=m2)
            people = dict(zip(PEOPLE, (s, a, m1, m2, e1, e2), strict=True))
            commands = ApprovalCommands(settings_, deps.authorizer, engine)
            return World(deps, commands, engine, skipping, people)

        yield make


# --- the operations -------------------------------------------------------------------------------------------


async def _as(world: World, name: str) -> Caller:
    async with world.deps.db.transaction() as tx:
        user = await load_user(tx, world.id(name))
    assert user is not None
    return Caller(user, AuditContext(actor_id=user.id))


async def _attempt(world: World, work: Any, *arguments: Any) -> Any:
    """Run a command as the API would (its own transaction); a refusal (any 4xx) is an answer, not a failure."""
    try:
        async with world.deps.db.transaction() as tx:
            return await work(tx, *arguments)
    except (DomainError, UpdateRefused):
        return None


async def submit(world: World, who: str, amount: str) -> None:
    caller = await _as(world, who)
    body = ExpenseCreate(amount=Decimal(amount), category="travel", entry_date=date(2026, 1, 5), vendor="Rail")
    async with world.deps.db.transaction() as tx:
        entry = await entries.create_entry(tx, terms_from(world.deps.settings), caller.user, EntryKind.EXPENSE, body,
                                           caller.audit)  # fmt: skip
    world.entries.append(entry.id)
    await _attempt(world, world.commands.submit_entry, caller, EntryKind.EXPENSE, entry.id)


async def decide(world: World, index: int, who: str, action: str) -> None:
    if not world.entries:
        return
    entry_id = world.entries[index % len(world.entries)]
    verdict = Verdict(action, "checked" if action != "reject" else "no")  # type: ignore[arg-type]
    await _attempt(world, world.commands.decide_entry, await _as(world, who), EntryKind.EXPENSE, entry_id, verdict)


async def advance(world: World, index: int, action: str) -> None:
    """A decision by whoever the open step waits on (its delegate when there is one): what moves requests along."""
    if not world.entries:
        return
    entry_id = world.entries[index % len(world.entries)]
    async with world.deps.db.transaction() as tx:
        waiter = await tx.sql.scalar(
            "SELECT coalesce(s.delegate_id, s.approver_id) FROM entries e JOIN approval_steps s "
            "ON s.request_id = e.approval_request_id AND s.status = 'pending' WHERE e.id = %s",
            (entry_id,),
        )
    name = next((name for name, person in world.people.items() if person.id == waiter), None)
    if name is not None:
        await decide(world, index, name, action)


async def forge(world: World, index: int, who: str) -> None:
    """An update sent straight to Temporal, claiming `who` decides the open step on behalf of its approver."""
    if not world.entries:
        return
    entry_id = world.entries[index % len(world.entries)]
    async with world.deps.db.transaction() as tx:
        found = await tx.sql.one(
            "SELECT r.workflow_id, s.id, s.approver_id FROM entries e JOIN approval_requests r ON r.entry_id = e.id "
            "JOIN approval_steps s ON s.request_id = r.id AND s.status = 'pending' WHERE e.id = %s",
            (entry_id,),
        )
    if found is None:
        return
    workflow_id, step_id, approver_id = found
    forged = DecisionRequest(action="approve", actor_id=world.id(who), step_id=step_id, acting_for=approver_id)
    with contextlib.suppress(UpdateRefused, EngineUnavailable):
        await world.engine.update(
            workflow_id, "decide", forged, update_id=str(uuid.uuid4()), result_type=DecisionOutcome
        )


async def delegate(world: World, who: str, to: str) -> None:
    now = datetime.now(UTC)
    caller = await _as(world, who)
    await _attempt(world, world.commands.set_delegation, caller, world.id(to), now, now + timedelta(days=30))


async def revoke(world: World, who: str) -> None:
    await _attempt(world, world.commands.revoke_delegation, await _as(world, who))


async def change_user(world: World, name: str, **change: Any) -> None:
    """An admin's change (through the users service, as PATCH /users/{id}); the workflows hear through the outbox."""
    superadmin = await _as(world, "S")
    with contextlib.suppress(DomainError):
        async with world.deps.db.transaction() as tx:
            await users.update_user(tx, world.deps.settings, world.deps.authorizer, superadmin.user, world.id(name),
                                    UserUpdate(**change), superadmin.audit)  # fmt: skip
    await outbox.deliver_due(world.deps.db, world.engine, grace=timedelta(0))


async def escalate(world: World) -> None:
    """Five days pass: every step still waiting escalates."""
    await world.env.sleep(timedelta(hours=121))


async def resubmit(world: World, index: int) -> None:
    if not world.entries:
        return
    entry_id = world.entries[index % len(world.entries)]
    async with world.deps.db.transaction() as tx:
        owner_id = await tx.sql.scalar("SELECT owner_id FROM entries WHERE id = %s", (entry_id,))
    owner = next(name for name, person in world.people.items() if person.id == owner_id)
    await _attempt(world, world.commands.submit_entry, await _as(world, owner), EntryKind.EXPENSE, entry_id)


async def withdraw(world: World, index: int) -> None:
    if not world.entries:
        return
    entry_id = world.entries[index % len(world.entries)]
    async with world.deps.db.transaction() as tx:
        owner_id = await tx.sql.scalar("SELECT owner_id FROM entries WHERE id = %s", (entry_id,))
    owner = next(name for name, person in world.people.items() if person.id == owner_id)
    await _attempt(world, world.commands.withdraw_entry, await _as(world, owner), EntryKind.EXPENSE, entry_id)


someone = st.sampled_from(PEOPLE)
managers = st.sampled_from(("A", "M1", "M2"))
OPERATIONS = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(("E1", "E2", "M1", "M2")), st.sampled_from(AMOUNTS)),
    st.tuples(st.just("decide"), st.integers(0, 5), someone, st.sampled_from(("approve", "reject", "request_changes"))),
    st.tuples(st.just("advance"), st.integers(0, 5), st.just("approve")),
    st.tuples(st.just("advance"), st.integers(0, 5), st.sampled_from(("approve", "reject", "request_changes"))),
    st.tuples(st.just("forge"), st.integers(0, 5), someone),
    st.tuples(st.just("delegate"), managers, someone),
    st.tuples(st.just("revoke"), managers),
    st.tuples(st.just("demote"), st.sampled_from(("M1", "M2"))),
    st.tuples(st.just("promote"), st.sampled_from(("M1", "M2"))),
    st.tuples(st.just("move"), st.sampled_from(("E1", "E2")), st.sampled_from(("M1", "M2", "A"))),
    st.tuples(st.just("escalate")),
    st.tuples(st.just("resubmit"), st.integers(0, 5)),
    st.tuples(st.just("withdraw"), st.integers(0, 5)),
)


async def run(world: World, operation: tuple[Any, ...]) -> None:
    name, *arguments = operation
    if name == "demote":
        await change_user(world, arguments[0], role="employee")  # refused while they still manage someone
    elif name == "promote":
        await change_user(world, arguments[0], role="manager")
    elif name == "move":
        await change_user(world, arguments[0], manager_id=world.id(arguments[1]))
    else:
        await {
            "submit": submit, "decide": decide, "advance": advance, "forge": forge, "delegate": delegate,
            "revoke": revoke, "escalate": escalate, "resubmit": resubmit, "withdraw": withdraw,
        }[name](world, *arguments)  # fmt: skip


# --- the oracle ------------------------------------------------------------------------------------------------


def _covers(role: str, needed: Decimal) -> bool:
    if role not in LIMITS:
        return False  # employees and accountants approve nothing
    limit = LIMITS[role]
    return limit is None or needed <= limit


def _need(rule: str, amount: Decimal) -> Decimal:
    """What deciding a step takes: its amount, up to the limit it was routed for (the rest is the next level's)."""
    routed_for = rule.rsplit(",", 1)[1].strip()
    return amount if routed_for == "*" else min(amount, Decimal(routed_for))


@dataclass(frozen=True)
class Snapshot:
    """Who was what just before an operation: decisions recorded during it are judged by this."""

    people: dict[int, tuple[str, bool]]  # id -> (role, active)
    delegated: set[tuple[int, int]]  # (approver, delegate) in force

    @classmethod
    async def take(cls, world: World) -> Snapshot:
        async with world.deps.db.transaction() as tx:
            ids = [person.id for person in world.people.values()]
            rows = await tx.sql.all("SELECT id, role, is_active FROM users WHERE id = ANY(%s)", (ids,))
            now = datetime.now(UTC)
            pairs = await tx.sql.all(
                "SELECT user_id, delegate_id FROM delegations WHERE user_id = ANY(%s) AND revoked_at IS NULL "
                "AND starts <= %s AND ends > %s",
                (ids, now, now),
            )
        return cls({row[0]: (row[1], row[2]) for row in rows}, {(row[0], row[1]) for row in pairs})

    def may_decide(self, person: int, need: Decimal, requester: int) -> str | None:
        """Why `person` may not decide what takes `need` (None: they may)."""
        role, active = self.people[person]
        if person == requester:
            return "is the requester"
        if not active:
            return "is deactivated"
        if not _covers(role, need):
            return f"is a {role}, whose limit does not cover {need}"
        return None


@dataclass
class Record:
    """What the oracle knows of the decisions seen so far: each one's decider's role when they decided."""

    roles: dict[int, str] = field(default_factory=dict)  # step id -> the decider's role at the time


_STEPS = (
    "SELECT s.id, s.round, s.approver_id, s.delegate_id, s.decided_by_id, s.status, s.rule FROM approval_steps s "
    "WHERE s.request_id = %s ORDER BY s.sequence"
)


async def _check(world: World, before: Snapshot, record: Record) -> None:
    now = await Snapshot.take(world)
    async with world.deps.db.transaction() as tx:
        for entry_id in world.entries:
            entry = await tx.sql.one("SELECT status, approval_request_id FROM entries WHERE id = %s", (entry_id,))
            if entry is None or entry[1] is None:
                continue
            entry_status, request_id = entry
            request = await tx.sql.one(
                "SELECT status, requester_id, amount, round FROM approval_requests WHERE id = %s", (request_id,)
            )
            assert request is not None
            status, requester, amount, current_round = request
            assert entry_status == status, f"entry {entry_id} is {entry_status}, its request {status}"
            steps = await tx.sql.all(_STEPS, (request_id,))
            decided: dict[int, set[int]] = {}
            for step_id, round_, approver, delegate, decider, step_status, rule in steps:
                if decider is None:
                    continue
                if step_id not in record.roles:  # decided during the last operation: judged by `before`
                    why = before.may_decide(decider, _need(rule, amount), requester)
                    assert why is None, f"request {request_id}: {decider} decided step {step_id} but {why}"
                    if decider != approver:
                        assert (approver, decider) in before.delegated, f"{decider} decided for {approver} unasked"
                        assert before.people[approver][1], f"{decider} decided for a deactivated {approver}"
                    record.roles[step_id] = before.people[decider][0]
                    world.recorded += 1
                earlier = decided.setdefault(round_, set())
                assert decider not in earlier, f"request {request_id}: {decider} decided twice in round {round_}"
                if step_status == "approved":
                    earlier |= {decider, approver}
            if status == "approved":
                last = [step for step in steps if step[1] == current_round and step[5] == "approved"][-1]
                assert _covers(record.roles[last[0]], amount), f"request {request_id} approved below its amount"
            if status == "pending":
                waiting = [step for step in steps if step[5] == "pending"]
                assert len(waiting) == 1, f"request {request_id} waits on {len(waiting)} steps"
                _, _, approver, delegate, _, _, rule = waiting[0]
                need = _need(rule, amount)
                why = now.may_decide(approver, need, requester)
                assert why is None, f"request {request_id} waits on {approver}, who {why}"
                this_round = decided.get(current_round, set())
                assert approver not in this_round, f"request {request_id} waits on {approver}, who already decided"
                if delegate is not None and (approver, delegate) in now.delegated:
                    why = now.may_decide(delegate, need, requester)
                    assert why is None, f"request {request_id} waits on delegate {delegate}, who {why}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=3, max_size=20))
async def test_no_sequence_of_actions_breaks_the_controls(world: Any, operations: list[tuple[Any, ...]]) -> None:
    state: World = await world()
    record = Record()
    for operation in [("submit", "E1", "15000.00"), *operations, ("decide", 0, "M1", "approve")]:
        before = await Snapshot.take(state)
        await run(state, operation)
        await _check(state, before, record)
