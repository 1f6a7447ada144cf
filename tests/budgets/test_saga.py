"""The budget saga over the whole stack: every way an expense's approval ends leaves the budget's committed and
actual spend exactly right, checked against the ledger with SQL sums (tests/budgets/conftest.py: `books`)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import Settings
from core.temporal import task_queues
from tests.approvals.conftest import Team, audit_count, create_expense, submitted_expense
from tests.budgets.conftest import books, create_budget, ledger_rows
from workflows.budgets import BudgetUpkeepWorkflow
from workflows.contracts import BudgetUpkeepInput, BudgetUpkeepSummary

D = Decimal


async def _decide(http: httpx.AsyncClient, team: Team, entry_id: int, action: str, body: dict[str, str]) -> str:
    response = await http.post(f"/api/v1/expenses/{entry_id}/{action}", json=body, headers=team.manager.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_an_approval_turns_the_commitment_into_actual_spend(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    entry = await submitted_expense(client, team.employee, "300.00")
    assert await books(activity_deps, budget["id"]) == (D("300"), D("0"), 1)

    assert await _decide(client, team, entry["id"], "approve", {}) == "approved"
    assert await books(activity_deps, budget["id"]) == (D("0"), D("300"), 3)
    assert await ledger_rows(activity_deps, entry["id"]) == [
        ("committed", 1, D("300")),
        ("released", 1, D("300")),
        ("actual", 1, D("300")),
    ]
    shown = (await client.get(f"/api/v1/budgets/{budget['id']}", headers=team.accountant.headers)).json()
    period = shown["periods"][0]
    assert (period["committed"], period["actual"], period["available"]) == ("0.00", "300.00", "700.00")


@pytest.mark.parametrize(
    ("action", "body"),
    [("reject", {"reason": "not in the plan"}), ("withdraw", {})],
)
async def test_a_request_that_ends_without_approval_gives_its_commitment_back(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, action: str, body: dict[str, str]
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    entry = await submitted_expense(client, team.employee, "300.00")
    actor = team.employee if action == "withdraw" else team.manager
    response = await client.post(f"/api/v1/expenses/{entry['id']}/{action}", json=body, headers=actor.headers)
    assert response.status_code == 200, response.text
    assert await books(activity_deps, budget["id"]) == (D("0"), D("0"), 2)
    assert [kind for kind, _, _ in await ledger_rows(activity_deps, entry["id"])] == ["committed", "released"]


@pytest.mark.parametrize(("first", "second"), [("300.00", "500.00"), ("300.00", "100.00")])
async def test_changes_release_and_the_resubmission_commits_its_new_amount(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, first: str, second: str
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    entry = await submitted_expense(client, team.employee, first)
    assert await _decide(client, team, entry["id"], "request-changes", {"comment": "split it"}) == "changes_requested"
    assert await books(activity_deps, budget["id"]) == (D("0"), D("0"), 2)

    path = f"/api/v1/expenses/{entry['id']}"
    version = (await client.get(path, headers=team.employee.headers)).json()["version"]
    edited = await client.patch(
        path, json={"amount": second}, headers={**team.employee.headers, "If-Match": f'"{version}"'}
    )
    assert edited.status_code == 200, edited.text
    resubmitted = await client.post(f"{path}/submit", headers=team.employee.headers)
    assert resubmitted.status_code == 200, resubmitted.text
    assert await books(activity_deps, budget["id"]) == (D(second), D("0"), 3)

    assert await _decide(client, team, entry["id"], "approve", {}) == "approved"
    assert await books(activity_deps, budget["id"]) == (D("0"), D(second), 5)
    assert await ledger_rows(activity_deps, entry["id"]) == [
        ("committed", 1, D(first)),
        ("released", 1, D(first)),
        ("committed", 2, D(second)),
        ("released", 2, D(second)),
        ("actual", 2, D(second)),
    ]


async def _upkeep(temporal_client: Client, settings: Settings) -> BudgetUpkeepSummary:
    result: BudgetUpkeepSummary = await temporal_client.execute_workflow(
        BudgetUpkeepWorkflow.run,
        BudgetUpkeepInput(grace_seconds=0, batch=1),  # a page a request: every page is looked at
        id=f"budget-upkeep-test-{uuid.uuid4().hex[:8]}",
        task_queue=task_queues(settings.temporal).reports,
    )
    return result


async def test_the_reconciler_releases_what_a_terminated_workflow_held_and_nothing_else(
    client: httpx.AsyncClient,
    team: Team,
    activity_deps: ActivityDeps,
    temporal_client: Client,
    settings: Settings,
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    waiting = await submitted_expense(client, team.employee, "200.00")  # the first page: still running
    doomed = await submitted_expense(client, team.employee, "300.00")
    await temporal_client.get_workflow_handle(doomed["workflow_id"]).terminate("an operator ended it")
    assert await books(activity_deps, budget["id"]) == (D("500"), D("0"), 2)  # nothing heard of it yet

    summary = await _upkeep(temporal_client, settings)
    assert summary.reconcile.checked == 2
    assert [(r.workflow_id, r.workflow_status) for r in summary.reconcile.released] == [
        (doomed["workflow_id"], "TERMINATED")
    ]
    assert await books(activity_deps, budget["id"]) == (D("200"), D("0"), 3)  # the waiting one still holds
    assert await audit_count(activity_deps, "budget.released", doomed["id"]) == 1
    assert await audit_count(activity_deps, "budget.released", waiting["id"]) == 0

    again = await _upkeep(temporal_client, settings)  # nothing left to release: no second row, no second audit
    assert again.reconcile.released == []
    assert await audit_count(activity_deps, "budget.released", doomed["id"]) == 1
    assert await _decide(client, team, waiting["id"], "approve", {}) == "approved"
    assert await books(activity_deps, budget["id"]) == (D("0"), D("200"), 5)


async def test_a_team_budget_and_a_category_budget_are_both_charged(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    by_team = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    by_category = await create_budget(client, team.accountant, name="Travel", category="travel")
    elsewhere = await create_budget(client, team.accountant, name="Peer team", team_manager_id=team.peer.id)
    other_category = await create_budget(client, team.accountant, name="Meals", category="meals")
    entry = await submitted_expense(client, team.employee, "120.00")  # category travel, by the manager's report
    assert await books(activity_deps, by_team["id"]) == (D("120"), D("0"), 1)
    assert await books(activity_deps, by_category["id"]) == (D("120"), D("0"), 1)
    assert await books(activity_deps, elsewhere["id"]) == (D("0"), D("0"), 0)
    assert await books(activity_deps, other_category["id"]) == (D("0"), D("0"), 0)
    assert await _decide(client, team, entry["id"], "approve", {}) == "approved"
    assert await books(activity_deps, by_team["id"]) == (D("0"), D("120"), 3)
    assert await books(activity_deps, by_category["id"]) == (D("0"), D("120"), 3)


async def test_submits_and_decisions_at_once_on_one_budget_all_go_through(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    # Both lock the budget period and the dashboard totals of the entry's status: in one order everywhere, or a
    # submit and an approval wait on each other until PostgreSQL breaks the deadlock (a 500 for the submit).
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, amounts=["100000.00"])
    pending = [await submitted_expense(client, team.employee, "10.00") for _ in range(12)]
    drafts = [await create_expense(client, team.employee, "10.00") for _ in range(12)]
    answers = await asyncio.gather(
        *(client.post(f"/api/v1/expenses/{e['id']}/approve", json={}, headers=team.manager.headers) for e in pending),
        *(client.post(f"/api/v1/expenses/{d['id']}/submit", headers=team.employee.headers) for d in drafts),
    )
    assert [answer.status_code for answer in answers] == [200] * 24, [a.text for a in answers if a.status_code != 200]
    assert await books(activity_deps, budget["id"]) == (D("120"), D("120"), 12 * 3 + 12)
