"""Reports over HTTP through the real workflow: scoping, status, download, listing, bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import TestUser as Person
from tests.reports.conftest import PERIOD, KnownData
from tests.reports.readback import csv_table


async def request(api: httpx.AsyncClient, user: Person, report_type: str, fmt: str, **extra: Any) -> httpx.Response:
    body = {"type": report_type, "format": fmt, "period": PERIOD, **extra}
    return await api.post("/api/v1/reports", json=body, headers=user.headers)


async def finished(api: httpx.AsyncClient, user: Person, report_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await api.get(f"/api/v1/reports/{report_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        assert asyncio.get_running_loop().time() < deadline, f"report still {body['status']}"
        await asyncio.sleep(0.2)


async def made(
    api: httpx.AsyncClient, user: Person, report_type: str, fmt: str
) -> tuple[dict[str, Any], httpx.Response]:
    accepted = await request(api, user, report_type, fmt)
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["id"]
    assert accepted.json()["workflow_id"] == f"report-{report_id}"
    body = await finished(api, user, report_id)
    assert body["status"] == "completed", body
    download = await api.post(f"/api/v1/reports/{report_id}/download", headers=user.headers)
    assert download.status_code == 200, download.text
    return body, download


async def test_an_employees_report_holds_only_their_entries(api: httpx.AsyncClient, known: KnownData) -> None:
    body, download = await made(api, known.alice, "pnl", "json")
    assert body["scope"] == {"kind": "owners", "viewer_id": known.alice.id, "owner_ids": [known.alice.id]}
    assert download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == 'attachment; filename="pnl_2024-01-01_2024-03-31.json"'
    document = json.loads(download.content)
    assert document["totals"] == [{"month": "Total", "revenue": "1000.00", "expenses": "300.49", "net": "699.51"}]
    assert document["report"]["scope"].startswith("Own entries of Alice Able")

    _, ledger = await made(api, known.alice, "ledger", "csv")
    _, rows = csv_table(ledger.content)
    owners = {row[6] for row in rows[:-3]}
    assert owners == {known.alice.username}
    assert len(rows[:-3]) == 4


async def test_a_managers_report_covers_their_subtree(api: httpx.AsyncClient, known: KnownData) -> None:
    _, ledger = await made(api, known.manager, "ledger", "csv")
    assert ledger.headers["content-type"].startswith("text/csv")
    _, rows = csv_table(ledger.content)
    assert {row[6] for row in rows[:-3]} == {known.alice.username, known.bob.username}  # not Carol
    assert [row[8] for row in rows[-3:]] == ["3500.25", "600.49", "2899.76"]


async def test_status_list_and_visibility_of_reports(api: httpx.AsyncClient, known: KnownData) -> None:
    accepted = await request(api, known.alice, "expenses_by_category", "xlsx")
    report_id = accepted.json()["id"]
    body = await finished(api, known.alice, report_id)
    assert body["rows"] == 2 and body["download_url"] == f"/api/v1/reports/{report_id}/download"
    assert body["content_type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    get = await api.get(f"/api/v1/reports/{report_id}/download", headers=known.alice.headers)
    assert get.status_code == 200 and get.content[:2] == b"PK"

    await request(api, known.bob, "pnl", "csv")
    mine = (await api.get("/api/v1/reports", headers=known.alice.headers)).json()
    assert [item["id"] for item in mine["items"]] == [report_id]
    everyone = (await api.get("/api/v1/reports?limit=100", headers=known.admin.headers)).json()
    assert everyone["total"] == 2
    # Someone else's report does not exist as far as Bob can tell; an admin may read it.
    assert (await api.get(f"/api/v1/reports/{report_id}", headers=known.bob.headers)).status_code == 404
    assert (await api.post(f"/api/v1/reports/{report_id}/download", headers=known.bob.headers)).status_code == 404
    assert (await api.get(f"/api/v1/reports/{report_id}", headers=known.admin.headers)).status_code == 200
    assert (await api.get("/api/v1/reports?limit=101", headers=known.admin.headers)).status_code == 422


async def test_bad_requests_are_422_with_a_message(api: httpx.AsyncClient, known: KnownData) -> None:
    user = known.alice
    cases = [
        {"type": "balance_sheet", "format": "csv", "period": PERIOD},
        {"type": "pnl", "format": "docx", "period": PERIOD},
        {"type": "pnl", "format": "csv", "period": {"from": "2024-03-01", "to": "2024-01-01"}},
        {"type": "pnl", "format": "csv", "period": {"from": "2020-01-01", "to": "2024-01-01"}},  # over 400 days
        {"type": "pnl", "format": "csv", "period": PERIOD, "colour": "red"},
        {"type": "pnl", "format": "csv", "period": {"from": "2024-01-01"}},
        {"type": "pnl", "format": "csv", "period": PERIOD, "filters": {"kind": "expense"}},  # ledger only
    ]
    for body in cases:
        response = await api.post("/api/v1/reports", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["message"]
    too_long = await api.post(
        "/api/v1/reports",
        json={"type": "pnl", "format": "csv", "period": {"from": "2020-01-01", "to": "2024-01-01"}},
        headers=user.headers,
    )
    assert "maximum is 400" in too_long.json()["error"]["message"]
    reversed_period = await api.post(
        "/api/v1/reports",
        json={"type": "pnl", "format": "csv", "period": {"from": "2024-03-01", "to": "2024-01-01"}},
        headers=user.headers,
    )
    assert "must not be after" in reversed_period.json()["error"]["message"]
    assert (await api.get("/api/v1/reports", headers=user.headers)).json()["total"] == 0  # nothing was queued


async def test_a_report_on_others_is_403(api: httpx.AsyncClient, known: KnownData) -> None:
    response = await request(api, known.alice, "ledger", "csv", filters={"owner_ids": [known.carol.id]})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["details"]["owner_ids"] == [known.carol.id]
    # The manager may narrow to someone in their team, not outside it.
    assert (await request(api, known.manager, "pnl", "csv", filters={"owner_ids": [known.bob.id]})).status_code == 202
    assert (await request(api, known.manager, "pnl", "csv", filters={"owner_ids": [known.carol.id]})).status_code == 403
    # Schedules are for admins.
    schedule = {"name": "x", "type": "pnl", "format": "csv", "cron": "0 6 1 * *"}
    assert (await api.post("/api/v1/reports/schedules", json=schedule, headers=known.alice.headers)).status_code == 403
    assert (await api.get("/api/v1/reports/schedules", headers=known.manager.headers)).status_code == 403
    assert (await api.post("/api/v1/reports", json={"type": "pnl"})).status_code == 401


async def test_a_report_not_ready_cannot_be_downloaded(api: httpx.AsyncClient, known: KnownData) -> None:
    from domain.models import Report

    accepted = await request(api, known.alice, "pnl", "csv")
    report_id = accepted.json()["id"]
    await finished(api, known.alice, report_id)
    # A failed report (simulated by the state) answers 409 with the status named.
    from sqlalchemy import update

    services = api._transport.app.state.services  # type: ignore[attr-defined]
    async with services.sessions() as session:
        await session.execute(update(Report).where(Report.id == report_id).values(status="failed", error="x"))
        await session.commit()
    response = await api.post(f"/api/v1/reports/{report_id}/download", headers=known.alice.headers)
    assert response.status_code == 409 and "failed" in response.json()["error"]["message"]
