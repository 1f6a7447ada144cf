"""Who approves what: the approval chain from pinned policy limits and the requester's manager tree.

Pure functions over plain values, so the HTTP layer (at submit) and the activities (at resubmit and
escalation) compute the same chain from the same pinned limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import ValidationFailed
from workflows.contracts import ChainLink, covers

Limits = Mapping[str, Mapping[str, str | None]]  # role -> {"approve": limit, "auto_approve": limit}


@dataclass(frozen=True)
class Candidate:
    """A manager above the requester (nearest first), with their role."""

    user_id: int
    role: str
    is_active: bool = True


def approve_limit(limits: Limits, role: str) -> str | None:
    return limits.get(role, {}).get("approve")


def auto_approve_rule(limits: Limits, requester_role: str, amount: Decimal | None) -> str | None:
    """The policy line that approves `amount` at once for this role, or None (the default: no auto-approval)."""
    limit = limits.get(requester_role, {}).get("auto_approve")
    if amount is None or limit is None or not covers(limit, amount):
        return None
    return f"p, {requester_role}, approval_limit, auto_approve, {limit}"


def approval_chain_for(amount: Decimal | None, managers: Sequence[Candidate], limits: Limits) -> list[ChainLink]:
    """The first approver is the nearest manager whose role may approve at all; while the amount exceeds the
    current approver's limit, the next level is the nearest manager further up whose limit covers it.

    Raises ValidationFailed when nobody above the requester may approve the amount.
    """
    approvers = [
        (candidate, approve_limit(limits, candidate.role))
        for candidate in managers
        if candidate.is_active and approve_limit(limits, candidate.role) is not None
    ]
    if not approvers:
        raise ValidationFailed(
            "nobody above you in the manager tree may approve; ask an admin to set your manager",
            reason="no_approver",
        )
    first, first_limit = approvers[0]
    chain = [ChainLink(level=0, approver_id=first.user_id, role=first.role, limit=first_limit)]
    if covers(first_limit, amount):
        return chain
    for candidate, limit in approvers[1:]:
        if covers(limit, amount):
            chain.append(ChainLink(level=1, approver_id=candidate.user_id, role=candidate.role, limit=limit))
            return chain
    raise ValidationFailed(
        "the amount exceeds the approval limit of everyone above you in the manager tree",
        reason="no_approver_covers_amount",
        amount=str(amount),
    )


@dataclass(frozen=True)
class Routing:
    """Where a submission goes under a set of limits: approved at once by a rule, a chain, or refused (why)."""

    auto_approved_by: str | None = None
    chain: tuple[ChainLink, ...] = ()
    refused: str | None = None


def routing_for(amount: Decimal | None, requester_role: str, managers: Sequence[Candidate], limits: Limits) -> Routing:
    """The routing a submission gets at submit (transitions.open_request), before budgets add their level: the
    requester's auto-approval rule first, else the chain. For the policy preview's replay of past requests."""
    rule = auto_approve_rule(limits, requester_role, amount)
    if rule is not None:
        return Routing(auto_approved_by=rule)
    try:
        return Routing(chain=tuple(approval_chain_for(amount, managers, limits)))
    except ValidationFailed as refused:
        return Routing(refused=refused.message)


def budget_level(
    chain: Sequence[ChainLink],
    managers: Sequence[Candidate],
    owner: Candidate | None,
    limits: Limits,
    amount: Decimal,
    budget_id: int,
    requester_id: int,
) -> ChainLink:
    """The one level an over-budget expense's `extra_approval` budget adds after the chain: its owner, when they may
    approve the amount and are neither the requester nor in the chain already; else the nearest manager above the
    chain's last approver whose limit covers it. ValidationFailed when there is nobody."""
    in_chain = {link.approver_id for link in chain}

    def link(candidate: Candidate) -> ChainLink:
        limit = approve_limit(limits, candidate.role)
        return ChainLink(level=len(chain), approver_id=candidate.user_id, role=candidate.role, limit=limit,
                         budget_id=budget_id)  # fmt: skip

    def may(candidate: Candidate) -> bool:
        return (
            candidate.is_active
            and candidate.user_id != requester_id
            and candidate.user_id not in in_chain
            and covers(approve_limit(limits, candidate.role), amount)
        )

    if owner is not None and may(owner):
        return link(owner)
    last = chain[-1].approver_id if chain else requester_id
    ids = [candidate.user_id for candidate in managers]
    above = managers[ids.index(last) + 1 :] if last in ids else managers
    for candidate in above:
        if may(candidate):
            return link(candidate)
    raise ValidationFailed(
        "over budget: the budget asks for an extra approval, and neither its owner nor anyone above the approval "
        "chain may give it; ask an admin to set the budget's owner or the manager tree",
        reason="no_budget_approver",
        budget_id=budget_id,
    )
