"""What the chain is pinned to, and what the Temporal UI shows: a policy edit affects new requests only, an amount
raised on resubmission goes up the chain again, auto-approval by policy works through the API, and the search
attributes follow every transition."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from core.settings import PROJECT_ROOT, Settings
from tests.approvals.conftest import Team, audit_count, eventually, submitted_expense
from tests.conftest import own_api
from workflows.contracts import AMOUNT_CENTS, APPROVAL_STATUS, CURRENT_APPROVER, ApprovalResult

MANAGER_LIMIT = "p, manager, approval_limit, approve, 10000.00\n"
AUTO_APPROVE_OFF = "# p, employee, approval_limit, auto_approve, 50.00\n"


@dataclass
class LiveApi:
    http: httpx.AsyncClient
    policy: Path

    async def reload(self, text: str, superadmin_headers: dict[str, str]) -> None:
        self.policy.write_text(text)
        reloaded = await self.http.post("/api/v1/admin/policies/reload", headers=superadmin_headers)
        assert reloaded.status_code == 200, reloaded.text


@pytest.fixture
async def live_api(settings: Settings, temporal_client: Client, tmp_path: Path) -> AsyncIterator[LiveApi]:
    """An API of its own over a copy of policies/, starting workflows on the suite's worker queue."""
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    async with own_api(settings.model_copy(update={"policy_dir": policies}), temporal_client) as http:
        yield LiveApi(http, policies / "policy.csv")


async def _search_attributes(client: Client, workflow_id: str) -> dict[str, object]:
    described = await client.get_workflow_handle(workflow_id).describe()
    found = described.typed_search_attributes
    return {
        "status": found.get(APPROVAL_STATUS),
        "approver": found.get(CURRENT_APPROVER),
        "amount_cents": found.get(AMOUNT_CENTS),
    }


async def test_a_policy_edit_applies_to_new_requests_only(
    live_api: LiveApi, team: Team, make_user, temporal_client: Client
) -> None:
    superadmin = await make_user("superadmin")
    in_flight = await submitted_expense(live_api.http, team.employee, "15000.00")  # manager 10000: admin decides too

    original = live_api.policy.read_text()
    assert MANAGER_LIMIT in original
    await live_api.reload(
        original.replace(MANAGER_LIMIT, "p, manager, approval_limit, approve, 20000.00\n"), superadmin.headers
    )

    url = f"/api/v1/expenses/{in_flight['id']}"
    first = await live_api.http.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"  # the limit pinned at submit still sends it to the admin
    second = await live_api.http.post(f"{url}/approve", json={}, headers=team.admin.headers)
    assert second.json()["status"] == "approved"

    new = await submitted_expense(live_api.http, team.employee, "15000.00")
    decided = await live_api.http.post(f"/api/v1/expenses/{new['id']}/approve", json={}, headers=team.manager.headers)
    assert decided.json()["status"] == "approved"  # a new request reads the new limit: the manager's word suffices


async def test_auto_approval_by_policy_through_the_api(
    live_api: LiveApi, team: Team, make_user, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    superadmin = await make_user("superadmin")
    original = live_api.policy.read_text()
    assert AUTO_APPROVE_OFF in original
    await live_api.reload(original.replace(AUTO_APPROVE_OFF, AUTO_APPROVE_OFF.lstrip("# ")), superadmin.headers)

    small = await submitted_expense_allowing_approved(live_api.http, team, "40.00")
    assert small["status"] == "approved"
    result = await temporal_client.get_workflow_handle(small["workflow_id"], result_type=ApprovalResult).result()
    assert result.status == "approved"
    history = (await live_api.http.get(f"/api/v1/expenses/{small['id']}/history", headers=team.employee.headers)).json()
    assert history["steps"] == []  # nobody had to decide
    assert await audit_count(activity_deps, "entry.submitted", small["id"]) == 1

    large = await submitted_expense(live_api.http, team.employee, "60.00")
    assert large["status"] == "pending"  # above the auto-approve limit: the manager decides


async def submitted_expense_allowing_approved(http: httpx.AsyncClient, team: Team, amount: str) -> dict:
    from tests.approvals.conftest import create_expense

    entry = await create_expense(http, team.employee, amount)
    response = await http.post(f"/api/v1/expenses/{entry['id']}/submit", headers=team.employee.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_an_amount_raised_on_resubmission_climbs_the_chain_again(
    client: httpx.AsyncClient, team: Team, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, team.employee, "120.00")
    url = f"/api/v1/expenses/{entry['id']}"
    assert (await _search_attributes(temporal_client, entry["workflow_id"]))["amount_cents"] == 12000
    changes = await client.post(f"{url}/request-changes", json={"comment": "whole trip"}, headers=team.manager.headers)
    assert changes.status_code == 200, changes.text
    etag = (await client.get(url, headers=team.employee.headers)).headers["ETag"]
    edited = await client.patch(url, json={"amount": "15000.00"}, headers={**team.employee.headers, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    assert (await client.post(f"{url}/submit", headers=team.employee.headers)).json()["status"] == "pending"

    by_manager = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert by_manager.status_code == 200, by_manager.text
    assert by_manager.json()["status"] == "pending"  # 15000 is above the manager's limit: the admin decides
    assert (await _search_attributes(temporal_client, entry["workflow_id"]))["amount_cents"] == 1500000
    by_admin = await client.post(f"{url}/approve", json={}, headers=team.admin.headers)
    assert by_admin.json()["status"] == "approved"


async def test_search_attributes_follow_every_transition(
    client: httpx.AsyncClient, team: Team, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, team.employee, "15000.00")
    url = f"/api/v1/expenses/{entry['id']}"
    workflow_id = entry["workflow_id"]
    assert await _search_attributes(temporal_client, workflow_id) == {
        "status": "pending",
        "approver": str(team.manager.id),
        "amount_cents": 1500000,
    }
    assert (await client.post(f"{url}/approve", json={}, headers=team.manager.headers)).status_code == 200
    assert (await _search_attributes(temporal_client, workflow_id))["approver"] == str(team.admin.id)
    assert (await client.post(f"{url}/reject", json={"reason": "no"}, headers=team.admin.headers)).status_code == 200

    async def ended() -> bool:
        described = await temporal_client.get_workflow_handle(workflow_id).describe()
        return described.status == WorkflowExecutionStatus.COMPLETED

    assert await eventually(ended)
    assert await _search_attributes(temporal_client, workflow_id) == {
        "status": "rejected",
        "approver": None,
        "amount_cents": 1500000,
    }
    # The Temporal UI's query finds it by these attributes (docs/operations.md, finding workflows in the Temporal UI).
    # Ids restart with every test's empty tables, so earlier tests' runs may match too: look for this run.
    query = f"EntryKind = 'expense' AND EntryId = '{entry['id']}' AND ApprovalStatus = 'rejected'"
    run_id = (await temporal_client.get_workflow_handle(workflow_id).describe()).run_id

    async def listed() -> bool:
        return run_id in [w.run_id async for w in temporal_client.list_workflows(query)]

    assert await eventually(listed)
