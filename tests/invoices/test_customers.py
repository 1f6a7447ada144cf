"""Customers: who invoices go to, kept by accountants, changed with If-Match, refused clearly when wrong."""

from __future__ import annotations

import httpx

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team, audit_count
from tests.invoices.conftest import create_customer


async def test_customers_are_kept_with_if_match_and_found_by_name(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    acme = await create_customer(client, team.accountant)
    await create_customer(client, team.accountant, name="100% Organic_Farms", currency="EUR")
    found = await client.get("/api/v1/customers", params={"name": "acme"}, headers=team.accountant.headers)
    assert [item["name"] for item in found.json()["items"]] == ["Acme GmbH"]
    # % and _ in the search are literal characters, not patterns.
    literal = await client.get("/api/v1/customers", params={"name": "0% o"}, headers=team.accountant.headers)
    assert [item["name"] for item in literal.json()["items"]] == ["100% Organic_Farms"]
    nothing = await client.get("/api/v1/customers", params={"name": "%"}, headers=team.accountant.headers)
    assert nothing.json()["total"] == 1
    path = f"/api/v1/customers/{acme['id']}"
    assert (
        await client.patch(path, json={"payment_terms_days": 14}, headers=team.accountant.headers)
    ).status_code == 428
    stale = {**team.accountant.headers, "If-Match": '"7"'}
    assert (await client.patch(path, json={"payment_terms_days": 14}, headers=stale)).status_code == 412
    fresh = {**team.accountant.headers, "If-Match": f'"{acme["version"]}"'}
    changed = await client.patch(path, json={"payment_terms_days": 14}, headers=fresh)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["payment_terms_days"], changed.json()["version"]) == (14, 2)
    assert changed.headers["ETag"] == '"2"'
    assert await audit_count(activity_deps, "customer.updated", acme["id"]) == 1


async def test_bad_customers_are_refused(client: httpx.AsyncClient, team: Team) -> None:
    good = {"name": "A", "billing_email": "a@example.com", "currency": "USD"}
    for bad in ({"billing_email": "not-an-email"}, {"currency": "XYZ"}, {"currency": "XAU"},
                {"payment_terms_days": 366}, {"payment_terms_days": -1}, {"name": ""}, {"vat": "1"},
                {"name": "a\x00b"}):  # fmt: skip
        response = await client.post("/api/v1/customers", json={**good, **bad}, headers=team.accountant.headers)
        assert response.status_code == 422, (bad, response.text)
    assert (await client.get("/api/v1/customers", headers=team.accountant.headers)).json()["total"] == 0
