"""`updated_since`: a sync sees the rows changed since its last one (status changes included), the drafts deleted
since, and hands back the time to send next, which a change committed during the sync does not slip past."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from activities.deps import ActivityDeps
from domain.entries import repository as entries
from tests.mobile.conftest import People, add_entries, add_notifications, walk

pytestmark = pytest.mark.usefixtures("database_url")
DAY = date(2025, 4, 1)
LONG_AGO = "2000-01-01T00:00:00Z"
OVERLAP = 1.2  # the watermark is a second before the sync (domain/delta_sync.py): wait it out where it matters


async def sync(client: httpx.AsyncClient, url: str, headers: dict[str, str], since: str) -> dict[str, Any]:
    response = await client.get(f"{url}?updated_since={quote(since)}&limit=100", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_sync_sees_edits_status_changes_new_rows_and_deleted_drafts(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    edited, moved, deleted, untouched = await add_entries(activity_deps, people.employee, [(DAY, Decimal("5.00"))] * 4)
    [elsewhere] = await add_entries(activity_deps, people.other, [(DAY, Decimal("5.00"))])
    await asyncio.sleep(OVERLAP)  # what came before the first sync is behind its time, overlap included
    first = await sync(client, "/api/v1/expenses/", headers, LONG_AGO)
    assert {item["id"] for item in first["items"]} == {edited, moved, deleted, untouched}
    assert first["deleted_ids"] == []
    since = first["next_updated_since"]

    version = (await client.get(f"/api/v1/expenses/{edited}", headers=headers)).headers["etag"]
    patched = await client.patch(f"/api/v1/expenses/{edited}", json={"amount": "6.00"},
                                 headers={**headers, "If-Match": version})  # fmt: skip
    assert patched.status_code == 200
    async with activity_deps.db.transaction() as tx:  # a status change, as a workflow's activity makes it
        await entries.set_status(tx.sql, moved, "rejected")
    assert (await client.delete(f"/api/v1/expenses/{deleted}", headers=headers)).status_code == 204
    assert (await client.delete(f"/api/v1/expenses/{elsewhere}", headers=people.other.headers)).status_code == 204
    [created] = await add_entries(activity_deps, people.employee, [(DAY, Decimal("7.00"))])

    await asyncio.sleep(OVERLAP)  # so that the quiet sync below is past these changes, overlap included
    second = await sync(client, "/api/v1/expenses/", headers, since)
    assert {item["id"]: item["status"] for item in second["items"]} == {
        edited: "draft",
        moved: "rejected",
        created: "draft",
    }
    assert second["deleted_ids"] == [deleted]  # not the other employee's draft: not theirs to know of
    # A sync pages like any list: by cursor, the same rows.
    paged, _ = await walk(client, f"/api/v1/expenses/?updated_since={quote(since)}", people.employee, 1)
    assert sorted(paged) == sorted(item["id"] for item in second["items"])
    # Their manager sees the team's deletion too; an admin sees every one.
    team = await sync(client, "/api/v1/expenses/", people.manager.headers, since)
    assert team["deleted_ids"] == [deleted]
    everyone = await sync(client, "/api/v1/expenses/", people.admin.headers, since)
    assert sorted(everyone["deleted_ids"]) == sorted([deleted, elsewhere])

    quiet = await sync(client, "/api/v1/expenses/", headers, second["next_updated_since"])
    assert quiet["items"] == [] and quiet["deleted_ids"] == []


async def test_a_change_committed_during_a_sync_is_in_the_next_one(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps, database_url: str
) -> None:
    """A transaction that began before the sync and commits after it stamps its row with its start time: the time
    handed back must not be past it, or the next sync would skip the change for good."""
    headers = people.employee.headers
    [entry_id] = await add_entries(activity_deps, people.employee, [(DAY, Decimal("8.00"))])
    await asyncio.sleep(OVERLAP)
    since = (await sync(client, "/api/v1/expenses/", headers, LONG_AGO))["next_updated_since"]
    async with await psycopg.AsyncConnection.connect(database_url) as slow:
        async with slow.transaction():
            await slow.execute("UPDATE entries SET category = 'late' WHERE id = %s", (entry_id,))
            await asyncio.sleep(2.5)  # well past the watermark's one-second margin
            during = await sync(client, "/api/v1/expenses/", headers, since)
            assert during["items"] == []  # not committed yet: not seen
        # committed now, stamped with the transaction's start, before `during` was read
    after = await sync(client, "/api/v1/expenses/", headers, during["next_updated_since"])
    assert [(item["id"], item["category"]) for item in after["items"]] == [(entry_id, "late")]


async def test_notifications_sync_their_creation_and_their_reading(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    old, kept = await add_notifications(activity_deps, people.employee, 2, "old")
    await asyncio.sleep(OVERLAP)
    first = await sync(client, "/api/v1/notifications", headers, LONG_AGO)
    assert {item["id"] for item in first["items"]} == {old, kept}
    assert (await client.post(f"/api/v1/notifications/{old}/read", headers=headers)).status_code == 200
    [new] = await add_notifications(activity_deps, people.employee, 1, "new")
    second = await sync(client, "/api/v1/notifications", headers, first["next_updated_since"])
    assert {item["id"] for item in second["items"]} == {old, new}
    assert second["total"] == 2 and second["next_updated_since"] >= first["next_updated_since"]


async def test_updated_since_needs_a_timezone(client: httpx.AsyncClient, people: People) -> None:
    for url in ("/api/v1/expenses/", "/api/v1/notifications"):
        naive = await client.get(f"{url}?updated_since=2025-01-01T00:00:00", headers=people.employee.headers)
        assert naive.status_code == 422 and "updated_since" in naive.text
        garbage = await client.get(f"{url}?updated_since=yesterday", headers=people.employee.headers)
        assert garbage.status_code == 422
    plain = (await client.get("/api/v1/expenses/", headers=people.employee.headers)).json()
    assert plain["next_updated_since"] is None and plain["deleted_ids"] is None
