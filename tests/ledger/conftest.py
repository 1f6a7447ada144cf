"""The ledger over the whole stack: the approval tests' organisation (admin <- manager <- employee, a peer manager,
an accountant under the admin) served over HTTP with the project's workers, and the standard chart of accounts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from domain.audit.service import SYSTEM
from domain.ledger import months
from domain.ledger.standard_chart import seed
from tests.approvals.conftest import client, eventually, expense_body, team  # noqa: F401 - fixtures, used by name
from tests.conftest import TestUser

TODAY = datetime.now(UTC).date()
THIS_MONTH = months.label(TODAY)


@pytest.fixture
async def chart(activity_deps: ActivityDeps) -> None:
    """The standard chart of accounts and its mapping (what `cli.py seed-accounts` makes)."""
    async with activity_deps.db.transaction() as tx:
        assert await seed(tx, activity_deps.settings.invoices.revenue_category, SYSTEM) is not None


async def new_entry(http: httpx.AsyncClient, user: TestUser, kind: str = "expenses", **fields: Any) -> httpx.Response:
    """A draft dated today unless `entry_date` says otherwise."""
    body = expense_body(**{"entry_date": TODAY.isoformat(), **fields})
    if kind == "revenue":
        body.pop("vendor")
        body.setdefault("source", "Grant Co")
    return await http.post(f"/api/v1/{kind}/", json=body, headers=user.headers)


async def created(http: httpx.AsyncClient, user: TestUser, kind: str = "expenses", **fields: Any) -> dict[str, Any]:
    response = await new_entry(http, user, kind, **fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def act(http: httpx.AsyncClient, user: TestUser, entry: dict[str, Any], action: str, kind: str = "expenses",
              **body: Any) -> httpx.Response:  # fmt: skip
    return await http.post(f"/api/v1/{kind}/{entry['id']}/{action}", json=body or None, headers=user.headers)


async def close(http: httpx.AsyncClient, user: TestUser, month: str = THIS_MONTH) -> httpx.Response:
    return await http.post(f"/api/v1/periods/{month}/close", headers=user.headers)


async def journals(http: httpx.AsyncClient, user: TestUser, month: str = THIS_MONTH, **params: Any) -> httpx.Response:
    return await http.get("/api/v1/journals", params={"month": month, **params}, headers=user.headers)


async def scalar(deps: ActivityDeps, query: str, *params: Any) -> Any:
    async with deps.db.transaction() as tx:
        return await tx.sql.scalar(query, params)


async def audit_rows(deps: ActivityDeps, action: str) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return await tx.sql.all(
            "SELECT resource_id, actor_id, changes, hash FROM audit_log WHERE action = %s ORDER BY id", (action,)
        )
