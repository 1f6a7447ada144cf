"""The admin endpoints, end to end on the project's worker and the default local folder store."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import Settings
from core.temporal import task_queues
from domain.models import Backup
from tests.backups.conftest import Seeded
from tests.conftest import MakeUser
from workflows.contracts import BackupInput, BackupResult, DrillResult, backup_workflow_id


@pytest.mark.usefixtures("worker")
async def test_a_superadmin_runs_a_backup_and_a_drill_and_reads_them_back(
    client: httpx.AsyncClient, temporal_client: Client, seeded: Seeded, settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {seeded.admin.token}"}
    started = await client.post("/api/v1/admin/backups", headers=headers)
    assert started.status_code == 202, started.text
    workflow_id = started.json()["workflow_id"]
    assert workflow_id.startswith("backup-") and workflow_id.endswith("Z")
    handle = temporal_client.get_workflow_handle(workflow_id, result_type=BackupResult)
    result = await handle.result(rpc_timeout=timedelta(seconds=60))

    listed = (await client.get("/api/v1/admin/backups", headers=headers)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == result.backup_id
    assert listed["items"][0]["status"] == "completed"
    stored = settings.storage.local_dir / result.storage_key
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == listed["items"][0]["sha256"] == result.sha256

    drill = await client.post(f"/api/v1/admin/backups/{result.backup_id}/drill", headers=headers)
    assert drill.status_code == 202, drill.text
    verdict = await temporal_client.get_workflow_handle(drill.json()["workflow_id"], result_type=DrillResult).result(
        rpc_timeout=timedelta(seconds=60)
    )
    assert verdict.status == "passed"

    detail = (await client.get(f"/api/v1/admin/backups/{result.backup_id}", headers=headers)).json()
    assert detail["manifest"]["tables"]["entries.revenue"] == {"rows": 3, "amount_sum": str(seeded.revenue_sum)}
    assert [(d["status"], d["error"]) for d in detail["drills"]] == [("passed", None)]


async def test_backups_are_for_superadmins_only_and_bad_ids_are_clear(
    client: httpx.AsyncClient, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    admin = await make_user("admin")
    superadmin = await make_user("superadmin")
    assert (await client.post("/api/v1/admin/backups", headers=admin.headers)).status_code == 403
    assert (await client.get("/api/v1/admin/backups", headers=admin.headers)).status_code == 403
    assert (await client.get("/api/v1/admin/backups/999", headers=superadmin.headers)).status_code == 404
    assert (await client.post("/api/v1/admin/backups/999/drill", headers=superadmin.headers)).status_code == 404
    assert (await client.get("/api/v1/admin/backups/0", headers=superadmin.headers)).status_code == 422
    bad = await client.get("/api/v1/admin/backups?limit=1000", headers=superadmin.headers)
    assert bad.status_code == 422
    async with activity_deps.db.transaction() as tx:
        failed = Backup(workflow_id="backup-failed", status="failed", error="disk full", manifest={})
        tx.session.add(failed)
    refused = await client.post(f"/api/v1/admin/backups/{failed.id}/drill", headers=superadmin.headers)
    assert refused.status_code == 409
    assert "only a completed backup can be drilled" in refused.json()["error"]["message"]


def _fixed_backup_id(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every POST /admin/backups of this test gets one workflow id, as requests within one second do."""
    workflow_id = f"{backup_workflow_id(datetime.now(UTC))}-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr("api.routes.admin_backups.backup_workflow_id", lambda _: workflow_id)
    return workflow_id


async def _backup_rows(deps: ActivityDeps) -> list[tuple[str, str]]:
    async with deps.db.transaction() as tx:
        return list((await tx.session.execute(select(Backup.workflow_id, Backup.status))).tuples().all())


@pytest.mark.usefixtures("worker")
async def test_two_backups_requested_in_the_same_second_make_one_backup_and_a_409(
    client: httpx.AsyncClient,
    temporal_client: Client,
    seeded: Seeded,
    activity_deps: ActivityDeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = _fixed_backup_id(monkeypatch)
    headers = {"Authorization": f"Bearer {seeded.admin.token}"}
    responses = await asyncio.gather(*(client.post("/api/v1/admin/backups", headers=headers) for _ in range(2)))

    assert sorted(r.status_code for r in responses) == [202, 409], [r.text for r in responses]
    started = next(r for r in responses if r.status_code == 202).json()
    error = next(r for r in responses if r.status_code == 409).json()["error"]
    assert error["details"]["backup_id"] == started["backup_id"]
    assert error["message"].startswith(f"backup {started['backup_id']} ({workflow_id}) was started this very second")
    result = await temporal_client.get_workflow_handle(workflow_id, result_type=BackupResult).result(
        rpc_timeout=timedelta(seconds=60)
    )
    assert result.backup_id == started["backup_id"]
    assert await _backup_rows(activity_deps) == [(workflow_id, "completed")]  # one row, none left queued


@pytest.mark.usefixtures("worker")
async def test_a_backup_requested_as_the_scheduled_run_of_that_second_starts_is_409_and_that_run(
    client: httpx.AsyncClient,
    temporal_client: Client,
    seeded: Seeded,
    activity_deps: ActivityDeps,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The schedule's run of this second exists in Temporal but has not yet made its row (a start delay holds
    it): the request's row becomes that run's, so there is one backup and nothing stuck in `queued`."""
    workflow_id = _fixed_backup_id(monkeypatch)
    scheduled = await temporal_client.start_workflow(
        "BackupWorkflow",
        BackupInput(),
        id=workflow_id,
        task_queue=task_queues(settings.temporal).backups,
        start_delay=timedelta(seconds=2),
        result_type=BackupResult,
    )
    response = await client.post("/api/v1/admin/backups", headers={"Authorization": f"Bearer {seeded.admin.token}"})

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert "was started by the schedule this very second and is running" in error["message"]
    result = await scheduled.result(rpc_timeout=timedelta(seconds=60))
    assert result.backup_id == error["details"]["backup_id"]
    assert await _backup_rows(activity_deps) == [(workflow_id, "completed")]
