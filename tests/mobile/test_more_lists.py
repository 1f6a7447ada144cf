"""The other lists a phone reads page by cursor too: customers (by name, ties and letters Python and PostgreSQL
lower differently), invoices, recurring invoices, budgets, and an invoice's payments and credit notes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from tests.conftest import MakeUser, TestUser
from tests.invoices.conftest import create_customer, create_invoice
from tests.mobile.conftest import walk

pytestmark = pytest.mark.usefixtures("database_url")
LINES = [{"description": "Consulting", "quantity": "1", "unit_price": "100.00", "tax_rate": "19"}]


async def check_walk(
    client: httpx.AsyncClient,
    url: str,
    user: TestUser,
    add: Callable[[], Awaitable[Any]],
    limit: int = 2,
) -> list[Any]:
    """Walk `url` adding a row between pages: nothing twice, every row there at the start seen, and in the order
    an offset read gives now (minus what arrived behind the walk). The ids seen."""
    separator = "&" if "?" in url else "?"
    before = (await client.get(f"{url}{separator}limit=100", headers=user.headers)).json()["items"]
    seen, pages = await walk(client, url, user, limit, add)
    assert pages > 2, "too few rows to walk"
    assert len(seen) == len(set(seen)), seen
    assert {item["id"] for item in before} <= set(seen)
    now = [
        item["id"] for item in (await client.get(f"{url}{separator}limit=100", headers=user.headers)).json()["items"]
    ]
    assert seen == [item for item in now if item in set(seen)]
    return seen


async def test_customers_invoices_and_recurring_invoices_walk_whole(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    accountant = await make_user("accountant")
    names = ["Acme", "acme", "Acme", "Éclair SARL", "straße GmbH", "STRASSE AG", "Zeta", "İstanbul Ltd"]
    customers = [await create_customer(client, accountant, name=name) for name in names]
    extra = iter(["Acme", "Beta", "éclair", "Omega"])

    async def add_customer() -> None:
        await create_customer(client, accountant, name=next(extra, "Late"))

    await check_walk(client, "/api/v1/customers", accountant, add_customer)

    customer_id = customers[0]["id"]
    for n in range(7):
        await create_invoice(
            client, accountant, customer_id, issue_date=(date.today() - timedelta(days=n % 3)).isoformat()
        )

    async def add_invoice() -> None:
        await create_invoice(client, accountant, customer_id, issue_date=(date.today() - timedelta(days=1)).isoformat())

    await check_walk(client, "/api/v1/invoices", accountant, add_invoice, limit=3)

    async def add_recurring() -> None:
        body = {"template": {"customer_id": customer_id, "lines": LINES}, "frequency": "monthly",
                "starts_on": (date.today() + timedelta(days=1)).isoformat()}  # fmt: skip
        response = await client.post("/api/v1/recurring-invoices", json=body, headers=accountant.headers)
        assert response.status_code == 201, response.text

    for _ in range(5):
        await add_recurring()
    await check_walk(client, "/api/v1/recurring-invoices", accountant, add_recurring)


async def test_budgets_walk_whole(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    accountant = await make_user("accountant")
    made = iter(range(100))

    async def add_budget() -> None:
        body = {"name": f"Budget {next(made)}", "category": "travel", "period": "month",
                "starts_on": date.today().replace(day=1).isoformat(), "amounts": ["1000.00"]}  # fmt: skip
        response = await client.post("/api/v1/budgets", json=body, headers=accountant.headers)
        assert response.status_code == 201, response.text

    for _ in range(5):
        await add_budget()
    await check_walk(client, "/api/v1/budgets", accountant, add_budget)


async def test_payments_and_credit_notes_walk_whole(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    """Rows written straight to their tables (no workflow sends the invoice here): the pages are what is tested."""
    accountant = await make_user("accountant")
    customer = await create_customer(client, accountant)
    invoice = await create_invoice(client, accountant, customer["id"])
    made = iter(range(100))

    async def add_rows() -> None:
        n = next(made)
        async with activity_deps.db.transaction() as tx:
            await tx.sql.run(
                "INSERT INTO invoice_payments (invoice_id, amount, paid_on, fx_rate, rate_source, base_amount, "
                "booked_base, fx_difference, created_by_id) VALUES (%s, 1, %s, 1, 'base', 1, 1, 0, %s)",
                (invoice["id"], date.today(), accountant.id),
            )
            note_id = await tx.sql.scalar(
                "INSERT INTO credit_notes (invoice_id, number, amount, reason, created_by_id) "
                "VALUES (%s, %s, 1, 'test', %s) RETURNING id",
                (invoice["id"], f"CN-TEST-{n:04d}", accountant.id),
            )
            await tx.sql.run(  # its split by tax rate, which must add up to it (a deferred check)
                "INSERT INTO credit_note_taxes (credit_note_id, tax_rate, net, tax) VALUES (%s, 0, 1, 0)", (note_id,)
            )

    for _ in range(5):
        await add_rows()
    url = f"/api/v1/invoices/{invoice['id']}"
    payments = await check_walk(client, f"{url}/payments", accountant, add_rows)
    assert payments == sorted(payments)  # oldest first: the rows added during the walk come after, and are seen
    assert len(payments) > 5
    notes = await check_walk(client, f"{url}/credit-notes", accountant, add_rows)
    assert notes == sorted(notes) and len(notes) > 5
