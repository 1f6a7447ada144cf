"""Entries and their approvals end to end: HTTP -> API -> Temporal dev server -> worker -> PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from domain.models import ApprovalStep, Notification
from tests.approvals.conftest import (
    Team,
    audit_count,
    create_expense,
    ended_status,
    eventually,
    expense_body,
    record_history,
    submitted_expense,
)
from workflows.contracts import ApprovalResult


async def test_expense_above_the_manager_limit_goes_manager_then_admin(
    client: httpx.AsyncClient, team: Team, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    entry = await submitted_expense(client, team.employee, "15000.00")  # manager limit 10000, admin 100000
    url = f"/api/v1/expenses/{entry['id']}"
    assert entry["workflow_id"] == f"approval-expense-{entry['id']}"

    inbox = (await client.get("/api/v1/approvals/", headers=team.manager.headers)).json()
    assert [item["entry_id"] for item in inbox["items"]] == [entry["id"]]
    assert (await client.get("/api/v1/approvals/", headers=team.admin.headers)).json()["total"] == 0

    first = await client.post(f"{url}/approve", json={"comment": "fine by me"}, headers=team.manager.headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"  # the amount exceeds the manager's limit: the admin decides next
    admin_inbox = (await client.get("/api/v1/approvals/", headers=team.admin.headers)).json()
    assert [item["entry_id"] for item in admin_inbox["items"]] == [entry["id"]]

    second = await client.post(f"{url}/approve", json={}, headers=team.admin.headers)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "approved"
    assert await ended_status(temporal_client, entry["workflow_id"]) == WorkflowExecutionStatus.COMPLETED

    history = (await client.get(f"{url}/history", headers=team.employee.headers)).json()
    assert [(s["level"], s["approver_id"], s["status"]) for s in history["steps"]] == [
        (0, team.manager.id, "approved"),
        (1, team.admin.id, "approved"),
    ]
    assert history["steps"][0]["comment"] == "fine by me"
    assert history["workflow_url"].endswith(f"/namespaces/default/workflows/{entry['workflow_id']}")
    assert [event["action"] for event in history["events"]] == [
        "entry.created",
        "entry.submitted",
        "approval.approved",
        "approval.approved",
    ]
    assert await audit_count(activity_deps, "approval.approved", entry["id"]) == 2
    await record_history(temporal_client, entry["workflow_id"], "two_level_approval")
    async with activity_deps.db.transaction() as tx:
        events = set(
            await tx.session.scalars(select(Notification.event_type).where(Notification.user_id == team.employee.id))
        )
    assert "entry_approved" in events


async def test_nobody_approves_their_own_entry_not_even_a_superadmin(
    client: httpx.AsyncClient, team: Team, make_user
) -> None:
    boss = await make_user("superadmin")
    root = await make_user("superadmin", manager=boss)  # a superadmin with a manager, so the entry has a chain
    entry = await submitted_expense(client, root)
    response = await client.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=root.headers)
    assert response.status_code == 403
    own = await submitted_expense(client, team.manager)
    response = await client.post(f"/api/v1/expenses/{own['id']}/approve", json={}, headers=team.manager.headers)
    assert response.status_code == 403


async def test_only_the_current_approver_decides(client: httpx.AsyncClient, team: Team) -> None:
    entry = await submitted_expense(client, team.employee, "15000.00")
    url = f"/api/v1/expenses/{entry['id']}"
    # The admin is the second level: the first step is not theirs yet.
    assert (await client.post(f"{url}/approve", json={}, headers=team.admin.headers)).status_code == 403
    # An accountant sees every entry but approves nothing here.
    assert (
        await client.post(f"{url}/reject", json={"reason": "no"}, headers=team.accountant.headers)
    ).status_code == 403
    # Another team's manager does not even see it.
    assert (await client.post(f"{url}/approve", json={}, headers=team.peer.headers)).status_code == 404
    assert (await client.get(url, headers=team.employee.headers)).json()["status"] == "pending"


async def test_a_decided_step_is_409(client: httpx.AsyncClient, team: Team) -> None:
    entry = await submitted_expense(client, team.employee, "15000.00")
    url = f"/api/v1/expenses/{entry['id']}"
    assert (await client.post(f"{url}/approve", json={}, headers=team.manager.headers)).status_code == 200
    again = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert again.status_code == 409, again.text
    assert (await client.post(f"{url}/reject", json={"reason": "x"}, headers=team.admin.headers)).status_code == 200
    after = await client.post(f"{url}/approve", json={}, headers=team.admin.headers)
    assert after.status_code == 409
    assert (await client.get(url, headers=team.employee.headers)).json()["status"] == "rejected"


async def test_twenty_concurrent_approvals_make_one_transition(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}/approve"
    responses = await asyncio.gather(*(client.post(url, json={}, headers=team.manager.headers) for _ in range(20)))
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] + [409] * 19, codes
    assert await audit_count(activity_deps, "approval.approved", entry["id"]) == 1
    async with activity_deps.db.transaction() as tx:
        steps = list(await tx.session.scalars(select(ApprovalStep.status).where(ApprovalStep.status == "approved")))
    assert steps == ["approved"]
    await record_history(temporal_client, entry["workflow_id"], "concurrent_approvals")


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    headers = {**team.employee.headers, "Idempotency-Key": "create-1"}
    first = await client.post("/api/v1/expenses/", json=expense_body(), headers=headers)
    again = await client.post("/api/v1/expenses/", json=expense_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    listed = (await client.get("/api/v1/expenses/", headers=team.employee.headers)).json()
    assert listed["total"] == 1
    different = await client.post("/api/v1/expenses/", json=expense_body("99.00"), headers=headers)
    assert different.status_code == 422

    entry_id = first.json()["id"]
    submit_headers = {**team.employee.headers, "Idempotency-Key": "submit-1"}
    for _ in range(2):
        submitted = await client.post(f"/api/v1/expenses/{entry_id}/submit", headers=submit_headers)
        assert submitted.status_code == 200, submitted.text
    approve_headers = {**team.manager.headers, "Idempotency-Key": "approve-1"}
    answers = [
        await client.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=approve_headers) for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert answers[1].json()["status"] == "approved"
    assert await audit_count(activity_deps, "approval.approved", entry_id) == 1
    assert await audit_count(activity_deps, "entry.submitted", entry_id) == 1
    reused = await client.post(f"/api/v1/expenses/{entry_id}/reject", json={"reason": "x"}, headers=approve_headers)
    assert reused.status_code == 422


async def test_request_changes_edit_with_if_match_resubmit_and_approve(
    client: httpx.AsyncClient, team: Team, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    changes = await client.post(
        f"{url}/request-changes", json={"comment": "add the receipt"}, headers=team.manager.headers
    )
    assert changes.status_code == 200, changes.text
    assert changes.json()["status"] == "changes_requested"

    current = await client.get(url, headers=team.employee.headers)
    etag = current.headers["ETag"]
    assert (await client.patch(url, json={"amount": "130.00"}, headers=team.employee.headers)).status_code == 428
    stale = {**team.employee.headers, "If-Match": '"1"'}
    assert (await client.patch(url, json={"amount": "130.00"}, headers=stale)).status_code == 412
    edited = await client.patch(url, json={"amount": "130.00"}, headers={**team.employee.headers, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    assert edited.json()["amount"] == "130.00"

    resubmitted = await client.post(f"{url}/submit", headers=team.employee.headers)
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["status"] == "pending"
    assert resubmitted.json()["workflow_id"] == entry["workflow_id"]  # the same lifecycle continues
    approved = await client.post(f"{url}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    history = (await client.get(f"{url}/history", headers=team.employee.headers)).json()
    assert history["round"] == 2
    assert [(s["round"], s["status"]) for s in history["steps"]] == [(1, "changes_requested"), (2, "approved")]
    assert history["steps"][0]["comment"] == "add the receipt"
    result = await temporal_client.get_workflow_handle(entry["workflow_id"], result_type=ApprovalResult).result()
    assert result.status == "approved" and result.rounds == 2
    await record_history(temporal_client, entry["workflow_id"], "changes_resubmit_approve")


async def test_withdraw_ends_the_workflow(client: httpx.AsyncClient, team: Team, temporal_client: Client) -> None:
    entry = await submitted_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    assert (await client.post(f"{url}/withdraw", headers=team.manager.headers)).status_code == 403
    withdrawn = await client.post(f"{url}/withdraw", headers=team.employee.headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert await ended_status(temporal_client, entry["workflow_id"]) == WorkflowExecutionStatus.COMPLETED
    assert (await client.post(f"{url}/approve", json={}, headers=team.manager.headers)).status_code == 409
    assert (await client.post(f"{url}/withdraw", headers=team.employee.headers)).status_code == 409
    await record_history(temporal_client, entry["workflow_id"], "withdraw")


async def test_delegation_reroutes_a_step_in_flight(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    entry = await submitted_expense(client, team.employee)
    url = f"/api/v1/expenses/{entry['id']}"
    assert (await client.post(f"{url}/approve", json={}, headers=team.peer.headers)).status_code == 404
    now = datetime.now(UTC)
    window = {"delegate_id": team.peer.id, "starts": now.isoformat(), "ends": (now + timedelta(days=30)).isoformat()}
    stored = await client.put("/api/v1/users/me/delegate", json=window, headers=team.manager.headers)
    assert stored.status_code == 200, stored.text
    assert stored.json()["rerouted"] == [entry["workflow_id"]]
    assert stored.json()["active"] is True

    inbox = (await client.get("/api/v1/approvals/", headers=team.peer.headers)).json()
    assert [item["entry_id"] for item in inbox["items"]] == [entry["id"]]

    async def delegate_notified() -> bool:
        async with activity_deps.db.transaction() as tx:
            found = await tx.session.scalar(
                select(Notification.id).where(
                    Notification.user_id == team.peer.id, Notification.event_type == "approval_delegated"
                )
            )
        return found is not None

    assert await eventually(delegate_notified)  # the signal re-routes asynchronously

    approved = await client.post(f"{url}/approve", json={}, headers=team.peer.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    history = (await client.get(f"{url}/history", headers=team.employee.headers)).json()
    step = history["steps"][0]
    assert step["decided_by_id"] == team.peer.id and step["on_behalf_of_id"] == team.manager.id
    assert "on behalf of" in step["summary"]
    await record_history(temporal_client, entry["workflow_id"], "delegated_approval")
    assert (await client.get("/api/v1/users/me/delegate", headers=team.manager.headers)).status_code == 200
    assert (await client.delete("/api/v1/users/me/delegate", headers=team.manager.headers)).status_code == 204
    assert (await client.get("/api/v1/users/me/delegate", headers=team.manager.headers)).status_code == 404


async def test_bad_input_is_a_clear_422(client: httpx.AsyncClient, team: Team) -> None:
    cases = [
        expense_body(currency="ABC"),  # no such currency
        expense_body("1234.5", currency="JPY"),  # the yen has no minor units
        expense_body("1e3"),
        expense_body("NaN"),
        expense_body("12.345"),
        expense_body("0"),
        expense_body("2000000000.00"),
        {**expense_body(), "unknown": 1},
        {**expense_body(), "source": "not for expenses"},
    ]
    for body in cases:
        response = await client.post("/api/v1/expenses/", json=body, headers=team.employee.headers)
        assert response.status_code == 422, (body, response.text)
    yen = await client.post(
        "/api/v1/expenses/", json=expense_body("1234.5", currency="JPY"), headers=team.employee.headers
    )
    assert "JPY" in yen.json()["error"]["message"]
    revenue = await client.post(
        "/api/v1/revenue/",
        json={**{k: v for k, v in expense_body().items() if k != "vendor"}, "source": "Client A"},
        headers=team.employee.headers,
    )
    assert revenue.status_code == 201 and revenue.json()["source"] == "Client A"
    unsaid = {k: v for k, v in expense_body().items() if k != "currency"}
    defaulted = await client.post("/api/v1/expenses/", json=unsaid, headers=team.employee.headers)
    assert defaulted.status_code == 201, defaulted.text
    assert defaulted.json()["currency"] == "USD"  # the base currency when left out


async def test_lists_filter_sort_and_stay_within_visibility(client: httpx.AsyncClient, team: Team, make_user) -> None:
    outsider = await make_user("employee", manager=team.peer)
    mine = [await create_expense(client, team.employee, amount) for amount in ("10.00", "300.00", "25.50")]
    theirs = await create_expense(client, outsider, "50.00")
    listed = (await client.get("/api/v1/expenses/?sort=amount&order=asc", headers=team.employee.headers)).json()
    assert [item["amount"] for item in listed["items"]] == ["10.00", "25.50", "300.00"]
    ranged = (await client.get("/api/v1/expenses/?amount_min=20&amount_max=100", headers=team.manager.headers)).json()
    assert [item["id"] for item in ranged["items"]] == [mine[2]["id"]]
    assert (await client.get(f"/api/v1/expenses/{theirs['id']}", headers=team.employee.headers)).status_code == 404
    assert (await client.get(f"/api/v1/revenue/{mine[0]['id']}", headers=team.employee.headers)).status_code == 404
    everyone = (await client.get("/api/v1/expenses/?limit=2", headers=team.accountant.headers)).json()
    assert everyone["total"] == 4 and len(everyone["items"]) == 2
    past_the_end = (await client.get("/api/v1/expenses/?limit=2&offset=10", headers=team.accountant.headers)).json()
    assert past_the_end["items"] == [] and past_the_end["total"] == 4 and past_the_end["total_exact"] is True
    nothing = (await client.get("/api/v1/expenses/?amount_min=9999", headers=team.accountant.headers)).json()
    assert nothing == {**nothing, "items": [], "total": 0, "total_exact": True}
    assert (await client.get("/api/v1/expenses/?limit=101", headers=team.accountant.headers)).status_code == 422
    drafts = (await client.get("/api/v1/expenses/?status=draft", headers=team.manager.headers)).json()
    assert drafts["total"] == 3
    assert (await client.delete(f"/api/v1/expenses/{mine[0]['id']}", headers=team.employee.headers)).status_code == 204
