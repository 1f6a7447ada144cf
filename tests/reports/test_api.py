"""Reports over HTTP through the real workflow: scoping, status, download, listing, bad input."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from activities.deps import ActivityDeps
from api.errors import status_for
from domain.audit.service import AuditContext
from domain.errors import RateLimited
from domain.models import Report, User
from domain.reports import service
from domain.reports.schemas import ReportRequest
from domain.users.visibility import visibility_for
from tests.conftest import TestUser as Person
from tests.reports.conftest import PERIOD, KnownData
from tests.reports.readback import csv_table
from workflows.contracts import ReportJob


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
    assert [row[10] for row in rows[-3:]] == ["3500.25", "600.49", "2899.76"]


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
        {"type": "pnl", "format": "csv", "period": {"from": "9999-01-01", "to": "9999-12-31"}},  # within 400 days
        {"type": "pnl", "format": "csv", "period": {"from": "1899-12-01", "to": "1899-12-31"}},
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
    far_future = await api.post(
        "/api/v1/reports",
        json={"type": "pnl", "format": "csv", "period": {"from": "2100-12-01", "to": "2101-01-31"}},
        headers=user.headers,
    )
    assert far_future.status_code == 422
    assert (
        far_future.json()["error"]["message"]
        == "period.to: Value error, dates must be between 2000-01-01 and 2100-12-31"
    )
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
    async with services.db.transaction() as tx:
        await tx.session.execute(update(Report).where(Report.id == report_id).values(status="failed", error="x"))
    response = await api.post(f"/api/v1/reports/{report_id}/download", headers=known.alice.headers)
    assert response.status_code == 409 and "failed" in response.json()["error"]["message"]


async def test_list_offsets_are_capped(api: httpx.AsyncClient, known: KnownData) -> None:
    for path in ("/api/v1/reports", "/api/v1/reports/schedules"):
        capped = await api.get(f"{path}?offset=1000000", headers=known.admin.headers)
        assert capped.status_code == 200, capped.text
        beyond = await api.get(f"{path}?offset=1000001", headers=known.admin.headers)
        assert beyond.status_code == 422, beyond.text
        assert beyond.json()["error"]["message"] == "query.offset: Input should be less than or equal to 1000000"


async def test_a_completed_report_whose_file_is_gone_is_404_with_a_message(
    api: httpx.AsyncClient, known: KnownData, reports_deps: ActivityDeps
) -> None:
    body, _ = await made(api, known.alice, "pnl", "csv")
    async with reports_deps.db.transaction() as tx:
        report = await tx.session.get(Report, uuid.UUID(body["id"]))
    assert report is not None and report.storage_key
    (Path(reports_deps.settings.storage.local_dir) / report.storage_key).unlink()  # as a prune racing the request

    for method in ("GET", "POST"):
        response = await api.request(method, f"/api/v1/reports/{report.id}/download", headers=known.alice.headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["message"] == "the report's file is no longer stored; request the report again"


async def test_status_answers_promptly_when_the_workflow_does_not_answer_its_query(
    api: httpx.AsyncClient, known: KnownData, reports_deps: ActivityDeps, temporal_client: Client
) -> None:
    """No worker polls the queue of this report's workflow, so its progress query cannot be answered: the status
    read shows the stored status without live progress instead of waiting on Temporal."""
    async with reports_deps.db.transaction() as tx:
        user = await tx.session.get(User, known.alice.id)
        assert user is not None
        visibility = await visibility_for(tx.sql, reports_deps.authorizer, user)
        request = ReportRequest.model_validate({"type": "pnl", "format": "csv", "period": PERIOD})
        report = await service.request_report(
            tx, reports_deps.settings.reports, user, visibility, request, AuditContext()
        )
    assert report.workflow_id
    handle = await temporal_client.start_workflow(
        "ReportWorkflow",
        ReportJob(report_id=str(report.id), requested_by_id=user.id),
        id=report.workflow_id,
        task_queue=f"nobody-polls-{uuid.uuid4().hex[:8]}",
    )
    try:
        response = await asyncio.wait_for(
            api.get(f"/api/v1/reports/{report.id}", headers=known.alice.headers), timeout=15
        )
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["progress_rows"]) == ("queued", None)
    finally:
        await handle.terminate("test over")


async def test_report_requests_beyond_the_hourly_budget_are_429(known: KnownData, reports_deps: ActivityDeps) -> None:
    """Each report costs a workflow and a render: past REPORT_REQUESTS_PER_HOUR a user's requests are refused (429
    with the seconds to wait), and the refused request stores nothing."""
    budget = reports_deps.settings.reports.model_copy(update={"requests_per_hour": 2})
    request = ReportRequest.model_validate({"type": "pnl", "format": "csv", "period": PERIOD})

    async def ask() -> None:
        async with reports_deps.db.transaction() as tx:
            user = await tx.session.get(User, known.carol.id)
            assert user is not None
            visibility = await visibility_for(tx.sql, reports_deps.authorizer, user)
            await service.request_report(tx, budget, user, visibility, request, AuditContext())

    await ask()
    await ask()
    with pytest.raises(RateLimited) as refused:
        await ask()
    assert 0 < refused.value.retry_after <= 3600
    async with reports_deps.db.transaction() as tx:
        stored = await tx.session.scalar(
            select(func.count()).select_from(Report).where(Report.requested_by_id == known.carol.id)
        )
    assert stored == 2
    assert status_for(refused.value) == 429
