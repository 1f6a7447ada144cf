"""The approval controls (docs/controls.md), each tried the way an auditor would: the attempt that must fail, over
HTTP against the real stack (API, worker, Temporal, PostgreSQL), and the forged update sent straight to Temporal.

The organisation: superadmin S > admin A > managers M and P > employees E (under M) and F (under P); accountant C
under A. Limits (policies/policy.csv): manager 10,000, admin 100,000, superadmin unlimited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from core.settings import Settings
from core.temporal import task_queues
from domain.models import ApprovalStep, AuditLog
from tests.approvals.conftest import create_expense, eventually, settle_workflows, submitted_expense
from tests.conftest import MakeUser, TestUser
from workflows.contracts import DecisionOutcome, DecisionRequest


@dataclass
class Org:
    superadmin: TestUser
    admin: TestUser
    manager: TestUser
    peer: TestUser
    employee: TestUser
    other: TestUser  # an employee under the peer
    accountant: TestUser


@pytest.fixture
async def org(make_user: MakeUser, worker: None, temporal_client: Client, settings: Settings) -> AsyncIterator[Org]:
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    manager = await make_user("manager", manager=admin)
    peer = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    other = await make_user("employee", manager=peer)
    accountant = await make_user("accountant", manager=admin)
    yield Org(superadmin, admin, manager, peer, employee, other, accountant)
    await settle_workflows(temporal_client, task_queues(settings.temporal).approvals)


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield http


def _window(days: int = 7) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"starts": now.isoformat(), "ends": (now + timedelta(days=days)).isoformat()}


async def _delegate(client: httpx.AsyncClient, who: TestUser, to: TestUser) -> httpx.Response:
    return await client.put("/api/v1/users/me/delegate", json={"delegate_id": to.id, **_window()}, headers=who.headers)


async def _decide(client: httpx.AsyncClient, entry_id: int, who: TestUser, action: str = "approve") -> httpx.Response:
    body: dict[str, Any] = {"reason": "no"} if action == "reject" else {"comment": "checked"}
    return await client.post(f"/api/v1/expenses/{entry_id}/{action}", json=body, headers=who.headers)


async def _history(client: httpx.AsyncClient, entry_id: int, who: TestUser) -> dict[str, Any]:
    response = await client.get(f"/api/v1/expenses/{entry_id}/history", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _waits_on(client: httpx.AsyncClient, entry_id: int, viewer: TestUser) -> tuple[int, int | None]:
    pending = [step for step in (await _history(client, entry_id, viewer))["steps"] if step["status"] == "pending"]
    assert len(pending) == 1, pending
    return pending[0]["approver_id"], pending[0]["delegate_id"]


async def _deciders(client: httpx.AsyncClient, entry_id: int, viewer: TestUser) -> list[int]:
    steps = (await _history(client, entry_id, viewer))["steps"]
    return [step["decided_by_id"] for step in steps if step["status"] == "approved"]


# --- rule 1: one person, one decision per round -----------------------------------------------------------------


async def test_a_delegate_who_decided_one_level_does_not_decide_the_next(client: httpx.AsyncClient, org: Org) -> None:
    """The auditor's first find: a manager delegates to the admin above them; an expense above the manager's limit
    goes manager -> admin; the admin approves level 0 on behalf of the manager, then tries level 1 as themselves."""
    assert (await _delegate(client, org.manager, org.admin)).status_code == 200
    entry = await submitted_expense(client, org.employee, "15000.00")
    assert await _waits_on(client, entry["id"], org.admin) == (org.manager.id, org.admin.id)

    first = await _decide(client, entry["id"], org.admin)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"  # not approved by one person
    # Level 1 was the admin's; they decided level 0, so it goes to the next distinct person above who covers it.
    assert await _waits_on(client, entry["id"], org.admin) == (org.superadmin.id, None)
    again = await _decide(client, entry["id"], org.admin)
    assert again.status_code in (403, 409), again.text

    final = await _decide(client, entry["id"], org.superadmin)
    assert final.status_code == 200 and final.json()["status"] == "approved", final.text
    assert await _deciders(client, entry["id"], org.superadmin) == [org.admin.id, org.superadmin.id]


async def test_the_requester_decides_nothing_not_even_as_a_delegate(client: httpx.AsyncClient, org: Org) -> None:
    """The admin (the peer's approver) delegates to the peer: the peer's own request cannot go to the peer, and the
    admin is away, so it goes to the admin's own next approver (as any step beyond a delegate's authority does)."""
    assert (await _delegate(client, org.admin, org.peer)).status_code == 200
    entry = await submitted_expense(client, org.peer, "900.00")
    assert await _waits_on(client, entry["id"], org.superadmin) == (org.superadmin.id, None)
    own = await _decide(client, entry["id"], org.peer)
    assert own.status_code == 403, own.text
    assert (await _decide(client, entry["id"], org.superadmin)).json()["status"] == "approved"


# --- rule 2: a delegate decides only within their own authority ---------------------------------------------------


async def test_a_delegate_must_be_able_to_approve_at_all(client: httpx.AsyncClient, org: Org) -> None:
    for nobody in (org.employee, org.accountant):
        refused = await _delegate(client, org.manager, nobody)
        assert refused.status_code == 422, refused.text
        assert "may not approve" in refused.json()["error"]["message"]


async def test_a_step_beyond_the_delegates_limit_goes_to_the_delegators_next_approver(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    """The admin hands their approvals to a manager (limit 10,000) while away: a 15,000 expense's second level is
    beyond the delegate, so it goes to the admin's own next approver, and the trail says why."""
    assert (await _delegate(client, org.admin, org.peer)).status_code == 200
    entry = await submitted_expense(client, org.employee, "15000.00")
    assert (await _decide(client, entry["id"], org.manager)).status_code == 200
    assert await _waits_on(client, entry["id"], org.superadmin) == (org.superadmin.id, None)
    beyond = await _decide(client, entry["id"], org.peer)
    assert beyond.status_code in (403, 404), beyond.text
    async with activity_deps.db.transaction() as tx:
        decision = await tx.session.scalar(
            select(AuditLog).where(AuditLog.action == "approval.approved", AuditLog.resource_id == str(entry["id"]))
        )
    assert decision is not None and decision.changes["next_approver_id"] == org.superadmin.id
    assert any("may not decide it" in reason for reason in decision.changes["passed_over"])


async def test_a_delegate_within_their_limit_decides_on_behalf(client: httpx.AsyncClient, org: Org) -> None:
    assert (await _delegate(client, org.manager, org.peer)).status_code == 200
    entry = await submitted_expense(client, org.employee, "800.00")
    approved = await _decide(client, entry["id"], org.peer)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    step = (await _history(client, entry["id"], org.peer))["steps"][0]
    assert step["decided_by_id"] == org.peer.id and step["on_behalf_of_id"] == org.manager.id


# --- rules 3 and 4: authority at decision time; nobody waits on someone who can no longer decide ---------------


async def test_a_demoted_manager_no_longer_approves_and_their_step_moves_up(
    client: httpx.AsyncClient, org: Org
) -> None:
    entry = await submitted_expense(client, org.employee, "500.00")
    assert await _waits_on(client, entry["id"], org.admin) == (org.manager.id, None)
    # Their team moves first (a manager with reports cannot be demoted), then the demotion.
    moved = await client.patch(f"/api/v1/users/{org.employee.id}", json={"manager_id": org.peer.id},
                               headers=org.admin.headers)  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert await _waits_on(client, entry["id"], org.admin) == (org.peer.id, None)  # the requester's new chain
    # And back, then the demotion of the manager who now has the step again.
    await client.patch(
        f"/api/v1/users/{org.employee.id}", json={"manager_id": org.manager.id}, headers=org.admin.headers
    )
    assert await _waits_on(client, entry["id"], org.admin) == (org.manager.id, None)
    # The manager's token from before the demotion dies with it; their decision through a fresh session is refused.
    await client.patch(f"/api/v1/users/{org.employee.id}", json={"manager_id": org.peer.id}, headers=org.admin.headers)
    demoted = await client.patch(
        f"/api/v1/users/{org.manager.id}", json={"role": "employee"}, headers=org.admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    assert (await _decide(client, entry["id"], org.manager)).status_code == 401
    assert await _waits_on(client, entry["id"], org.admin) == (org.peer.id, None)


async def test_a_deactivated_approvers_steps_go_to_the_next_approver(client: httpx.AsyncClient, org: Org) -> None:
    entry = await submitted_expense(client, org.other, "500.00")
    assert await _waits_on(client, entry["id"], org.admin) == (org.peer.id, None)
    await client.patch(f"/api/v1/users/{org.other.id}", json={"manager_id": org.manager.id}, headers=org.admin.headers)
    entry = await submitted_expense(client, org.employee, "700.00")
    gone = await client.delete(f"/api/v1/users/{org.peer.id}", headers=org.admin.headers)
    assert gone.status_code == 204, gone.text
    assert await _waits_on(client, entry["id"], org.admin) == (org.manager.id, None)


async def test_a_forged_update_straight_to_temporal_is_refused_where_the_decision_is_recorded(
    client: httpx.AsyncClient, org: Org, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    """`temporal workflow update execute --name decide` naming a peer employee as the actor, "on behalf of" the
    manager: the workflow lets the update through to the transition, which checks the database and refuses."""
    entry = await submitted_expense(client, org.employee, "600.00")
    pending = [
        step for step in (await _history(client, entry["id"], org.admin))["steps"] if step["status"] == "pending"
    ]
    async with activity_deps.db.transaction() as tx:
        step_id = await tx.session.scalar(
            select(ApprovalStep.id).where(ApprovalStep.sequence == pending[0]["sequence"],
                                          ApprovalStep.approver_id == org.manager.id)
        )  # fmt: skip
    assert step_id is not None
    forged = DecisionRequest(action="approve", actor_id=org.other.id, step_id=step_id, acting_for=org.manager.id)
    handle = temporal_client.get_workflow_handle(entry["workflow_id"])
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("decide", forged, result_type=DecisionOutcome)
    assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == "Forbidden"
    read = await client.get(f"/api/v1/expenses/{entry['id']}", headers=org.employee.headers)
    assert read.json()["status"] == "pending"
    async with activity_deps.db.transaction() as tx:
        decisions = await tx.session.scalar(
            select(AuditLog.id).where(AuditLog.action.like("approval.%"), AuditLog.resource_id == str(entry["id"]))
        )
    assert decisions is None  # nothing on the trail: nothing was recorded
    # The real approver still decides.
    assert (await _decide(client, entry["id"], org.manager)).json()["status"] == "approved"


# --- rule 6: a resubmission and an edit cannot cross -------------------------------------------------------------


async def test_a_resubmission_and_a_concurrent_edit_never_leave_a_chain_for_another_amount(
    client: httpx.AsyncClient, org: Org, activity_deps: ActivityDeps
) -> None:
    for attempt in range(4):
        entry = await submitted_expense(client, org.employee, "500.00")
        url = f"/api/v1/expenses/{entry['id']}"
        back = await client.post(f"{url}/request-changes", json={"comment": "fix"}, headers=org.manager.headers)
        version = back.json()["version"]
        amount = "15000.00" if attempt % 2 else "600.00"
        edit, resubmit = await asyncio.gather(
            client.patch(url, json={"amount": amount}, headers={**org.employee.headers, "If-Match": f'"{version}"'}),
            client.post(f"{url}/submit", headers=org.employee.headers),
        )
        assert resubmit.status_code == 200, resubmit.text
        assert edit.status_code in (200, 409, 412), edit.text
        async with activity_deps.db.transaction() as tx:
            stored = await tx.sql.one(
                "SELECT e.amount, r.amount, r.chain FROM entries e JOIN approval_requests r ON r.entry_id = e.id "
                "WHERE e.id = %s",
                (entry["id"],),
            )
        assert stored is not None
        entry_amount, request_amount, chain = stored
        assert entry_amount == request_amount  # the chain in force was computed for the amount that stands
        assert len(chain) == (2 if entry_amount > 10000 else 1)


# --- rule 9: bad input is a 4xx; delegation changes are bounded ---------------------------------------------------


async def test_delegation_dates_out_of_range_are_a_422_not_a_500(client: httpx.AsyncClient, org: Org) -> None:
    now = datetime.now(UTC)
    for starts, ends in (
        (now.isoformat(), "9999-12-31T23:30:00-01:00"),
        (now.isoformat(), (now + timedelta(days=400)).isoformat()),
        ("2020-01-01T00:00:00Z", (now + timedelta(days=3)).isoformat()),
    ):
        body = {"delegate_id": org.peer.id, "starts": starts, "ends": ends}
        response = await client.put("/api/v1/users/me/delegate", json=body, headers=org.manager.headers)
        assert response.status_code == 422, response.text


async def test_delegation_changes_are_rate_limited(client: httpx.AsyncClient, org: Org, settings: Settings) -> None:
    allowed = settings.approvals.delegation_changes_per_hour
    statuses = [(await _delegate(client, org.admin, org.peer)).status_code for _ in range(allowed + 1)]
    assert statuses[:allowed] == [200] * allowed and statuses[-1] == 429


async def test_a_delegation_that_reroutes_nothing_tells_no_workflow(
    client: httpx.AsyncClient, org: Org, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, org.employee, "400.00")
    later = datetime.now(UTC) + timedelta(days=2)
    body = {"delegate_id": org.peer.id, "starts": later.isoformat(), "ends": (later + timedelta(days=1)).isoformat()}
    stored = await client.put("/api/v1/users/me/delegate", json=body, headers=org.manager.headers)
    assert stored.status_code == 200 and stored.json()["rerouted"] == [], stored.text
    history = await temporal_client.get_workflow_handle(entry["workflow_id"]).fetch_history()
    signals = [event for event in history.events if event.HasField("workflow_execution_signaled_event_attributes")]
    assert signals == []
    now_in_force = await _delegate(client, org.manager, org.peer)
    assert now_in_force.json()["rerouted"] == [entry["workflow_id"]]

    async def told() -> bool:
        history = await temporal_client.get_workflow_handle(entry["workflow_id"]).fetch_history()
        return any(event.HasField("workflow_execution_signaled_event_attributes") for event in history.events)

    assert await eventually(told)
    assert await _waits_on(client, entry["id"], org.admin) == (org.manager.id, org.peer.id)


async def test_a_draft_is_not_a_decision(client: httpx.AsyncClient, org: Org) -> None:
    draft = await create_expense(client, org.employee)
    assert (await _decide(client, draft["id"], org.manager)).status_code == 409
