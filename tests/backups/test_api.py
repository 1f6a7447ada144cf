"""The admin endpoints, end to end on the project's worker and the default local folder store."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import Settings
from domain.models import Backup
from tests.backups.conftest import Seeded
from tests.conftest import MakeUser
from workflows.contracts import BackupResult, DrillResult


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
    async with activity_deps.sessions() as session:
        failed = Backup(workflow_id="backup-failed", status="failed", error="disk full", manifest={})
        session.add(failed)
        await session.commit()
    refused = await client.post(f"/api/v1/admin/backups/{failed.id}/drill", headers=superadmin.headers)
    assert refused.status_code == 409
    assert "only a completed backup can be drilled" in refused.json()["error"]["message"]
