"""Possible duplicates over the whole stack: what the requester and the approver see (the submit's answer, the
expense, the inbox, the request, the trail), who may dismiss and how it is audited, a resubmission checking again,
the same receipt on two people's expenses, and the check turned off by its setting."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import DuplicateSettings, Settings
from tests.approvals.conftest import Team, audit_count, expense_body
from tests.conftest import MakeUser, TestUser, own_api
from tests.duplicates.conftest import receipt, rolled_back

EXPENSES = "/api/v1/expenses"


async def draft(http: httpx.AsyncClient, user: TestUser, amount: str = "120.00", **fields: Any) -> dict[str, Any]:
    response = await http.post(f"{EXPENSES}/", json=expense_body(amount, **fields), headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit(http: httpx.AsyncClient, user: TestUser, entry_id: int) -> dict[str, Any]:
    response = await http.post(f"{EXPENSES}/{entry_id}/submit", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def submitted(http: httpx.AsyncClient, user: TestUser, amount: str = "120.00", **fields: Any) -> dict[str, Any]:
    return await submit(http, user, (await draft(http, user, amount, **fields))["id"])


async def inbox_counts(http: httpx.AsyncClient, approver: TestUser) -> dict[int, int]:
    response = await http.get("/api/v1/approvals/", headers=approver.headers)
    assert response.status_code == 200, response.text
    return {item["entry_id"]: item["possible_duplicates"] for item in response.json()["items"]}


def dismiss(http: httpx.AsyncClient, user: TestUser, entry_id: int, duplicate_id: int, body: Any) -> Any:
    url = f"{EXPENSES}/{entry_id}/duplicates/{duplicate_id}/dismiss"
    return http.post(url, json=body, headers=user.headers)


async def submit_audit(deps: ActivityDeps, action: str, entry_id: int) -> dict[str, Any]:
    async with deps.db.transaction() as tx:
        changes = await tx.sql.scalar(
            "SELECT changes FROM audit_log WHERE action = %s AND resource_type = 'entry' AND resource_id = %s "
            "ORDER BY id DESC LIMIT 1",
            (action, str(entry_id)),
        )
    assert changes is not None
    return changes  # type: ignore[no-any-return]


async def test_the_requester_and_the_approver_see_a_similar_expense(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    first = await submitted(client, team.employee, "120.00")
    assert first["possible_duplicates"] == []
    second = await submitted(client, team.employee, "120.50", vendor="RAIL CO")
    [found] = second["possible_duplicates"]
    assert found["other_entry_id"] == first["id"] and found["reason"] == "similar"
    assert found["details"]["amount"] == "120.00" and found["details"]["currency"] == "USD"
    assert found["details"]["vendor"] == "Rail Co" and found["details"]["similarity"] == 1.0
    assert found["details"]["date"] == first["entry_date"] and found["details"]["status"] == "pending"
    assert found["dismissed"] is False and found["dismissed_by"] is None

    for viewer in (team.employee, team.manager):  # the requester, and the approver
        page = await client.get(f"{EXPENSES}/{second['id']}", headers=viewer.headers)
        assert page.json()["possible_duplicates"] == [found]
    listed = (await client.get(f"{EXPENSES}/", headers=team.employee.headers)).json()["items"]
    assert {item["possible_duplicates"] for item in listed} == {None}  # lists leave them out

    assert await inbox_counts(client, team.manager) == {first["id"]: 0, second["id"]: 1}
    request = await client.get(f"/api/v1/approvals/{second['approval_request_id']}", headers=team.manager.headers)
    assert request.json()["possible_duplicates"] == [found]

    history = (await client.get(f"{EXPENSES}/{second['id']}/history", headers=team.employee.headers)).json()
    [event] = [event for event in history["events"] if event["action"] == "entry.submitted"]
    assert f"1 possible duplicate: entry {first['id']} (similar)" in event["summary"]
    audited = await submit_audit(activity_deps, "entry.submitted", second["id"])
    assert [(item["other_entry_id"], item["reason"]) for item in audited["possible_duplicates"]] == [
        (first["id"], "similar")
    ]
    assert "possible_duplicates" not in await submit_audit(activity_deps, "entry.submitted", first["id"])


async def test_an_approver_dismisses_with_a_reason_the_requester_may_not(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    first = await submitted(client, team.employee)
    second = await submitted(client, team.employee)
    duplicate_id = second["possible_duplicates"][0]["id"]
    colleague = await make_user("employee", manager=team.manager)

    refused = await dismiss(client, team.employee, second["id"], duplicate_id, {"reason": "two trips"})
    assert refused.status_code == 403, refused.text  # the requester
    for body in (None, {}, {"reason": ""}, {"reason": "x", "extra": 1}):
        assert (await dismiss(client, team.manager, second["id"], duplicate_id, body)).status_code == 422
    for outsider in (team.peer, colleague):  # they may not see the expense at all
        assert (await dismiss(client, outsider, second["id"], duplicate_id, {"reason": "x"})).status_code == 404
    elsewhere = await dismiss(client, team.manager, first["id"], duplicate_id, {"reason": "x"})
    assert elsewhere.status_code == 404  # not that expense's
    assert await audit_count(activity_deps, "entry.duplicate_dismissed") == 0

    dismissed = await dismiss(client, team.manager, second["id"], duplicate_id, {"reason": "  two trips, two tickets "})
    assert dismissed.status_code == 200, dismissed.text
    body = dismissed.json()
    assert body["dismissed"] is True and body["dismissed_by"] == team.manager.id
    assert body["dismiss_reason"] == "two trips, two tickets" and body["dismissed_at"] is not None
    again = await dismiss(client, team.accountant, second["id"], duplicate_id, {"reason": "seen"})
    assert again.status_code == 409, again.text  # past the accountant's authority: dismissed already
    assert await audit_count(activity_deps, "entry.duplicate_dismissed", second["id"]) == 1

    assert await inbox_counts(client, team.manager) == {first["id"]: 0, second["id"]: 0}
    page = (await client.get(f"{EXPENSES}/{second['id']}", headers=team.employee.headers)).json()
    assert page["possible_duplicates"] == [body]  # the requester sees it dismissed, and why
    history = (await client.get(f"{EXPENSES}/{second['id']}/history", headers=team.employee.headers)).json()
    [event] = [event for event in history["events"] if event["action"] == "entry.duplicate_dismissed"]
    assert event["actor_id"] == team.manager.id and event["comment"] == "two trips, two tickets"
    assert f"entry {first['id']} (similar)" in event["summary"]


async def test_a_manager_who_sees_the_expense_but_does_not_decide_may_not_dismiss(
    client: httpx.AsyncClient, team: Team, make_user: MakeUser
) -> None:
    lead = await make_user("manager", manager=team.manager)
    report = await make_user("employee", manager=lead)
    await submitted(client, report)
    second = await submitted(client, report)
    duplicate_id = second["possible_duplicates"][0]["id"]
    seen = await client.get(f"{EXPENSES}/{second['id']}", headers=team.manager.headers)
    assert seen.status_code == 200  # above the lead: sees the expense, is no approver of it
    assert (await dismiss(client, team.manager, second["id"], duplicate_id, {"reason": "x"})).status_code == 403
    assert (await dismiss(client, lead, second["id"], duplicate_id, {"reason": "x"})).status_code == 200


async def test_a_requester_who_reads_every_entry_still_may_not_dismiss_their_own(
    client: httpx.AsyncClient, team: Team
) -> None:
    await submitted(client, team.accountant)
    second = await submitted(client, team.accountant)
    duplicate_id = second["possible_duplicates"][0]["id"]
    own = await dismiss(client, team.accountant, second["id"], duplicate_id, {"reason": "mine, fine"})
    assert own.status_code == 403, own.text
    assert (await dismiss(client, team.admin, second["id"], duplicate_id, {"reason": "x"})).status_code == 200


async def test_a_resubmission_with_a_changed_amount_checks_again(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    hundred = await submitted(client, team.employee, "100.00")
    two_hundred = await submitted(client, team.employee, "200.00")
    entry = await submitted(client, team.employee, "100.00")
    assert [item["other_entry_id"] for item in entry["possible_duplicates"]] == [hundred["id"]]
    url = f"{EXPENSES}/{entry['id']}"
    changes = await client.post(f"{url}/request-changes", json={"comment": "the amount"}, headers=team.manager.headers)
    assert changes.status_code == 200, changes.text
    etag = (await client.get(url, headers=team.employee.headers)).headers["ETag"]
    edited = await client.patch(url, json={"amount": "199.00"}, headers={**team.employee.headers, "If-Match": etag})
    assert edited.status_code == 200, edited.text

    resubmitted = await submit(client, team.employee, entry["id"])
    assert resubmitted["status"] == "pending"
    assert [(item["other_entry_id"], item["details"]["amount"]) for item in resubmitted["possible_duplicates"]] == [
        (two_hundred["id"], "200.00")
    ]
    assert await inbox_counts(client, team.manager) == {hundred["id"]: 0, two_hundred["id"]: 0, entry["id"]: 1}
    audited = await submit_audit(activity_deps, "entry.resubmitted", entry["id"])
    assert [item["other_entry_id"] for item in audited["possible_duplicates"]] == [two_hundred["id"]]


async def test_the_same_receipt_on_two_peoples_expenses(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    colleague = await make_user("employee", manager=team.manager)
    theirs = await draft(client, colleague, "64.00", vendor="Bistro", category="meals")
    mine = await draft(client, team.employee, "80.00", vendor="Taxi", category="travel")
    sha = "5" * 64
    async with activity_deps.db.transaction() as tx:
        await receipt(tx.sql, theirs["id"], sha, colleague.id)
        await receipt(tx.sql, mine["id"], sha, team.employee.id)

    answer = await submit(client, team.employee, mine["id"])
    [found] = answer["possible_duplicates"]
    assert (found["other_entry_id"], found["reason"]) == (theirs["id"], "same_receipt")
    assert found["details"]["sha256"] == sha and found["details"]["status"] == "draft"
    assert found["details"]["amount"] == "64.00" and found["details"]["vendor"] == "Bistro"
    assert await inbox_counts(client, team.manager) == {mine["id"]: 1}

    cleared = await dismiss(client, team.accountant, mine["id"], found["id"], {"reason": "a shared bill, split"})
    assert cleared.status_code == 200, cleared.text  # an accountant reads every entry: they may dismiss
    assert await audit_count(activity_deps, "entry.duplicate_dismissed", mine["id"]) == 1


async def test_the_check_is_off_by_its_setting(
    team: Team, settings: Settings, temporal_client: Client, activity_deps: ActivityDeps
) -> None:
    off = settings.model_copy(update={"duplicates": DuplicateSettings(check_enabled=False)})
    async with own_api(off, temporal_client) as http:
        await submitted(http, team.employee)
        second = await submitted(http, team.employee)
        assert second["possible_duplicates"] == []
    async with rolled_back(activity_deps) as sql:
        assert await sql.scalar("SELECT count(*) FROM entry_duplicates") == 0
    assert "possible_duplicates" not in await submit_audit(activity_deps, "entry.submitted", second["id"])
