"""Threshold alerts: the owner is told once per period, threshold and crossing, in-app at once and by email from
the upkeep; a release (or a revision) that brings the use back under arms the threshold again."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import Settings
from core.temporal import task_queues
from tests.approvals.conftest import Team, notifications_for, submitted_expense
from tests.budgets.conftest import create_budget
from workflows.budgets import BudgetUpkeepWorkflow
from workflows.contracts import BudgetUpkeepInput, BudgetUpkeepSummary

EVENT = "budget_threshold"


async def _upkeep(temporal_client: Client, settings: Settings) -> BudgetUpkeepSummary:
    result: BudgetUpkeepSummary = await temporal_client.execute_workflow(
        BudgetUpkeepWorkflow.run,
        BudgetUpkeepInput(grace_seconds=3600),
        id=f"budget-upkeep-test-{uuid.uuid4().hex[:8]}",
        task_queue=task_queues(settings.temporal).reports,
    )
    return result


async def _mailed(deps: ActivityDeps) -> list[str]:
    async with deps.db.transaction() as tx:
        rows = await tx.sql.all("SELECT subject FROM sent_emails WHERE subject LIKE 'Budget %%' ORDER BY subject")
    return [row[0] for row in rows]


async def test_each_crossing_alerts_the_owner_once_in_app_and_by_email(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client, settings: Settings
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, thresholds=[50, 100])
    big = await submitted_expense(client, team.employee, "600.00")  # 60%: past 50
    assert [n.title for n in await notifications_for(activity_deps, team.manager.id, EVENT)] == [
        "Budget \u201cTeam travel\u201d reached 50% for " + budget["periods"][0]["label"]
    ]
    await submitted_expense(client, team.employee, "100.00")  # 70%: still past 50, not yet 100
    assert len(await notifications_for(activity_deps, team.manager.id, EVENT)) == 1

    summary = await _upkeep(temporal_client, settings)
    assert summary.alerts_sent == 1
    assert await _mailed(activity_deps) == [
        "Budget \u201cTeam travel\u201d reached 50% for " + budget["periods"][0]["label"]
    ]
    assert (await _upkeep(temporal_client, settings)).alerts_sent == 0  # sent once

    rejected = await client.post(
        f"/api/v1/expenses/{big['id']}/reject", json={"reason": "too much"}, headers=team.manager.headers
    )
    assert rejected.status_code == 200  # back to 10%: the 50% threshold is armed again
    assert len(await notifications_for(activity_deps, team.manager.id, EVENT)) == 1
    await submitted_expense(client, team.employee, "950.00")  # 105%: past 50 again, and past 100
    alerts = [n.title for n in await notifications_for(activity_deps, team.manager.id, EVENT)]
    assert [title.split(" reached ")[1].split("%")[0] for title in alerts] == ["50", "50", "100"]
    assert (await _upkeep(temporal_client, settings)).alerts_sent == 2
    assert len(await _mailed(activity_deps)) == 3
    async with activity_deps.db.transaction() as tx:
        crossings = await tx.sql.all(
            "SELECT threshold, crossings, above FROM budget_thresholds WHERE budget_id = %s ORDER BY threshold",
            (budget["id"],),
        )
    assert crossings == [(50, 2, True), (100, 1, True)]


async def test_a_lower_revision_that_crosses_a_threshold_alerts(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    budget = await create_budget(client, team.accountant, team_manager_id=team.manager.id, thresholds=[80])
    await submitted_expense(client, team.employee, "700.00")  # 70%
    assert await notifications_for(activity_deps, team.manager.id, EVENT) == []
    revised = await client.patch(
        f"/api/v1/budgets/{budget['id']}",
        json={"amounts": ["800.00"]},
        headers={**team.accountant.headers, "If-Match": '"1"'},
    )
    assert revised.status_code == 200, revised.text  # 87.5%
    [alert] = await notifications_for(activity_deps, team.manager.id, EVENT)
    assert "reached 80%" in alert.title and alert.data["available"] == "100.00"
