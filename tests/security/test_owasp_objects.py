"""OWASP API1 (object-level authorization), API3 (mass assignment) and API4 (resource consumption) on entries,
plus the concurrency guarantees: one winner per If-Match, one row per Idempotency-Key."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from activities.deps import ActivityDeps
from domain.models import AuditLog, Entry
from tests.conftest import MakeUser, TestUser

EXPENSE = {
    "amount": "42.50",
    "currency": "USD",
    "category": "travel",
    "description": "taxi to the client",
    "entry_date": date(2026, 3, 4).isoformat(),
    "vendor": "City Cabs",
}


async def _expense(client: httpx.AsyncClient, owner: TestUser) -> dict:
    created = await client.post("/api/v1/expenses/", json=EXPENSE, headers=owner.headers)
    assert created.status_code == 201, created.text
    return created.json()


async def _stored(deps: ActivityDeps, entry_id: int) -> Entry:
    async with deps.db.transaction() as tx:
        entry = await tx.session.get(Entry, entry_id)
        assert entry is not None
        return entry


async def test_another_employees_entry_is_404_and_untouched(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    manager = await make_user("manager")
    alice = await make_user("employee", manager=manager)
    bob = await make_user("employee", manager=manager)
    entry = await _expense(client, alice)
    url = f"/api/v1/expenses/{entry['id']}"
    bob_sees = [
        await client.get(url, headers=bob.headers),
        await client.patch(url, json={"amount": "1.00"}, headers={**bob.headers, "If-Match": '"1"'}),
        await client.delete(url, headers=bob.headers),
        await client.post(f"{url}/submit", headers=bob.headers),
        await client.get(f"{url}/history", headers=bob.headers),
        await client.get(f"/api/v1/revenue/{entry['id']}", headers=alice.headers),  # wrong kind: not found either
    ]
    assert [response.status_code for response in bob_sees] == [404] * len(bob_sees)
    listed = await client.get("/api/v1/expenses/", headers=bob.headers)
    assert entry["id"] not in [item["id"] for item in listed.json()["items"]]
    stored = await _stored(activity_deps, entry["id"])
    assert (stored.amount, stored.status) == (Decimal("42.50"), "draft")


async def _snapshot(deps: ActivityDeps, entry_id: int) -> dict[str, object]:
    """Every stored column of the entry, to compare before and after."""
    entry = await _stored(deps, entry_id)
    return {column.key: getattr(entry, column.key) for column in Entry.__table__.columns}


async def _count(deps: ActivityDeps, model: type, *conditions: object) -> int:
    async with deps.db.transaction() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


SMUGGLED = {  # fields a client must never set; each one alone makes the body invalid
    "status": "approved",
    "owner_id": None,  # filled with the manager's id below
    "approved_by": None,
    "version": 99,
    "workflow_id": "approval-expense-1",
    "approval_request_id": 1,
    "decided_at": "2026-03-05T00:00:00Z",
}


async def test_mass_assignment_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    manager = await make_user("manager")
    alice = await make_user("employee", manager=manager)
    smuggled = {**SMUGGLED, "owner_id": manager.id, "approved_by": manager.id}
    for field, value in smuggled.items():
        refused = await client.post("/api/v1/expenses/", json={**EXPENSE, field: value}, headers=alice.headers)
        assert refused.status_code == 422, (field, refused.text)
    # Refused means nothing was stored: no entry (for anyone, the manager included) and no audit row.
    assert await _count(activity_deps, Entry) == 0
    assert await _count(activity_deps, AuditLog) == 0

    entry = await _expense(client, alice)
    url = f"/api/v1/expenses/{entry['id']}"
    etag = (await client.get(url, headers=alice.headers)).headers["etag"]
    before = await _snapshot(activity_deps, entry["id"])
    for field, value in smuggled.items():
        headers = {**alice.headers, "If-Match": etag}
        refused = await client.patch(url, json={field: value}, headers=headers)
        assert refused.status_code == 422, (field, refused.text)
        # Smuggled next to an allowed change, the allowed part is not applied either.
        mixed = await client.patch(url, json={"amount": "1.00", field: value}, headers=headers)
        assert mixed.status_code == 422, (field, mixed.text)
    after = await _snapshot(activity_deps, entry["id"])
    assert after == before
    assert (after["status"], after["owner_id"], after["version"], after["amount"]) == (
        "draft",
        alice.id,
        1,
        Decimal("42.50"),
    )
    assert await _count(activity_deps, AuditLog, AuditLog.action == "entry.updated") == 0
    assert (await client.get(url, headers=alice.headers)).headers["etag"] == etag  # clients see no change either


async def test_page_size_is_capped(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    alice = await make_user("employee")
    too_many = await client.get("/api/v1/expenses/?limit=101", headers=alice.headers)
    assert too_many.status_code == 422
    assert (await client.get("/api/v1/expenses/?limit=100", headers=alice.headers)).status_code == 200


async def test_concurrent_edits_with_one_if_match_have_one_winner(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    manager = await make_user("manager")
    alice = await make_user("employee", manager=manager)
    entry = await _expense(client, alice)
    url = f"/api/v1/expenses/{entry['id']}"
    etag = (await client.get(url, headers=alice.headers)).headers["etag"]
    first, second = await asyncio.gather(
        client.patch(url, json={"amount": "10.00"}, headers={**alice.headers, "If-Match": etag}),
        client.patch(url, json={"amount": "20.00"}, headers={**alice.headers, "If-Match": etag}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412], (first.text, second.text)
    winner = first if first.status_code == 200 else second
    stored = await _stored(activity_deps, entry["id"])
    assert stored.amount == Decimal(winner.json()["amount"]) and stored.version == 2


async def test_concurrent_creates_with_one_idempotency_key_make_one_row(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    alice = await make_user("employee")
    headers = {**alice.headers, "Idempotency-Key": "expense-2026-03-04-taxi"}
    answers = await asyncio.gather(*(client.post("/api/v1/expenses/", json=EXPENSE, headers=headers) for _ in range(8)))
    created = [answer for answer in answers if answer.status_code == 201]
    assert created, [answer.text for answer in answers]
    assert {answer.json()["id"] for answer in created} == {created[0].json()["id"]}
    assert all(answer.status_code in (201, 409) for answer in answers), [a.status_code for a in answers]
    async with activity_deps.db.transaction() as tx:
        rows = await tx.session.scalar(select(func.count()).select_from(Entry).where(Entry.owner_id == alice.id))
    assert rows == 1
