"""/api/v1/budgets as people use it: who may create, revise and see budgets, what a bad body gets (a clear 4xx,
nothing written), versions that stay readable, and a revision that cannot go below what is committed and spent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team, audit_count, submitted_expense
from tests.budgets.conftest import books, create_budget, this_month

D = Decimal


def _valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Team travel",
        "category": "travel",
        "period": "quarter",
        "starts_on": this_month().isoformat(),
        "amounts": ["3000.00", "3000.00"],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"category": None}, "needs a scope"),
        ({"starts_on": "2026-04-15"}, "first day of a month"),
        ({"starts_on": "1999-12-01"}, "between"),
        ({"amounts": []}, "at least 1"),
        ({"amounts": ["NaN"]}, "plain decimal"),
        ({"amounts": ["-5.00"]}, "greater than 0"),
        ({"amounts": ["12.345"]}, "more decimal places than USD"),
        ({"amounts": ["1"] * 61}, "at most 60"),
        ({"period": "week"}, "month"),
        ({"policy": "sometimes"}, "block"),
        ({"thresholds": [80, 80]}, "differ"),
        ({"thresholds": [0]}, "greater than or equal to 1"),
        ({"owner": 3}, "Extra inputs"),
        ({"team_manager_id": 999_999, "category": None}, "no active user"),
    ],
)
async def test_a_bad_budget_gets_a_clear_422_and_nothing_is_written(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, changes: dict[str, Any], says: str
) -> None:
    response = await client.post("/api/v1/budgets", json=_valid(**changes), headers=team.accountant.headers)
    assert response.status_code == 422, response.text
    assert says in response.text
    async with activity_deps.db.transaction() as tx:
        assert await tx.sql.scalar("SELECT count(*) FROM budgets") == 0


async def test_only_accountants_and_up_create_and_revise(client: httpx.AsyncClient, team: Team) -> None:
    for user in (team.employee, team.manager):
        assert (await client.post("/api/v1/budgets", json=_valid(), headers=user.headers)).status_code == 403
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    patch = await client.patch(
        f"/api/v1/budgets/{budget['id']}", json={"name": "x"}, headers={**team.manager.headers, "If-Match": '"1"'}
    )
    assert patch.status_code == 403
    created = await client.post("/api/v1/budgets", json=_valid(), headers=team.admin.headers)
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    assert created.json()["owner_id"] == team.admin.id  # no team: its creator owns it
    assert [p["label"] for p in created.json()["periods"]] == [
        f"{this_month():%Y-%m} to {_month(this_month(), 2):%Y-%m}",
        f"{_month(this_month(), 3):%Y-%m} to {_month(this_month(), 5):%Y-%m}",
    ]


def _month(start: Any, months: int) -> Any:
    from domain.budgets.periods import add_months

    return add_months(start, months)


async def test_each_sees_only_the_budgets_theirs_to_see(client: httpx.AsyncClient, team: Team) -> None:
    mine = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    peers = await create_budget(client, team.accountant, name="Peer team", team_manager_id=team.peer.id)
    company = await create_budget(client, team.accountant, name="Travel", category="travel")

    async def seen(user: Any) -> set[int]:
        response = await client.get("/api/v1/budgets", headers=user.headers)
        assert response.status_code == 200
        return {item["id"] for item in response.json()["items"]}

    assert await seen(team.accountant) == {mine["id"], peers["id"], company["id"]}
    assert await seen(team.admin) == {mine["id"], peers["id"], company["id"]}
    assert await seen(team.manager) == {mine["id"]}
    assert await seen(team.peer) == {peers["id"]}
    assert await seen(team.employee) == set()
    for path in (f"/api/v1/budgets/{peers['id']}", f"/api/v1/budgets/{peers['id']}/versions"):
        assert (await client.get(path, headers=team.manager.headers)).status_code == 404  # not 403: no leak
    assert (await client.get(f"/api/v1/budgets/{mine['id']}", headers=team.employee.headers)).status_code == 404


async def test_a_revision_is_a_new_version_and_the_old_stays_readable(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    path = f"/api/v1/budgets/{budget['id']}"
    headers = team.accountant.headers
    assert (await client.patch(path, json={"name": "x"}, headers=headers)).status_code == 428
    stale = await client.patch(path, json={"name": "x"}, headers={**headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert (await client.patch(path, json={}, headers={**headers, "If-Match": '"1"'})).status_code == 422

    revised = await client.patch(
        path,
        json={"name": "Team travel FY", "amounts": ["1200.00", "900.00"], "policy": "block"},
        headers={**headers, "If-Match": '"1"'},
    )
    assert revised.status_code == 200, revised.text
    now = revised.json()
    assert (now["version"], now["name"], now["policy"]) == (2, "Team travel FY", "block")
    assert [p["amount"] for p in now["periods"]] == ["1200.00", "900.00"]  # a period added at the end
    versions = (await client.get(f"{path}/versions", headers=team.manager.headers)).json()
    assert [(v["version"], v["budget"]["name"], v["budget"]["amounts"]) for v in versions] == [
        (1, "Team travel", ["1000.00"]),
        (2, "Team travel FY", ["1200.00", "900.00"]),
    ]
    assert await audit_count(activity_deps, "budget.created", budget["id"]) == 1
    assert await audit_count(activity_deps, "budget.revised", budget["id"]) == 1
    fewer = await client.patch(path, json={"amounts": ["1200.00"]}, headers={**headers, "If-Match": '"2"'})
    assert fewer.status_code == 422 and "every period (2)" in fewer.text


async def test_a_revision_below_what_is_committed_and_spent_is_refused(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id)
    spent = await submitted_expense(client, team.employee, "300.00")
    approved = await client.post(f"/api/v1/expenses/{spent['id']}/approve", json={}, headers=team.manager.headers)
    assert approved.json()["status"] == "approved"
    await submitted_expense(client, team.employee, "250.00")
    path = f"/api/v1/budgets/{budget['id']}"
    refused = await client.patch(
        path, json={"amounts": ["549.99"]}, headers={**team.accountant.headers, "If-Match": '"1"'}
    )
    assert refused.status_code == 409, refused.text
    assert "550.00 USD committed or spent already" in refused.json()["error"]["message"]
    shown = (await client.get(path, headers=team.accountant.headers)).json()
    assert (shown["version"], shown["periods"][0]["amount"]) == (1, "1000.00")  # nothing changed
    exact = await client.patch(
        path, json={"amounts": ["550.00"]}, headers={**team.accountant.headers, "If-Match": '"1"'}
    )
    assert exact.status_code == 200 and exact.json()["periods"][0]["available"] == "0.00"
    assert await books(activity_deps, budget["id"]) == (D("250"), D("300"), 4)
