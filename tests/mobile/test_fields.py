"""`?fields=`: each item keeps only the fields asked for (and its id); an unknown name is a 422 that names it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from activities.deps import ActivityDeps
from tests.approvals.conftest import submit_directly
from tests.mobile.conftest import People, add_entries, add_notifications

pytestmark = pytest.mark.usefixtures("database_url")


async def test_items_keep_only_the_fields_asked_for_and_their_id(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    await add_entries(activity_deps, people.employee, [(date(2025, 1, 2), Decimal("9.50"))] * 3)
    whole = (await client.get("/api/v1/expenses/", headers=headers)).json()
    sparse = await client.get("/api/v1/expenses/?fields=amount, status,entry_date", headers=headers)
    assert sparse.status_code == 200, sparse.text
    body = sparse.json()
    assert [set(item) for item in body["items"]] == [{"id", "amount", "status", "entry_date"}] * 3
    assert [item["amount"] for item in body["items"]] == [item["amount"] for item in whole["items"]]
    # The page around the items is whole: totals and the cursor are still there.
    assert {key: value for key, value in body.items() if key != "items"} == {
        key: value for key, value in whole.items() if key != "items"
    }
    assert int(sparse.headers["content-length"]) < len((await client.get("/api/v1/expenses/", headers={
        **headers, "Accept-Encoding": "identity"})).content)  # fmt: skip

    await add_notifications(activity_deps, people.employee, 2)
    notes = (await client.get("/api/v1/notifications?fields=title", headers=headers)).json()
    assert [set(item) for item in notes["items"]] == [{"id", "title"}] * 2

    # The inbox's items are steps of requests: both ids always come.
    await submit_directly(activity_deps, people.employee.id, "40.00")
    inbox = (await client.get("/api/v1/approvals/?fields=amount", headers=people.manager.headers)).json()
    assert [set(item) for item in inbox["items"]] == [{"request_id", "step_id", "amount"}]


async def test_an_unknown_field_is_refused_by_name(client: httpx.AsyncClient, people: People) -> None:
    headers = people.employee.headers
    response = await client.get("/api/v1/expenses/?fields=amount,password_hash,secret", headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "unknown fields in fields: password_hash, secret"
    assert error["details"]["unknown"] == ["password_hash", "secret"] and "amount" in error["details"]["allowed"]
    # A field of another list's items is unknown here.
    other = await client.get("/api/v1/notifications?fields=title,amount", headers=headers)
    assert other.status_code == 422 and "amount" in other.json()["error"]["message"]
    empty = await client.get("/api/v1/expenses/?fields=,", headers=headers)
    assert empty.status_code == 422 and "names no field" in empty.json()["error"]["message"]


async def test_the_fields_are_in_the_contract(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/expenses/"]["get"]
    names = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert {"cursor", "fields", "updated_since", "If-None-Match"} <= set(names)
    assert "entry_date" in names["fields"]["description"]
