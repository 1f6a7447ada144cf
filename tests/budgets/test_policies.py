"""What each over-budget policy does at submit, seen as the requester and the approvers see it: `block` refuses
(409, naming the budget and what is available) and holds under a race, `extra_approval` adds a level, `warn` flags
the request for its approvers, and a new draft is told early."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team, create_expense, expense_body, submitted_expense
from tests.budgets.conftest import books, create_budget
from tests.conftest import TestUser

D = Decimal


async def _inbox(http: httpx.AsyncClient, user: TestUser) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/approvals/", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_twenty_submissions_at_once_fit_a_blocking_budget_with_room_for_five(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="block",
                                 amounts=["500.00"])  # fmt: skip
    drafts = [await create_expense(client, team.employee, "100.00") for _ in range(20)]
    answers = await asyncio.gather(
        *(client.post(f"/api/v1/expenses/{draft['id']}/submit", headers=team.employee.headers) for draft in drafts)
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 5 + [409] * 15, [
        answer.text for answer in answers if answer.status_code not in (200, 409)
    ]
    refused = [answer.json()["error"] for answer in answers if answer.status_code == 409]
    assert {error["details"]["available"] for error in refused} == {"0.00"}
    assert all("\u201cTeam travel\u201d has 0.00 USD available" in error["message"] for error in refused)
    assert await books(activity_deps, budget["id"]) == (D("500"), D("0"), 5)  # never more than the amount
    async with activity_deps.db.transaction() as tx:
        pending = await tx.sql.scalar(
            "SELECT count(*) FROM entries WHERE id = ANY(%s) AND status = 'pending'", ([d["id"] for d in drafts],)
        )
        drafts_left = await tx.sql.scalar(
            "SELECT count(*) FROM entries WHERE id = ANY(%s) AND status = 'draft'", ([d["id"] for d in drafts],)
        )
    assert (pending, drafts_left) == (5, 15)  # a refused submit changes nothing


async def test_block_names_the_budget_and_what_is_available(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="block",
                                 amounts=["250.00"], name="Q4 offsite")  # fmt: skip
    await submitted_expense(client, team.employee, "200.00")
    draft = await create_expense(client, team.employee, "80.00")
    response = await client.post(f"/api/v1/expenses/{draft['id']}/submit", headers=team.employee.headers)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_state"
    assert error["message"].startswith("over budget: \u201cQ4 offsite\u201d has 50.00 USD available")
    assert "this expense needs 80.00 USD" in error["message"]
    assert (error["details"]["budget_id"], error["details"]["available"]) == (budget["id"], "50.00")
    assert await books(activity_deps, budget["id"]) == (D("200"), D("0"), 1)


async def test_extra_approval_adds_the_budget_owner_as_one_more_level(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="extra_approval",
                                 amounts=["100.00"], owner_id=team.peer.id)  # fmt: skip
    entry = await submitted_expense(client, team.employee, "300.00")
    request = await client.get(f"/api/v1/approvals/{entry['approval_request_id']}", headers=team.manager.headers)
    chain = request.json()["chain"]
    assert [(link["approver_id"], link.get("budget_id")) for link in chain] == [
        (team.manager.id, None),
        (team.peer.id, budget["id"]),
    ]
    [waiting] = await _inbox(client, team.manager)
    assert waiting["budgets"] == [
        {"budget_id": budget["id"], "name": "Team travel", "policy": "extra_approval",
         "period_start": budget["starts_on"], "available": "100.00", "over": True}
    ]  # fmt: skip
    assert waiting["budget_id"] is None  # the manager's own level
    first = await client.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=team.manager.headers)
    assert first.json()["status"] == "pending"
    [extra] = await _inbox(client, team.peer)
    assert (extra["entry_id"], extra["budget_id"]) == (entry["id"], budget["id"])  # says why it is the peer's
    second = await client.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=team.peer.headers)
    assert second.json()["status"] == "approved"
    assert await books(activity_deps, budget["id"]) == (D("0"), D("300"), 3)
    trail = (await client.get(f"/api/v1/expenses/{entry['id']}/history", headers=team.employee.headers)).json()
    assert [(step["approver_id"], step["budget_id"]) for step in trail["steps"]] == [
        (team.manager.id, None),
        (team.peer.id, budget["id"]),
    ]


async def test_extra_approval_goes_above_the_chain_when_the_owner_is_in_it_already(
    client: httpx.AsyncClient, team: Team
) -> None:
    # The team's manager owns the budget (the default) and is the first approver: the extra level goes up a level.
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="extra_approval",
                                 amounts=["100.00"])  # fmt: skip
    assert budget["owner_id"] == team.manager.id
    entry = await submitted_expense(client, team.employee, "300.00")
    request = await client.get(f"/api/v1/approvals/{entry['approval_request_id']}", headers=team.manager.headers)
    assert [link["approver_id"] for link in request.json()["chain"]] == [team.manager.id, team.admin.id]


async def test_under_budget_nothing_is_added_and_warn_flags_only_what_goes_over(
    client: httpx.AsyncClient, team: Team
) -> None:
    await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="extra_approval")
    warned = await create_budget(client, team.accountant, name="Travel", category="travel", policy="warn",
                                 amounts=["150.00"])  # fmt: skip
    small = await submitted_expense(client, team.employee, "100.00")  # fits both
    large = await submitted_expense(client, team.employee, "120.00")  # fits the team's, not the category's
    request = await client.get(f"/api/v1/approvals/{small['approval_request_id']}", headers=team.manager.headers)
    assert len(request.json()["chain"]) == 1
    flags = {item["entry_id"]: item["budgets"] for item in await _inbox(client, team.manager)}
    assert [(f["name"], f["over"]) for f in flags[small["id"]]] == [("Team travel", False), ("Travel", False)]
    assert [(f["name"], f["available"], f["over"]) for f in flags[large["id"]]] == [
        ("Team travel", "900.00", False),
        ("Travel", "50.00", True),
    ]
    assert warned["policy"] == "warn"


async def test_a_new_draft_is_told_what_a_submit_would_find(client: httpx.AsyncClient, team: Team) -> None:
    await create_budget(client, team.accountant, team_manager_id=team.manager.id, policy="block", amounts=["100.00"])
    response = await client.post("/api/v1/expenses/", json=expense_body("120.00"), headers=team.employee.headers)
    assert response.status_code == 201, response.text  # told, not refused
    [check] = response.json()["budget_check"]
    assert (check["name"], check["policy"], check["available"], check["over"]) == (
        "Team travel",
        "block",
        "100.00",
        True,
    )
    body = {key: value for key, value in expense_body("120.00").items() if key != "vendor"}
    revenue = await client.post("/api/v1/revenue/", json={**body, "source": "Client"}, headers=team.employee.headers)
    assert revenue.status_code == 201, revenue.text
    assert revenue.json()["budget_check"] is None  # budgets are for spend
