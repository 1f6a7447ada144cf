"""What a proposed policy would change, before it is applied: permissions route by route, approval limits, and the
routing of the last 90 days' requests.

The proposal is loaded in a trial enforcer through the same validation as a reload (core/authz.py), so a file the
preview accepts is a file the reload accepts. The replay routes each request with the function the submit uses
(domain/approvals/chain.routing_for), once under the limits in force and once under the proposed ones, over today's
manager tree and roles: what differs is what the policy changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.authz import KNOWN_ROLES, UNLIMITED, Authorizer, PolicyError, PolicyFiles
from core.sql import Sql
from domain.approvals import repository as requests
from domain.approvals.chain import Candidate, Limits, Routing, routing_for
from domain.approvals.schemas import Priced
from domain.errors import ValidationFailed
from domain.models.rows import RequestRow
from domain.policies.schemas import (
    ApprovalLevel,
    LimitChange,
    LimitKind,
    PermissionChange,
    PolicyPreview,
    Replay,
    ReplayedRequest,
    RoleChange,
    RoutingChange,
    RoutingOut,
)
from domain.users.directory import Person, line_from

REPLAY_DAYS = 90
MAX_REPLAYED = 5_000  # requests read for the replay, newest first (each distinct requester costs one query)
MAX_LISTED = 200  # rerouted requests listed in the answer (all are counted)
LIMIT_KINDS: tuple[LimitKind, ...] = ("approve", "auto_approve")


@dataclass(frozen=True)
class RoutePermission:
    """One route of the API and the permission it declares (Authorize(resource, action))."""

    method: str
    path: str
    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def proposal(in_force: PolicyFiles, policy_csv: str, model_conf: str | None = None) -> PolicyFiles:
    """The proposed files: the policy given, with the model given or the one in force."""
    return PolicyFiles(model=model_conf if model_conf is not None else in_force.model, policy=policy_csv)


def trial(in_force: Authorizer, proposed: PolicyFiles) -> Authorizer:
    """The proposal in a trial enforcer; ValidationFailed (422) naming the file and line when it is refused."""
    try:
        return Authorizer(in_force.model_path.parent, proposed)
    except PolicyError as refused:
        raise ValidationFailed(
            f"the proposed policy is refused: {refused}", file=refused.file, line=refused.line, reason=refused.reason
        ) from refused


async def preview(
    sql: Sql,
    in_force: Authorizer,
    proposed: PolicyFiles,
    routes: Sequence[RoutePermission],
    base_currency: str,
    now: datetime,
) -> PolicyPreview:
    """Everything the proposal would change; nothing is applied. ValidationFailed for a broken proposal."""
    # Casbin evaluates in Python, a few hundred checks here (a fifth of a second): off the event loop, so the
    # process's other requests are not held up.
    candidate = await asyncio.to_thread(trial, in_force, proposed)
    roles = await asyncio.to_thread(permission_changes, in_force, candidate, routes)
    before, after = in_force.limits_snapshot(), candidate.limits_snapshot()
    limits = limit_changes(before, after, base_currency)
    replayed = await replay(sql, before, after, base_currency, now)
    return PolicyPreview(
        version_in_force=in_force.version,
        proposed_version=candidate.version,
        identical=in_force.version == candidate.version,
        changes_anything=bool(roles or limits or replayed.rerouted_count),
        roles=roles,
        limits=limits,
        replay=replayed,
    )


# --- permissions ---------------------------------------------------------------------------------------------


def permission_changes(
    in_force: Authorizer, candidate: Authorizer, routes: Iterable[RoutePermission]
) -> list[RoleChange]:
    """Per role, the permissions gained and lost, each with the routes that declare it: every permission a route
    declares, and every one either policy grants (some are checked inside services, not by a route)."""
    routes_of: dict[tuple[str, str], list[str]] = {}
    for route in routes:
        routes_of.setdefault((route.resource, route.action), []).append(str(route))
    permissions = set(routes_of)
    for role in KNOWN_ROLES:
        permissions |= in_force.permissions_of(role) | candidate.permissions_of(role)
    changes: list[RoleChange] = []
    for role in KNOWN_ROLES:
        gains: list[PermissionChange] = []
        loses: list[PermissionChange] = []
        for resource, action in sorted(permissions):
            had, has = in_force.allows(role, resource, action), candidate.allows(role, resource, action)
            if had != has:
                change = PermissionChange(
                    resource=resource, action=action, routes=sorted(routes_of.get((resource, action), []))
                )
                (gains if has else loses).append(change)
        if gains or loses:
            changes.append(RoleChange(role=role, gains=gains, loses=loses))
    return changes


# --- approval limits -----------------------------------------------------------------------------------------


def _ceiling(limit: str) -> Decimal:
    return Decimal("Infinity") if limit == UNLIMITED else Decimal(limit)


def limit_changes(before: Limits, after: Limits, currency: str) -> list[LimitChange]:
    changes: list[LimitChange] = []
    for role in KNOWN_ROLES:
        for kind in LIMIT_KINDS:
            old, new = before.get(role, {}).get(kind), after.get(role, {}).get(kind)
            if old == new:
                continue
            if old is None:
                direction = "granted"
            elif new is None:
                direction = "removed"
            else:
                direction = "lowered" if _ceiling(new) < _ceiling(old) else "raised"
            changes.append(
                LimitChange(role=role, kind=kind, before=old, after=new, currency=currency, direction=direction)
            )
    return changes


# --- the replay ------------------------------------------------------------------------------------------------


async def replay(sql: Sql, before: Limits, after: Limits, base_currency: str, now: datetime) -> Replay:
    since = now - timedelta(days=REPLAY_DAYS)
    rows = await requests.submitted_since(sql, since, MAX_REPLAYED + 1)
    truncated = len(rows) > MAX_REPLAYED
    rows = rows[:MAX_REPLAYED]
    lines: dict[int, list[Person]] = {}
    rerouted: list[ReplayedRequest] = []
    count = 0
    for request in rows:
        if request.requester_id not in lines:
            lines[request.requester_id] = await line_from(sql, request.requester_id)
        line = lines[request.requester_id]
        if not line:
            continue  # the requester's account is gone: nothing to route from
        requester, managers = line[0], line[1:]
        candidates = [Candidate(person.id, person.role, person.is_active) for person in managers]
        was = routing_for(request.amount, requester.role, candidates, before)
        would = routing_for(request.amount, requester.role, candidates, after)
        if _who_decides(was) == _who_decides(would):
            continue
        count += 1
        if len(rerouted) < MAX_LISTED:
            names = {person.id: person.full_name for person in managers}
            rerouted.append(_replayed(request, requester, was, would, names, base_currency))
    return Replay(
        since=since,
        days=REPLAY_DAYS,
        requests_replayed=len(rows),
        truncated=truncated,
        rerouted_count=count,
        rerouted=rerouted,
        listed_at_most=MAX_LISTED,
    )


def _who_decides(routing: Routing) -> tuple[object, ...]:
    """What a routing means for a request: approved at once, refused, or who decides at which level (a limit that
    moves while the same people decide is in the limits' list, not a rerouting)."""
    approvers = tuple((link.level, link.approver_id, link.role) for link in routing.chain)
    return (routing.auto_approved_by is not None, routing.refused is not None, approvers)


def _routing_out(routing: Routing, names: dict[int, str]) -> RoutingOut:
    levels = [
        ApprovalLevel(
            level=link.level,
            role=link.role,
            approver_id=link.approver_id,
            approver_name=names.get(link.approver_id, ""),
            limit=link.limit,
        )
        for link in routing.chain
    ]
    return RoutingOut(auto_approved_by=routing.auto_approved_by, levels=levels, refused=routing.refused)


def _change(was: Routing, would: Routing) -> RoutingChange:
    if would.auto_approved_by and not was.auto_approved_by:
        return "auto-approved"
    if was.auto_approved_by and not would.auto_approved_by:
        return "no longer auto-approved"
    if would.refused and not was.refused:
        return "refused"
    if was.refused and not would.refused:
        return "no longer refused"
    if len(would.chain) > len(was.chain):
        return "climbs higher"
    if len(would.chain) < len(was.chain):
        return "fewer levels"
    return "other approvers"


def _replayed(
    request: RequestRow, requester: Person, was: Routing, would: Routing, names: dict[int, str], base_currency: str
) -> ReplayedRequest:
    subject_id = request.entry_id or request.invoice_id or request.id
    assert request.submitted_at is not None, "the replay reads submitted requests"
    return ReplayedRequest(
        request_id=request.id,
        subject_kind=request.subject_kind,
        subject_id=subject_id,
        title=request.title,
        status=request.status,
        submitted_at=request.submitted_at,
        requester_id=requester.id,
        requester_name=requester.full_name,
        requester_role=requester.role,
        **Priced.money_of(request, base_currency),
        change=_change(was, would),
        in_force=_routing_out(was, names),
        proposed=_routing_out(would, names),
    )
