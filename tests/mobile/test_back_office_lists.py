"""The back-office lists page by cursor too: users and a team, the chart of accounts, the audit log, backups, export
batches, exchange rates, report schedules and closed periods. Each walk sees every row once, in the list's order,
while rows arrive between its pages (the journals' walk is in tests/ledger/test_journals_http.py)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from tests.conftest import MakeUser, TestUser
from tests.mobile.conftest import walk

pytestmark = pytest.mark.usefixtures("database_url")


async def check_walk(
    client: httpx.AsyncClient,
    url: str,
    user: TestUser,
    add: Callable[[], Awaitable[Any]],
    key: str = "id",
    limit: int = 2,
) -> list[Any]:
    """Walk `url` adding a row between pages: nothing twice, every row there at the start seen, in the order an
    offset read gives now (less what arrived ahead of the walk). The keys seen."""
    separator = "&" if "?" in url else "?"

    async def everything() -> list[Any]:
        response = await client.get(f"{url}{separator}limit=100", headers=user.headers)
        assert response.status_code == 200, response.text
        return [item[key] for item in response.json()["items"]]

    before = await everything()
    seen, pages = await walk(client, url, user, limit, add, key=key)
    assert pages > 2, "too few rows to walk"
    assert len(seen) == len(set(seen)), seen
    assert set(before) <= set(seen)
    assert seen == [item for item in await everything() if item in set(seen)]
    return seen


async def run(deps: ActivityDeps, query: str, *params: Any) -> None:
    async with deps.db.transaction() as tx:
        await tx.sql.run(query, params)


async def test_users_and_a_team_walk_whole(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    for _ in range(4):
        await make_user("employee", manager=manager)

    async def hire() -> None:
        await make_user("employee", manager=manager)

    await check_walk(client, "/api/v1/users/", admin, hire)
    team = await check_walk(client, f"/api/v1/users/{manager.id}/team", admin, hire)
    assert manager.id not in team


async def test_accounts_walk_whole_by_code(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    accountant = await make_user("accountant")
    codes = iter(["1000", "1500", "2000", "2500", "3000", "4000", "1200", "3500", "9999", "0100"])

    async def open_account() -> None:
        code = next(codes)
        body = {"code": code, "name": f"Account {code}", "type": "asset"}
        response = await client.post("/api/v1/accounts", json=body, headers=accountant.headers)
        assert response.status_code == 201, response.text

    for _ in range(5):
        await open_account()
    walked = await check_walk(client, "/api/v1/accounts", accountant, open_account, key="code")
    assert walked == sorted(walked)


async def test_the_audit_log_backups_and_exports_walk_newest_first(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    superadmin = await make_user("superadmin")
    hires = itertools.count(1)

    async def audited() -> None:  # a user made over the API: one audit row
        n = next(hires)
        body = {"email": f"hire{n}@example.com", "username": f"hire{n}", "full_name": f"Hire {n}",
                "password": "a long enough password 1", "manager_id": superadmin.id}  # fmt: skip
        response = await client.post("/api/v1/users/", json=body, headers=superadmin.headers)
        assert response.status_code == 201, response.text

    for _ in range(5):
        await audited()

    walked = await check_walk(client, "/api/v1/admin/audit", superadmin, audited)
    assert walked == sorted(walked, reverse=True)

    async def backup() -> None:
        await run(
            activity_deps,
            "INSERT INTO backups (workflow_id, status, manifest) VALUES (gen_random_uuid()::text, 'completed', '{}')",
        )

    for _ in range(5):
        await backup()
    await check_walk(client, "/api/v1/admin/backups", superadmin, backup)

    numbers = itertools.count(1)
    await run(activity_deps, "INSERT INTO periods (month, status, closings) VALUES ('2025-01-01', 'closed', 1)")

    async def export() -> None:
        await run(
            activity_deps,
            "INSERT INTO export_batches (number, month, closing, format, workflow_id, created_by_id) "
            "VALUES (%s, '2025-01-01', 1, 'journal_csv', gen_random_uuid()::text, %s)",
            next(numbers),
            superadmin.id,
        )

    for _ in range(5):
        await export()
    await check_walk(client, "/api/v1/exports", superadmin, export)


async def test_rates_walk_by_day_then_currency(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    """Newest day first, then by currency: an order of mixed directions, paged without skipping a currency."""
    accountant = await make_user("accountant")
    days = [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)]
    for day in days:
        for currency in ("USD", "GBP", "JPY"):
            await run(
                activity_deps,
                "INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES (%s, %s, 1.5, 'ecb')",
                currency,
                day,
            )
    late = iter([("CHF", days[1]), ("AUD", days[2]), ("ZAR", days[0]), ("SEK", days[1])])

    async def rate() -> None:
        currency, day = next(late)
        await run(
            activity_deps,
            "INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES (%s, %s, 2.5, 'ecb')",
            currency,
            day,
        )

    walked = await check_walk(client, "/api/v1/fx/rates", accountant, rate, limit=4)
    rows = (await client.get("/api/v1/fx/rates?limit=100", headers=accountant.headers)).json()["items"]
    order = [(row["rate_date"], row["currency"]) for row in rows if row["id"] in set(walked)]
    assert order == sorted(order, key=lambda pair: (-date.fromisoformat(pair[0]).toordinal(), pair[1]))


async def test_periods_walk_latest_first_and_schedules_page_by_header(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    admin = await make_user("admin")
    months = iter([date(2024, month, 1) for month in (1, 3, 5, 7, 9, 2, 11, 4)])

    async def closed_month() -> None:
        await run(activity_deps, "INSERT INTO periods (month, status, closings) VALUES (%s, 'closed', 1)", next(months))

    for _ in range(5):
        await closed_month()
    walked = await check_walk(client, "/api/v1/periods", admin, closed_month, key="month")
    assert walked == sorted(walked, reverse=True)

    for n in range(5):
        await run(
            activity_deps,
            "INSERT INTO report_schedules (name, type, format, cron, timezone, recipients, filters, paused, "
            "schedule_key) VALUES (%s, 'pnl', 'csv', '0 6 * * 1', 'UTC', '[]', '{}', true, %s)",
            f"Weekly {n}",
            f"test-schedule-{n}-{date.today() + timedelta(days=n)}",
        )
    seen: list[int] = []
    cursor: str | None = None
    while True:
        url = "/api/v1/reports/schedules?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=admin.headers)
        assert response.status_code == 200, response.text
        assert response.headers["X-Total-Count"] == "5"
        seen += [schedule["id"] for schedule in response.json()]
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 5


async def test_report_templates_walk_by_name(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    accountant = await make_user("accountant")
    names = iter(["Margin", "Travel", "Budgets", "margins", "Aging", "Zeta", "Marginal", "Payroll", "Cash", "Omega"])

    async def save() -> None:
        body = {"name": next(names), "definition": {"dataset": "entries", "columns": ["date", "amount"]}}
        response = await client.post("/api/v1/report-templates", json=body, headers=accountant.headers)
        assert response.status_code == 201, response.text

    for _ in range(5):
        await save()
    await check_walk(client, "/api/v1/report-templates", accountant, save)
