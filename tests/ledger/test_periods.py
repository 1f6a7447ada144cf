"""Closing a month: refused while entries wait on a decision, then every change to an entry dated in it is refused by
the database (create, edit into and out of it, submit, approve, reject: each 409 and nothing changed), a decision
refused is not retried by the workflow, reopening is for admins and audited, and each closing freezes its own
journals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import psycopg
from temporalio.client import Client

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team
from tests.conftest import TestUser
from tests.ledger.conftest import (
    THIS_MONTH,
    TODAY,
    act,
    audit_rows,
    close,
    created,
    journals,
    new_entry,
    scalar,
)

CLOSED = f"the period {THIS_MONTH} is closed"


async def edit(http: httpx.AsyncClient, user: TestUser, entry: dict[str, Any], **fields: Any) -> httpx.Response:
    return await http.patch(f"/api/v1/expenses/{entry['id']}", json=fields,
                            headers={**user.headers, "If-Match": str(entry["version"])})  # fmt: skip


async def entry_now(deps: ActivityDeps, entry_id: int) -> tuple[Any, ...]:
    async with deps.db.transaction() as tx:
        row = await tx.sql.one("SELECT status, amount, entry_date, version, approval_request_id FROM entries "
                               "WHERE id = %s", (entry_id,))  # fmt: skip
    assert row is not None
    return row


def refused_as_closed(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_state", CLOSED)
    if error["details"] is not None:  # a decision's refusal crosses the workflow as its message alone
        assert error["details"] == {"reason": "period_closed", "period": THIS_MONTH}


async def approved(http: httpx.AsyncClient, team: Team, amount: str = "120.00", **fields: Any) -> dict[str, Any]:
    entry = await created(http, team.employee, amount=amount, **fields)
    assert (await act(http, team.employee, entry, "submit")).status_code == 200
    response = await act(http, team.manager, entry, "approve")
    assert response.status_code == 200 and response.json()["status"] == "approved", response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_month_closes_only_once_nothing_dated_in_it_waits_on_a_decision(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None
) -> None:
    waiting = await created(client, team.employee)
    assert (await act(client, team.employee, waiting, "submit")).status_code == 200
    returned = await created(client, team.employee, amount="80.00")
    assert (await act(client, team.employee, returned, "submit")).status_code == 200
    assert (await act(client, team.manager, returned, "request-changes", comment="receipt?")).status_code == 200

    refused = await close(client, team.accountant)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {
        "reason": "decisions_pending", "pending": 2, "entries": 2, "invoices": 0,
    }  # fmt: skip
    assert "2 entries waiting" in refused.json()["error"]["message"]
    assert await scalar(activity_deps, "SELECT count(*) FROM periods") == 0
    assert await audit_rows(activity_deps, "period.closed") == []

    assert (await act(client, team.manager, waiting, "approve")).status_code == 200
    assert (await act(client, team.employee, returned, "withdraw")).status_code == 200
    closed = await close(client, team.accountant)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["closing"], body["journals"], body["lines"], body["debit_total"], body["credit_total"]) == (
        1, 1, 2, "120.00", "120.00",
    )  # fmt: skip
    assert (body["period"]["status"], body["period"]["closed_by_id"]) == ("closed", team.accountant.id)
    [row] = await audit_rows(activity_deps, "period.closed")
    assert (row[0], row[1]) == (THIS_MONTH, team.accountant.id)
    assert {k: row[2][k] for k in ("status", "closing", "journals", "lines", "debit_total", "by_source")} == {
        "status": ["open", "closed"], "closing": 1, "journals": 1, "lines": 2, "debit_total": "120.00",
        "by_source": {"entry": 1},
    }  # fmt: skip

    again = await close(client, team.admin)
    assert again.status_code == 409 and "closed already" in again.json()["error"]["message"]
    future = await close(client, team.accountant, "2100-12")
    assert future.status_code == 409 and "has not begun" in future.json()["error"]["message"]
    for bad in ("2026-13", "26-11", "2026-1", "1999-12", "2026-00"):
        assert (await close(client, team.accountant, bad)).status_code == 422, bad
    assert (await client.get("/api/v1/journals", params={"month": "2026-13"},
                             headers=team.accountant.headers)).status_code == 422  # fmt: skip
    listed = await client.get("/api/v1/periods", headers=team.accountant.headers)
    assert [(p["month"], p["status"], p["closings"]) for p in listed.json()["items"]] == [(THIS_MONTH, "closed", 1)]


async def test_a_closed_month_refuses_every_change_to_its_entries(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None
) -> None:
    other_month = TODAY.replace(day=1) - timedelta(days=1)
    draft = await created(client, team.employee)
    elsewhere = await created(client, team.employee, entry_date=other_month.isoformat())
    assert (await close(client, team.accountant)).status_code == 200
    entries_before = await scalar(activity_deps, "SELECT count(*) FROM entries")

    refused_as_closed(await new_entry(client, team.employee))  # create
    refused_as_closed(await new_entry(client, team.employee, "revenue"))
    assert await scalar(activity_deps, "SELECT count(*) FROM entries") == entries_before
    before = await entry_now(activity_deps, draft["id"])
    refused_as_closed(await edit(client, team.employee, draft, amount="99.00"))  # edit within the month
    refused_as_closed(await edit(client, team.employee, draft, entry_date=other_month.isoformat()))  # out of it
    refused_as_closed(await edit(client, team.employee, elsewhere, entry_date=TODAY.isoformat()))  # into it
    refused_as_closed(await act(client, team.employee, draft, "submit"))
    assert await entry_now(activity_deps, draft["id"]) == before
    assert await scalar(activity_deps, "SELECT count(*) FROM approval_requests") == 0
    assert await scalar(activity_deps, "SELECT entry_date FROM entries WHERE id = %s", elsewhere["id"]) == other_month
    # Outside the closed month everything goes on; a draft in it may still be deleted (it is in no journal).
    assert (await edit(client, team.employee, elsewhere, amount="99.00")).status_code == 200
    deleted = await client.delete(f"/api/v1/expenses/{draft['id']}", headers=team.employee.headers)
    assert deleted.status_code == 204, deleted.text


async def test_a_decision_on_an_entry_of_a_closed_month_is_refused_and_not_retried(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    """A pending entry in a closed month cannot come about through the API (the close waits for it); the database
    refuses the decision whoever closed the month, here by SQL under the API's feet."""
    entry = await created(client, team.employee)
    submitted = await act(client, team.employee, entry, "submit")
    assert submitted.status_code == 200, submitted.text
    async with activity_deps.db.transaction() as tx:
        await tx.sql.run(
            "INSERT INTO periods (month, status, closings) VALUES (%s, 'closed', 1)", (TODAY.replace(day=1),)
        )
    before = await entry_now(activity_deps, entry["id"])
    steps = "SELECT status FROM approval_steps ORDER BY id"

    refused_as_closed(await act(client, team.manager, entry, "approve"))
    refused_as_closed(await act(client, team.manager, entry, "reject", reason="not this month"))
    refused_as_closed(await act(client, team.manager, entry, "request-changes", comment="fix"))
    assert await entry_now(activity_deps, entry["id"]) == before
    assert await scalar(activity_deps, steps) == "pending"
    assert await audit_rows(activity_deps, "approval.approved") == []
    # The refusal is final for that decision: the workflow has no activity left retrying it.
    handle = temporal_client.get_workflow_handle(submitted.json()["workflow_id"])
    assert not (await handle.describe()).raw_description.pending_activities

    async with activity_deps.db.transaction() as tx:
        await tx.sql.run("UPDATE periods SET status = 'open'")
    decided = await act(client, team.manager, entry, "approve")
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text


async def test_reopening_is_for_admins_audited_and_each_closing_freezes_its_own_journals(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None
) -> None:
    first = await approved(client, team)
    assert (await close(client, team.accountant)).status_code == 200
    reopen = f"/api/v1/periods/{THIS_MONTH}/reopen"
    for user in (team.accountant, team.manager, team.employee):
        response = await client.post(reopen, json={"reason": "late receipt"}, headers=user.headers)
        assert response.status_code == 403, response.text
    assert (await client.post(reopen, json={}, headers=team.admin.headers)).status_code == 422
    reopened = await client.post(reopen, json={"reason": "late receipt"}, headers=team.admin.headers)
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["status"], reopened.json()["reopened_by_id"]) == ("open", team.admin.id)
    [row] = await audit_rows(activity_deps, "period.reopened")
    reopening = {"status": ["closed", "open"], "reason": "late receipt", "closings": 1}
    assert (row[0], row[1], row[2]) == (THIS_MONTH, team.admin.id, reopening)
    again = await client.post(reopen, json={"reason": "twice"}, headers=team.admin.headers)
    assert again.status_code == 409, again.text

    # Open again: entries change, and the open month's journals are computed from what is there now.
    second = await approved(client, team, "30.00")
    now = await journals(client, team.accountant)
    assert (now.json()["status"], now.json()["closing"], now.json()["total"]) == ("open", None, 2)
    closed = await close(client, team.accountant)
    assert (closed.status_code, closed.json()["closing"], closed.json()["journals"]) == (200, 2, 2)
    frozen = await journals(client, team.accountant)
    assert (frozen.json()["status"], frozen.json()["closing"]) == ("closed", 2)
    assert [j["number"] for j in frozen.json()["items"]] == [f"EXP-{first['id']}", f"EXP-{second['id']}"]
    assert frozen.json()["items"] == now.json()["items"]
    # The first closing's rows stay as they were written, for its exports.
    rows = "SELECT closing, count(*) FROM journals GROUP BY closing ORDER BY closing"
    async with activity_deps.db.transaction() as tx:
        assert await tx.sql.all(rows) == [(1, 1), (2, 2)]
    listed = await client.get("/api/v1/periods", headers=team.accountant.headers)
    assert [(p["month"], p["status"], p["closings"]) for p in listed.json()["items"]] == [(THIS_MONTH, "closed", 2)]


async def test_journals_and_periods_are_for_accountants_and_up(client: httpx.AsyncClient, team: Team) -> None:
    assert (await journals(client, team.manager)).status_code == 403
    assert (await journals(client, team.employee)).status_code == 403
    assert (await close(client, team.manager)).status_code == 403
    assert (await client.get("/api/v1/periods", headers=team.manager.headers)).status_code == 403
    # An open month with nothing in it needs no account: an empty page.
    empty = await journals(client, team.accountant)
    assert (empty.status_code, empty.json()["items"], empty.json()["debit_total"]) == (200, [], "0.00")


async def test_a_close_waits_for_a_change_under_way_in_its_month_and_counts_it(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps, chart: None, database_url: str
) -> None:
    """A submit that has changed its entry but not yet committed holds the month's lock: the close waits for it,
    then finds the entry pending (409), rather than closing over an entry about to be pending."""
    entry = await created(client, team.employee)
    async with await psycopg.AsyncConnection.connect(database_url) as in_flight:
        await in_flight.execute("UPDATE entries SET status = 'pending' WHERE id = %s", (entry["id"],))
        closing = asyncio.ensure_future(close(client, team.accountant))
        await asyncio.sleep(0.5)
        assert not closing.done(), "the close did not wait for the change under way"
        await in_flight.commit()
        refused = await asyncio.wait_for(closing, 10)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {
        "reason": "decisions_pending", "pending": 1, "entries": 1, "invoices": 0,
    }  # fmt: skip
