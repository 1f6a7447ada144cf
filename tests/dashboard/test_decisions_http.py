"""End to end: a real submission and decision over HTTP (API -> Temporal -> in-process worker -> PostgreSQL) moves the
dashboard the moment the decision call returns, for the owner, their manager and an admin; and who gets the top
spenders list is decided by role, not by how many people report to the viewer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from activities.deps import ActivityDeps
from domain.models import Entry
from tests.approvals.conftest import Team, expense_body
from tests.conftest import MakeUser
from tests.conftest import TestUser as Member

AMOUNT = "317.45"


async def _overview(client: httpx.AsyncClient, viewer: Member) -> dict[str, Any]:
    response = await client.get("/api/v1/dashboard/overview", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _kpi(client: httpx.AsyncClient, viewer: Member) -> dict[str, Any]:
    response = await client.get("/api/v1/dashboard/kpi?months=1", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _submit(client: httpx.AsyncClient, owner: Member, category: str) -> int:
    # Dated today in UTC, as the dashboard counts months in UTC (the shared helper uses the local date).
    body = expense_body(AMOUNT, category=category, entry_date=datetime.now(UTC).date().isoformat())
    created = await client.post("/api/v1/expenses/", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    entry_id = int(created.json()["id"])
    submitted = await client.post(f"/api/v1/expenses/{entry_id}/submit", headers=owner.headers)
    assert submitted.status_code == 200 and submitted.json()["status"] == "pending", submitted.text
    return entry_id


async def _pending_everywhere(client: httpx.AsyncClient, team: Team) -> None:
    """Before the decision: the amount is pending for all three viewers and counts nowhere as spent."""
    for viewer in (team.employee, team.manager, team.admin):
        before = await _overview(client, viewer)
        assert before["current"]["expenses"] == "0.00", viewer.role
        assert before["pending"]["expenses"] == AMOUNT and before["pending"]["expense_entries"] == 1, viewer.role
        assert before["approvals"]["pending_in_scope"] == 1, viewer.role


async def test_an_approval_over_http_moves_every_viewers_figures_at_once(client: httpx.AsyncClient, team: Team) -> None:
    entry_id = await _submit(client, team.employee, "conferences")
    await _pending_everywhere(client, team)

    approved = await client.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text

    # No waiting and no polling: the figures are read right after the approve call has answered.
    for viewer in (team.employee, team.manager, team.admin):
        after = await _overview(client, viewer)
        assert after["current"]["expenses"] == AMOUNT, viewer.role
        assert after["current"]["net"] == f"-{AMOUNT}", viewer.role
        assert after["pending"]["expenses"] == "0.00" and after["pending"]["expense_entries"] == 0, viewer.role
        assert after["approvals"]["pending_in_scope"] == 0, viewer.role
        assert [e["id"] for e in after["recent_entries"]][:1] == [entry_id], viewer.role
        assert after["recent_entries"][0]["status"] == "approved", viewer.role

        kpi = await _kpi(client, viewer)
        assert kpi["series"][-1]["expenses"] == AMOUNT, viewer.role
        assert kpi["totals"]["expenses"] == AMOUNT, viewer.role
        assert kpi["top_categories"] == [{"category": "conferences", "amount": AMOUNT, "entries": 1}], viewer.role
        assert kpi["approval_rate"] == {"approved": 1, "rejected": 0, "rate": "1.0000"}, viewer.role
        assert kpi["approval_cycle_time"]["decided"] == 1, viewer.role
    assert (await _overview(client, team.manager))["approvals"]["waiting_on_me"] == 0
    # The owner sees no spender ranking; their manager and the admin see the owner at the top.
    assert (await _kpi(client, team.employee))["top_spenders"] is None
    for viewer in (team.manager, team.admin):
        spenders = (await _kpi(client, viewer))["top_spenders"]
        assert [(s["user_id"], s["amount"]) for s in spenders] == [(team.employee.id, AMOUNT)], viewer.role


async def test_a_rejection_over_http_clears_the_pending_amount_and_counts_as_decided(
    client: httpx.AsyncClient, team: Team
) -> None:
    entry_id = await _submit(client, team.employee, "travel")
    await _pending_everywhere(client, team)

    rejected = await client.post(
        f"/api/v1/expenses/{entry_id}/reject", json={"reason": "no receipt"}, headers=team.manager.headers
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text

    for viewer in (team.employee, team.manager, team.admin):
        after = await _overview(client, viewer)
        assert after["current"]["expenses"] == "0.00" and after["current"]["net"] == "0.00", viewer.role
        assert after["pending"]["expenses"] == "0.00" and after["pending"]["expense_entries"] == 0, viewer.role
        assert after["approvals"]["pending_in_scope"] == 0, viewer.role
        assert after["recent_entries"][0]["status"] == "rejected", viewer.role

        kpi = await _kpi(client, viewer)
        assert kpi["series"][-1]["expenses"] == "0.00" and kpi["top_categories"] == [], viewer.role
        assert kpi["approval_rate"] == {"approved": 0, "rejected": 1, "rate": "0.0000"}, viewer.role
        assert kpi["approval_cycle_time"]["decided"] == 1, viewer.role


async def test_top_spenders_follow_the_role_not_the_size_of_the_team(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    boss = await make_user("admin")
    lonely = await make_user("manager", manager=boss)  # nobody reports to them yet
    employee = await make_user("employee", manager=boss)
    accountant = await make_user("accountant")
    async with activity_deps.db.transaction() as tx:
        for owner in (lonely, employee):
            entry = Entry(
                kind="expense",
                amount=Decimal("80.00"),
                currency="USD",
                category="meals",
                description="",
                entry_date=datetime.now(UTC).date(),
                owner_id=owner.id,
                status="approved",
            )
            tx.session.add(entry)
            await tx.session.flush()

    lonely_kpi = await _kpi(client, lonely)
    assert lonely_kpi["scope"] == "team"  # their (one-person) team, as a manager
    assert [(s["user_id"], s["amount"]) for s in lonely_kpi["top_spenders"]] == [(lonely.id, "80.00")]
    assert (await _overview(client, lonely))["scope"] == "team"

    employee_kpi = await _kpi(client, employee)
    assert employee_kpi["scope"] == "own" and employee_kpi["top_spenders"] is None
    assert employee_kpi["totals"]["expenses"] == "80.00"  # their own figures are all there, only the ranking is not

    for viewer in (accountant, boss):  # everyone's books: both spenders, equal amounts in id order
        spenders = (await _kpi(client, viewer))["top_spenders"]
        assert [s["user_id"] for s in spenders] == sorted([lonely.id, employee.id]), viewer.role
