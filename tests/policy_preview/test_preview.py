"""POST /api/v1/admin/policies/preview: what a proposed policy would change, before anything is applied."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from api.deps import AppServices
from core.authz import MAX_POLICY_FILE_BYTES
from core.settings import PROJECT_ROOT
from tests.policy_preview.conftest import (
    Org,
    ask_approval,
    shipped_policy,
    with_line_inserted,
    with_manager_limit,
    without_budget_creation,
)

PREVIEW = "/api/v1/admin/policies/preview"


async def _preview(client: httpx.AsyncClient, org: Org, **body: Any) -> dict[str, Any]:
    response = await client.post(PREVIEW, json=body, headers=org.superadmin.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _approvers(routing: dict[str, Any]) -> list[tuple[str, int]]:
    return [(level["role"], level["approver_id"]) for level in routing["levels"]]


async def test_a_lowered_manager_limit_names_the_change_and_the_requests_that_would_climb(
    client: httpx.AsyncClient, org: Org, worker: None, database_url: str, app_services: AppServices
) -> None:
    base = app_services.settings.approvals.base_currency
    climbs = await ask_approval(client, org.employee, "5000.00")
    stays = await ask_approval(client, org.employee, "500.00")
    too_old = await ask_approval(client, org.employee, "7000.00")
    with psycopg.connect(database_url, autocommit=True) as conn:  # submitted before the replay's 90 days
        conn.execute("UPDATE approval_requests SET submitted_at = now() - interval '91 days' WHERE id = %s", (too_old,))

    preview = await _preview(client, org, policy_csv=with_manager_limit("1000.00"))

    assert preview["limits"] == [
        {"role": "manager", "kind": "approve", "before": "10000.00", "after": "1000.00", "currency": base,
         "direction": "lowered"},
    ]  # fmt: skip
    assert preview["roles"] == [] and preview["changes_anything"] and not preview["identical"]
    replay = preview["replay"]
    assert replay["days"] == 90 and replay["requests_replayed"] == 2 and replay["rerouted_count"] == 1
    [rerouted] = replay["rerouted"]
    assert rerouted["request_id"] == climbs and rerouted["change"] == "climbs higher"
    assert rerouted["amount"] == "5000.00" and rerouted["requester_id"] == org.employee.id
    assert _approvers(rerouted["in_force"]) == [("manager", org.manager.id)]
    assert _approvers(rerouted["proposed"]) == [("manager", org.manager.id), ("admin", org.admin.id)]
    assert stays not in {item["request_id"] for item in replay["rerouted"]}

    # Nothing was applied: the manager still approves up to 10000.00 here.
    assert app_services.authorizer.limit_for("manager") == "10000.00"
    assert app_services.authorizer.version == preview["version_in_force"] != preview["proposed_version"]

    # An auto-approval line: the small request would have been approved at once.
    auto = shipped_policy() + "p, employee, approval_limit, auto_approve, 600.00\n"
    preview = await _preview(client, org, policy_csv=auto)
    roles = ("superadmin", "admin", "manager", "accountant", "employee")  # the roles above inherit the line
    assert {(limit["role"], limit["kind"], limit["after"], limit["direction"]) for limit in preview["limits"]} == {
        (role, "auto_approve", "600.00", "granted") for role in roles
    }
    [auto_approved] = preview["replay"]["rerouted"]
    assert auto_approved["request_id"] == stays and auto_approved["change"] == "auto-approved"
    assert auto_approved["proposed"]["auto_approved_by"] == "p, employee, approval_limit, auto_approve, 600.00"


async def test_a_removed_permission_line_lists_the_routes_each_role_loses(client: httpx.AsyncClient, org: Org) -> None:
    preview = await _preview(client, org, policy_csv=without_budget_creation())

    lost = {"resource": "budget", "action": "create", "routes": ["POST /api/v1/budgets"]}
    assert preview["roles"] == [
        {"role": role, "gains": [], "loses": [lost]} for role in ("superadmin", "admin", "accountant")
    ]
    assert preview["limits"] == [] and preview["replay"]["rerouted"] == []


async def test_an_identical_proposal_changes_nothing(client: httpx.AsyncClient, org: Org) -> None:
    preview = await _preview(client, org, policy_csv=shipped_policy())
    assert preview["identical"] and not preview["changes_anything"]
    assert preview["roles"] == [] and preview["limits"] == []


async def test_a_broken_file_is_refused_naming_its_line(
    client: httpx.AsyncClient, org: Org, app_services: AppServices
) -> None:
    version = app_services.authorizer.version
    policy, line = with_line_inserted("p, manager, budget, create\n")
    response = await client.post(PREVIEW, json={"policy_csv": policy}, headers=org.superadmin.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["file"] == "policy.csv" and error["details"]["line"] == line
    assert f"policy.csv line {line}: a permission has 4 fields" in error["message"]

    model = (PROJECT_ROOT / "policies" / "model.conf").read_text()
    broken_model = model.replace("within_limit(r.arg, p.arg)", "no_such_function(r.arg)")
    matcher_line = next(n for n, text in enumerate(model.splitlines(), start=1) if text.startswith("m ="))
    response = await client.post(
        PREVIEW, json={"policy_csv": shipped_policy(), "model_conf": broken_model}, headers=org.superadmin.headers
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert (details["file"], details["line"]) == ("model.conf", matcher_line)
    assert app_services.authorizer.version == version, "a preview applies nothing"


async def test_only_a_superadmin_previews_and_the_proposal_is_bounded(client: httpx.AsyncClient, org: Org) -> None:
    body = {"policy_csv": without_budget_creation()}
    for user in (org.admin, org.manager, org.employee):
        assert (await client.post(PREVIEW, json=body, headers=user.headers)).status_code == 403
    assert (await client.post(PREVIEW, json=body)).status_code == 401

    oversized = {"policy_csv": "#" * (MAX_POLICY_FILE_BYTES + 1)}
    assert (await client.post(PREVIEW, json=oversized, headers=org.superadmin.headers)).status_code == 422
    unknown = {**body, "apply": True}
    assert (await client.post(PREVIEW, json=unknown, headers=org.superadmin.headers)).status_code == 422
