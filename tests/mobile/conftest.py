"""Fixtures for the mobile conventions: a small organisation and rows written straight through the repositories
(no workflow needed to list them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from domain.entries import repository as entries
from domain.entries.repository import NewEntry
from domain.notifications.service import notify
from tests.conftest import MakeUser, TestUser


@dataclass
class People:
    admin: TestUser
    manager: TestUser
    employee: TestUser
    other: TestUser  # another manager's employee: outside the first manager's team


@pytest.fixture
async def people(make_user: MakeUser) -> People:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    elsewhere = await make_user("manager", manager=admin)
    other = await make_user("employee", manager=elsewhere)
    return People(admin, manager, employee, other)


async def add_entries(
    deps: ActivityDeps,
    owner: TestUser,
    rows: Iterable[tuple[date, Decimal]],
    kind: str = "expense",
    currency: str | None = None,
) -> list[int]:
    """Drafts of `owner`, one per (date, amount), in one transaction; their ids."""
    ids = []
    async with deps.db.transaction() as tx:
        for day, amount in rows:
            new = NewEntry(
                kind=kind,
                owner_id=owner.id,
                amount=amount,
                currency=currency or deps.settings.approvals.base_currency,
                category="travel",
                description="",
                entry_date=day,
                source="Client" if kind == "revenue" else None,
                vendor="Vendor" if kind == "expense" else None,
            )
            ids.append((await entries.insert(tx.sql, new)).id)
        await tx.commit()
    return ids


async def add_notifications(deps: ActivityDeps, user: TestUser, count: int, title: str = "note") -> list[int]:
    ids = []
    async with deps.db.transaction() as tx:
        for n in range(count):
            ids.append(await notify(tx.sql, user_id=user.id, event_type="entry_submitted", title=f"{title} {n}"))
        await tx.commit()
    return ids


async def walk(
    client: httpx.AsyncClient,
    url: str,
    user: TestUser,
    limit: int,
    between: Callable[[], Awaitable[Any]] | None = None,
    key: str = "id",
) -> tuple[list[Any], int]:
    """Every item's `key` of a list, page by page through next_cursor (calling `between()` after each page), and how
    many pages it took."""
    seen: list[Any] = []
    cursor = None
    pages = 0
    separator = "&" if "?" in url else "?"
    while True:
        query = f"{url}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(query, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen += [item[key] for item in body["items"]]
        pages += 1
        assert pages <= 200, "the walk does not end"
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert body["items"], "a cursor was handed out for an empty page"
        if between is not None:
            await between()
