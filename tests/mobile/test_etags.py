"""ETag and If-None-Match: the same answer again is a 304 with no body; any change a client would see is a 200 with
a new tag. An entry's tag still works in If-Match."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import httpx
import pytest

from activities.deps import ActivityDeps
from api.app import create_app
from api.deps import AppServices
from api.etags import matches, tag_for
from domain.entries import repository as entries
from tests.mobile.conftest import People, add_entries, add_notifications

pytestmark = pytest.mark.usefixtures("database_url")
DAY = date(2025, 3, 1)


async def revalidate(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str]:
    """Read `url`, then read it again with its tag: a 304 with no body. The first answer and its tag."""
    first = await client.get(url, headers=headers)
    assert first.status_code == 200, first.text
    tag = first.headers["etag"]
    again = await client.get(url, headers={**headers, "If-None-Match": tag})
    assert again.status_code == 304, again.text
    assert again.content == b"" and again.headers["etag"] == tag
    assert "content-type" not in again.headers and "content-length" not in again.headers
    return first, tag


async def test_lists_revalidate_and_a_change_gives_a_new_tag(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    [entry_id] = await add_entries(activity_deps, people.employee, [(DAY, Decimal("12.00"))])
    await add_notifications(activity_deps, people.employee, 2)
    _, entries_tag = await revalidate(client, "/api/v1/expenses/", headers)
    _, notes_tag = await revalidate(client, "/api/v1/notifications", headers)
    assert entries_tag.startswith('W/"')

    # An edit (a new version) and a notification read: both lists answer in full, with new tags.
    current = await client.get(f"/api/v1/expenses/{entry_id}", headers=headers)
    edited = await client.patch(
        f"/api/v1/expenses/{entry_id}",
        json={"amount": "13.00"},
        headers={**headers, "If-Match": current.headers["etag"]},
    )
    assert edited.status_code == 200, edited.text
    changed = await client.get("/api/v1/expenses/", headers={**headers, "If-None-Match": entries_tag})
    assert changed.status_code == 200 and changed.headers["etag"] != entries_tag
    assert changed.json()["items"][0]["amount"] == "13.00"

    note_id = (await client.get("/api/v1/notifications", headers=headers)).json()["items"][0]["id"]
    assert (await client.post(f"/api/v1/notifications/{note_id}/read", headers=headers)).status_code == 200
    read = await client.get("/api/v1/notifications", headers={**headers, "If-None-Match": notes_tag})
    assert read.status_code == 200 and read.headers["etag"] != notes_tag


async def test_the_tag_depends_on_the_page_and_fields_asked_for(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    await add_entries(activity_deps, people.employee, [(DAY, Decimal("1.00")), (DAY, Decimal("2.00"))])
    whole = await client.get("/api/v1/expenses/", headers=headers)
    sparse = await client.get("/api/v1/expenses/?fields=amount", headers=headers)
    other_page = await client.get("/api/v1/expenses/?limit=1", headers=headers)
    tags = {whole.headers["etag"], sparse.headers["etag"], other_page.headers["etag"]}
    assert len(tags) == 3
    # The sparse answer's tag revalidates the sparse answer, and not the whole one.
    assert (await client.get("/api/v1/expenses/?fields=amount", headers={**headers, "If-None-Match": sparse.headers[
        "etag"]})).status_code == 304  # fmt: skip
    assert (await client.get("/api/v1/expenses/", headers={**headers, "If-None-Match": sparse.headers[
        "etag"]})).status_code == 200  # fmt: skip


async def test_one_entry_keeps_its_version_in_the_tag_for_if_match(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.employee.headers
    [entry_id] = await add_entries(activity_deps, people.employee, [(DAY, Decimal("20.00"))])
    url = f"/api/v1/expenses/{entry_id}"
    first, tag = await revalidate(client, url, headers)
    assert tag.startswith('"1.')  # version 1, then the body's digest
    # The tag is what If-Match takes: the version before the dot.
    edited = await client.patch(url, json={"category": "meals"}, headers={**headers, "If-Match": tag})
    assert edited.status_code == 200, edited.text
    stale = await client.patch(url, json={"category": "taxi"}, headers={**headers, "If-Match": tag})
    assert stale.status_code == 412
    after = await client.get(url, headers={**headers, "If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"].startswith('"2.')


async def test_a_change_outside_the_row_changes_the_tag(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    """A draft in another currency shows an indicative base amount at today's rate: a new rate changes what the
    entry shows without touching its row (nor its version), and the tag follows what is shown."""
    headers = people.employee.headers
    base = activity_deps.settings.approvals.base_currency
    foreign = "GBP" if base != "GBP" else "CHF"
    [entry_id] = await add_entries(activity_deps, people.employee, [(DAY, Decimal("100.00"))], currency=foreign)
    url = f"/api/v1/expenses/{entry_id}"
    first, tag = await revalidate(client, url, headers)
    assert first.json()["indicative_base_amount"] is None  # no rate yet
    async with activity_deps.db.transaction() as tx:
        for currency, rate in ((foreign, Decimal("0.85")), (base, Decimal("1.10"))):
            if currency != "EUR":  # ECB rates are per euro: the euro's own leg is 1
                await tx.sql.run(
                    "INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES (%s, %s, %s, 'manual')",
                    (currency, DAY, rate),
                )
    async with activity_deps.db.transaction() as tx:
        row = await entries.get(tx.sql, entry_id)
    assert row is not None and row.version == 1  # the row did not move
    second = await client.get(url, headers={**headers, "If-None-Match": tag})
    assert second.status_code == 200, "a rate arrived and the entry shows it, yet the old tag was a 304"
    assert second.json()["indicative_base_amount"] is not None
    assert second.headers["etag"] != tag and second.headers["etag"].startswith('"1.')


async def test_the_dashboard_revalidates(
    client: httpx.AsyncClient, people: People, activity_deps: ActivityDeps
) -> None:
    headers = people.manager.headers
    _, overview = await revalidate(client, "/api/v1/dashboard/overview", headers)
    _, kpi = await revalidate(client, "/api/v1/dashboard/kpi?months=3", headers)
    await add_entries(activity_deps, people.employee, [(date.today(), Decimal("75.00"))])  # a team member's draft
    changed = await client.get("/api/v1/dashboard/overview", headers={**headers, "If-None-Match": overview})
    assert changed.status_code == 200 and changed.headers["etag"] != overview


async def test_a_route_without_the_dependency_has_no_tag(client: httpx.AsyncClient, people: People) -> None:
    response = await client.get("/api/v1/notifications/unread-count", headers=people.employee.headers)
    assert response.status_code == 200 and "etag" not in response.headers


async def test_errors_are_not_tagged(client: httpx.AsyncClient, people: People) -> None:
    response = await client.get("/api/v1/expenses/999999", headers={**people.employee.headers, "If-None-Match": "*"})
    assert response.status_code == 404 and "etag" not in response.headers


def test_if_none_match_compares_weakly_and_takes_lists_and_star() -> None:
    tag = tag_for(b'{"items":[]}', None)
    assert tag.startswith('W/"')
    assert matches(tag, tag) and matches(tag.removeprefix("W/"), tag)
    assert matches(f'"other", {tag}', tag) and matches("*", tag)
    assert not matches('"other"', tag) and not matches(None, tag) and not matches("", tag)
    versioned = tag_for(b"{}", '"7"')
    assert versioned.startswith('"7.') and tag_for(b"{}", '"7"') == versioned and tag_for(b"{ }", '"7"') != versioned


async def test_the_contract_declares_the_304_and_the_tag_where_if_none_match_is_taken(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    conditional = {
        (path, method)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if any(parameter.get("name") == "If-None-Match" for parameter in operation.get("parameters", []))
    }
    assert {("/api/v1/expenses/", "get"), ("/api/v1/expenses/{entry_id}", "get"), ("/api/v1/notifications", "get"),
            ("/api/v1/dashboard/overview", "get"), ("/api/v1/dashboard/kpi", "get")} <= conditional  # fmt: skip
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            assert ("304" in responses) == ((path, method) in conditional), (path, method)
            if (path, method) in conditional:
                assert "ETag" in responses["200"]["headers"] and "content" in responses["200"]


async def test_a_browser_app_on_an_allowed_origin_may_send_if_none_match(app_services: AppServices) -> None:
    """CORS: the preflight allows If-None-Match, and the ETag is readable by the page's script."""
    settings = app_services.settings.model_copy(update={"cors_origins": "https://app.example.com"})
    services = dataclasses.replace(app_services, settings=settings)
    app = create_app(services=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            preflight = await http.options("/api/v1/expenses/", headers={
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, if-none-match"})  # fmt: skip
    assert preflight.status_code == 200, preflight.text
    assert "if-none-match" in preflight.headers["access-control-allow-headers"].lower()
