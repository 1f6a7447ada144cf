"""Exports over HTTP through the real workflow: a closed month's batch is numbered, made by ExportWorkflow, downloaded
as the bytes a direct rendering gives (the golden file's), and made again byte for byte under a new number; what is
refused (an open month, an employee, a manager, DATEV without its numbers), and what a batch never does again."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.exports import ExportActivities
from api.deps import AppServices
from core.engine import WorkflowEngine
from core.settings import TemporalSettings
from core.temporal import task_queues
from domain.exports import repository
from domain.ledger import repository as ledger
from tests.approvals.conftest import audit_count
from tests.conftest import MakeUser
from tests.conftest import TestUser as Person
from tests.exports import month
from tests.exports.test_golden import golden
from workflows.contracts import ExportFailure, ExportJob

MARCH = "2026-03"


async def request(
    api: httpx.AsyncClient, user: Person, export_format: str, month: str = MARCH, **headers: str
) -> httpx.Response:
    return await api.post(
        "/api/v1/exports", json={"month": month, "format": export_format}, headers={**user.headers, **headers}
    )


async def finished(api: httpx.AsyncClient, user: Person, export_id: int, seconds: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await api.get(f"/api/v1/exports/{export_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "pending":
            return body
        assert asyncio.get_running_loop().time() < deadline, "export still pending"
        await asyncio.sleep(0.1)


async def made(
    api: httpx.AsyncClient, user: Person, export_format: str, month: str = MARCH
) -> tuple[dict[str, Any], bytes]:
    accepted = await request(api, user, export_format, month)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status"] == "pending" and body["workflow_id"] == f"export-{body['number']}"
    done = await finished(api, user, body["id"])
    assert done["status"] == "completed", done
    download = await api.get(f"/api/v1/exports/{body['id']}/download", headers=user.headers)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == done["content_type"]
    assert download.headers["content-disposition"] == f'attachment; filename="{done["filename"]}"'
    return done, download.content


async def rendered_from_the_database(deps: ActivityDeps, export_format: str) -> bytes:
    """The format's file rendered directly from the journals as stored (no workflow)."""
    async with deps.db.transaction() as tx:
        closed = await ledger.closed_period(tx.sql, month.MONTH)
        assert closed is not None
        stored = [
            journal
            async for batch in ledger.closing_journals(tx.sql, month.MONTH, closed.closings)
            for journal in batch
        ]
    return month.rendered(export_format, month.context(tuple(stored)), tuple(stored))


async def test_a_closed_month_exports_and_exports_again_byte_for_byte_under_a_new_number(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    first, data = await made(api, accountant, "journal_csv")
    assert first["number"] == 1 and first["month"] == MARCH and first["closing"] == 1
    assert first["filename"] == "journals_2026-03_export-1.csv"
    assert first["journals"] == len(month.JOURNALS)
    assert data == await rendered_from_the_database(exports_deps, "journal_csv") == golden("journal_csv")
    assert first["size_bytes"] == len(data) and first["sha256"] == hashlib.sha256(data).hexdigest()

    second, again = await made(api, accountant, "journal_csv")
    assert second["number"] == 2 and second["id"] != first["id"]
    assert again == data and second["sha256"] == first["sha256"]
    assert await audit_count(exports_deps, "export.created") == 2
    assert await audit_count(exports_deps, "export.completed", first["id"]) == 1

    listed = await api.get("/api/v1/exports", headers=accountant.headers, params={"month": MARCH})
    assert [item["number"] for item in listed.json()["items"]] == [2, 1]


async def test_each_product_format_downloads_as_its_golden_file(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    admin = await make_user("admin")  # admins hold what accountants may do
    await month.insert_closed_month(exports_deps)
    for number, export_format in enumerate(("xero", "quickbooks", "datev"), start=1):
        done, data = await made(api, admin, export_format)
        assert done["number"] == number
        assert data == golden(export_format), export_format
    assert done["content_type"] == "text/csv; charset=windows-1252"
    assert done["filename"] == "EXTF_Buchungsstapel_2026-03_export-3.csv"


async def test_an_open_month_is_refused_and_takes_no_number(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps, status="open")  # closed once, reopened
    refused = await request(api, accountant, "journal_csv")
    assert refused.status_code == 409, refused.text
    assert "not closed" in refused.json()["error"]["message"]
    never = await api.post("/api/v1/exports", json={"month": "2026-02", "format": "xero"}, headers=accountant.headers)
    assert never.status_code == 409
    assert (await api.get("/api/v1/exports", headers=accountant.headers)).json()["total"] == 0
    await month.insert_closed_month(exports_deps, closing=2)
    accepted = await request(api, accountant, "journal_csv")
    assert accepted.status_code == 202 and accepted.json()["number"] == 1  # no gap left by the refusals
    assert accepted.json()["closing"] == 2


async def test_employees_and_managers_may_neither_export_nor_read_exports(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    await month.insert_closed_month(exports_deps)
    manager = await make_user("manager")
    employee = await make_user("employee", manager=manager)
    for person in (employee, manager):
        assert (await request(api, person, "journal_csv")).status_code == 403
        assert (await api.get("/api/v1/exports", headers=person.headers)).status_code == 403
    assert await audit_count(exports_deps, "export.created") == 0


async def test_a_repeated_request_with_its_idempotency_key_makes_one_batch(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    first = await request(api, accountant, "quickbooks", **{"Idempotency-Key": "march-qbo"})
    again = await request(api, accountant, "quickbooks", **{"Idempotency-Key": "march-qbo"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = await api.post(
        "/api/v1/exports",
        json={"month": MARCH, "format": "xero"},
        headers={**accountant.headers, "Idempotency-Key": "march-qbo"},
    )
    assert other.status_code == 422
    assert (await finished(api, accountant, first.json()["id"]))["status"] == "completed"
    assert (await api.get("/api/v1/exports", headers=accountant.headers)).json()["total"] == 1


async def test_a_month_the_format_cannot_hold_fails_with_the_reason(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    accountant = await make_user("accountant")
    travel = month.JOURNALS[0].lines[0]
    named = replace(month.JOURNALS[0], lines=(replace(travel, account_code="TRAVEL"), *month.JOURNALS[0].lines[1:]))
    await month.insert_closed_month(exports_deps, (named,))
    accepted = await request(api, accountant, "datev")
    done = await finished(api, accountant, accepted.json()["id"])
    assert done["status"] == "failed" and "'TRAVEL' is not a DATEV account" in done["error"]
    assert done["filename"] is None and done["download_url"] is None
    download = await api.get(f"/api/v1/exports/{done['id']}/download", headers=accountant.headers)
    assert download.status_code == 409
    assert await audit_count(exports_deps, "export.failed", done["id"]) == 1


async def test_a_batch_is_made_once_and_never_again(
    api: httpx.AsyncClient, make_user: MakeUser, exports_deps: ActivityDeps, temporal_client: Client
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    done, data = await made(api, accountant, "datev")
    # The workflow run again by hand (an operator with the Temporal CLI): the batch is as it was.
    result = await temporal_client.execute_workflow(
        "ExportWorkflow",
        ExportJob(batch_id=done["id"]),
        id=f"export-{done['number']}-again",
        task_queue=task_queues(exports_deps.settings.temporal).reports,
        result_type=None,
    )
    assert result["status"] == "completed" and result["sha256"] == done["sha256"]
    async with exports_deps.db.transaction() as tx:
        batch = await repository.get(tx.sql, done["id"])
        assert batch is not None and batch.completed_at is not None
        assert await repository.complete(
            tx.sql, batch.id, storage_key="x", filename="x", content_type="x", size_bytes=1, sha256="0" * 64, journals=1
        ) is None  # fmt: skip
        assert await repository.fail(tx.sql, batch.id, "late") is None
    after = (await api.get(f"/api/v1/exports/{done['id']}", headers=accountant.headers)).json()
    assert after == done
    assert (await api.get(f"/api/v1/exports/{done['id']}/download", headers=accountant.headers)).content == data
    assert await audit_count(exports_deps, "export.completed", done["id"]) == 1


async def test_a_batch_whose_month_was_reopened_before_it_was_made_fails(
    make_user: MakeUser, exports_deps: ActivityDeps
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    async with exports_deps.db.transaction() as tx:
        batch = await repository.insert(tx.sql, 1, month.MONTH, 1, "journal_csv", "export-1", accountant.id)
    await month.insert_closed_month(exports_deps, (), closing=2)  # reopened and closed again meanwhile
    activities = ExportActivities(exports_deps)
    with pytest.raises(ApplicationError, match="reopened since this export was requested") as refused:
        await ActivityEnvironment().run(activities.render, ExportJob(batch_id=batch.id))
    assert refused.value.non_retryable
    failed = await ActivityEnvironment().run(
        activities.fail, ExportFailure(batch_id=batch.id, error=str(refused.value))
    )
    assert failed.status == "failed" and failed.filename is None


async def test_a_datev_export_is_refused_until_the_datev_numbers_are_set(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    """The session's app, whose settings leave DATEV_CONSULTANT_NUMBER and DATEV_CLIENT_NUMBER unset."""
    assert not activity_deps.settings.exports.datev_ready
    accountant = await make_user("accountant")
    await month.insert_closed_month(activity_deps)
    refused = await request(client, accountant, "datev")
    assert refused.status_code == 422, refused.text
    assert "DATEV_CONSULTANT_NUMBER" in refused.json()["error"]["message"]
    bad = await client.post("/api/v1/exports", json={"month": "2026-13", "format": "datev"}, headers=accountant.headers)
    assert bad.status_code == 422
    unknown = await client.post(
        "/api/v1/exports", json={"month": MARCH, "format": "sage", "extra": 1}, headers=accountant.headers
    )
    assert unknown.status_code == 422
    assert await audit_count(activity_deps, "export.created") == 0


async def test_an_engine_away_fails_the_numbered_batch_and_lets_the_key_be_used_again(
    api: httpx.AsyncClient,
    exports_app: Any,
    make_user: MakeUser,
    exports_deps: ActivityDeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accountant = await make_user("accountant")
    await month.insert_closed_month(exports_deps)
    services: AppServices = exports_app.state.services
    monkeypatch.setattr(services, "engine", WorkflowEngine(TemporalSettings(address="127.0.0.1:1")))
    away = await request(api, accountant, "xero", **{"Idempotency-Key": "march-xero"})
    assert away.status_code == 503, away.text
    monkeypatch.undo()
    listed = (await api.get("/api/v1/exports", headers=accountant.headers)).json()["items"]
    assert [(item["number"], item["status"]) for item in listed] == [(1, "failed")]  # its number stays taken
    assert "unreachable" in listed[0]["error"]
    assert await audit_count(exports_deps, "export.failed", listed[0]["id"]) == 1
    again = await request(api, accountant, "xero", **{"Idempotency-Key": "march-xero"})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert again.json()["number"] == 2
    assert (await finished(api, accountant, again.json()["id"]))["status"] == "completed"
