"""The approval controls, written once: who may decide a step, and who is asked next.

docs/controls.md lists them with the risk each answers and the test that tries to break it. In short:
1. One person, one decision per round: whoever decided a step (as approver or as delegate), and the approver a
   delegate decided for, decides no other step of that round; the requester decides none, directly or as anyone's
   delegate. Where the next approver in line has already decided, the step goes to the next distinct person above.
2. A delegate decides only within their own authority; a step beyond it goes to the delegator's own next approver.
3. Authority is checked where the decision is recorded (the transition), against the database, whoever sent it:
   active, an approving role, the step's approver or their delegate in force (the delegator active too), and a
   limit that covers the step under the request's pinned limits.
5. A step goes only to someone whose limit covers what it asks; a request is approved only when the last decider's
   limit covers its amount.

Limits are the request's pinned ones (its policy version); roles and activity are read now, from the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.sql import Sql
from domain.approvals import repository as requests
from domain.approvals.chain import Limits, approve_limit
from domain.errors import Forbidden
from domain.models.rows import RequestRow, StepRow
from domain.users.directory import People, Person, line_from
from workflows.contracts import UNLIMITED, covers

Need = Decimal | None  # what a decider's limit must reach (None: any limit, for a request without an amount)


def step_limit(step: StepRow) -> str | None:
    """The limit a step was routed for, as its pinned rule names it ("p, manager, approval_limit, approve, 10.00")."""
    if step.rule and step.rule.count(",") == 4:
        return step.rule.rsplit(",", 1)[1].strip()
    return None


def need_of(limit: str | None, amount: Decimal | None) -> Need:
    """What deciding a step routed for `limit` takes: the amount, up to that limit (the rest is the next level's)."""
    if amount is None:
        return None
    if limit is None or limit == UNLIMITED:
        return amount
    return min(amount, Decimal(limit))


def why_not(person: Person | None, limits: Limits, need: Need) -> str | None:
    """Why `person` may not decide what takes `need`, or None when they may."""
    if person is None:
        return "no such user"
    if not person.is_active:
        return f"{person.full_name} is deactivated"
    limit = approve_limit(limits, person.role)
    if limit is None:
        return f"{person.full_name}'s role ({person.role}) may not approve"
    if not covers(limit, need):
        return f"{person.full_name}'s limit ({limit}) does not cover {need}"
    return None


async def decided_in_round(sql: Sql, request: RequestRow) -> set[int]:
    """Who has decided a step of the request's current round: deciders and the approvers they decided for."""
    return await requests.approvers_of_round(sql, request.id, request.round)


@dataclass(frozen=True)
class Authority:
    """A decision the database allows: by the step's approver (`acting_for` None) or by their delegate in force
    (`acting_for` the approver), and the decider's limit under the request's pinned limits."""

    acting_for: int | None
    limit: str | None


async def authority(
    sql: Sql, request: RequestRow, step: StepRow, actor_id: int, limits: Limits, at: datetime, people: People
) -> Authority:
    """Rule 3: may `actor_id` decide `step` now? Forbidden, saying why, when not."""
    if actor_id == request.requester_id:
        raise Forbidden("nobody decides on their own request")
    if actor_id in await decided_in_round(sql, request):
        raise Forbidden("you have already decided on this request in this round: one person, one decision")
    need = need_of(step_limit(step), request.amount)
    await people.load(actor_id, step.approver_id, request.requester_id)  # the requester's name is for the notices
    actor = await people.get(actor_id)
    if actor_id != step.approver_id:
        delegation = await requests.delegation_in_force_for(sql, step.approver_id, at)
        if delegation is None or delegation.delegate_id != actor_id:
            raise Forbidden("this step waits on another approver")
        approver = await people.get(step.approver_id)
        if approver is None or not approver.is_active:
            raise Forbidden("the approver who delegated this step is no longer active")
    refusal = why_not(actor, limits, need)
    if refusal is not None:
        raise Forbidden(f"you may not decide this step: {refusal}")
    assert actor is not None
    return Authority(None if actor_id == step.approver_id else step.approver_id, approve_limit(limits, actor.role))


@dataclass(frozen=True)
class Route:
    """Who a step goes to: the approver (their role and limit pinned on the step), the delegate who decides in their
    stead while they are away, and why anyone nearer in line was passed over (for the trail)."""

    approver_id: int
    role: str
    limit: str | None
    delegate_id: int | None = None
    passed_over: tuple[str, ...] = ()
    window: tuple[datetime, datetime] | None = None  # the delegation's, when a delegate decides

    @property
    def rule(self) -> str:
        return f"p, {self.role}, approval_limit, approve, {self.limit}"

    @property
    def waits_on(self) -> int:
        return self.delegate_id or self.approver_id


async def route(
    sql: Sql,
    request: RequestRow,
    start_id: int,
    need: Need,
    limits: Limits,
    at: datetime,
    *,
    excluded: Iterable[int] = (),
    include_start: bool = True,
    line: Sequence[Person] | None = None,
    people: People | None = None,
) -> Route | None:
    """Rules 1, 2 and 5: the first person, from `start_id` (or the managers above them) upwards, who may decide
    what takes `need` and has not decided in this round; their delegate in force decides instead when the delegate
    may (else, the delegator being away, the step goes further up). None when nobody above may.

    `line`: `start_id` and the managers above them, when the caller has read them already (one query fewer)."""
    barred = {request.requester_id, *excluded}
    people = people or People(sql)
    known = list(line) if line is not None else await line_from(sql, start_id)
    people.know(*known)
    candidates = [person.id for person in known[(0 if include_start else 1) :]]

    def refusal_of(person_id: int, person: Person | None) -> str | None:
        name = person.full_name if person is not None else f"user {person_id}"
        if person_id == request.requester_id:
            return f"{name} is the requester"
        if person_id in barred:
            return f"{name} has already decided in this round"
        return why_not(person, limits, need)

    passed_over: list[str] = []
    for candidate_id in candidates:
        candidate = await people.get(candidate_id)
        refusal = refusal_of(candidate_id, candidate)
        if refusal is not None or candidate is None:
            passed_over.append(refusal or f"user {candidate_id} is unknown")
            continue
        limit = approve_limit(limits, candidate.role)
        delegation = await requests.delegation_in_force_for(sql, candidate_id, at)
        if delegation is None:
            return Route(candidate_id, candidate.role, limit, None, tuple(passed_over))
        delegate_refusal = refusal_of(delegation.delegate_id, await people.get(delegation.delegate_id))
        if delegate_refusal is None:
            window = (delegation.starts, delegation.ends)
            return Route(candidate_id, candidate.role, limit, delegation.delegate_id, tuple(passed_over), window)
        passed_over.append(
            f"{candidate.full_name} is away and their delegate may not decide it ({delegate_refusal}): "
            "it goes to their own next approver"
        )
    return None


async def acting_for(sql: Sql, step: StepRow, actor_id: int, requester_id: int, at: datetime) -> int | None:
    """Who the actor would decide as: None as the step's approver, the approver's id as their delegate in force.
    Forbidden otherwise. The API's early, cheap answer; `authority` is the rule, where the decision is recorded."""
    if actor_id == requester_id:
        raise Forbidden("nobody decides on their own request")
    if actor_id == step.approver_id:
        return None
    delegation = await requests.delegation_in_force_for(sql, step.approver_id, at)
    if delegation is not None and delegation.delegate_id == actor_id:
        return step.approver_id
    raise Forbidden("this step waits on another approver")
