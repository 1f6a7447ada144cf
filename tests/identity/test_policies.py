"""Ops edit the Casbin files while the API runs: changes apply without a restart; a broken file is refused."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client

from activities.deps import ActivityDeps
from core.settings import PROJECT_ROOT, Settings
from domain.models import AuditLog
from tests.conftest import MakeUser, own_api

EMPLOYEE_READS_PROFILE = "p, employee, profile, read, *\n"


@pytest.fixture
async def policy_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", copy)
    assert EMPLOYEE_READS_PROFILE in (copy / "policy.csv").read_text()
    return copy


@pytest.fixture
async def live_client(
    settings: Settings, temporal_client: Client, policy_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An API process of its own reading the copied policy directory (and watching it, as in production)."""
    async with own_api(settings.model_copy(update={"policy_dir": policy_dir}), temporal_client) as http:
        yield http


async def _eventually_status(http: httpx.AsyncClient, path: str, headers: dict[str, str], status: int) -> None:
    for _ in range(60):  # the watcher polls every 2 seconds
        if (await http.get(path, headers=headers)).status_code == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never answered {status}")


async def test_an_edited_policy_file_applies_without_restart(
    live_client: httpx.AsyncClient, policy_dir: Path, make_user: MakeUser
) -> None:
    employee = await make_user("employee")
    assert (await live_client.get("/api/v1/users/me", headers=employee.headers)).status_code == 200
    policy = policy_dir / "policy.csv"
    policy.write_text(policy.read_text().replace(EMPLOYEE_READS_PROFILE, ""))
    await _eventually_status(live_client, "/api/v1/users/me", employee.headers, 403)


async def test_reload_endpoint_refuses_a_broken_file_and_keeps_the_old_policy(
    live_client: httpx.AsyncClient, policy_dir: Path, make_user: MakeUser, activity_deps: ActivityDeps
) -> None:
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    employee = await make_user("employee", manager=admin)
    policy = policy_dir / "policy.csv"
    original = policy.read_text()

    policy.write_text(original.replace(EMPLOYEE_READS_PROFILE, "p, pirate, treasure, read, *\n"))
    refused = await live_client.post("/api/v1/admin/policies/reload", headers=superadmin.headers)
    assert refused.status_code == 422
    assert "unknown role 'pirate'" in refused.json()["error"]["message"]
    # The policy in force is still the old one: employees read their profile, admins list users.
    assert (await live_client.get("/api/v1/users/me", headers=employee.headers)).status_code == 200
    assert (await live_client.get("/api/v1/users/", headers=admin.headers)).status_code == 200

    policy.write_text(original.replace(EMPLOYEE_READS_PROFILE, ""))
    reloaded = await live_client.post("/api/v1/admin/policies/reload", headers=superadmin.headers)
    assert reloaded.status_code == 200, reloaded.text
    assert (await live_client.get("/api/v1/users/me", headers=employee.headers)).status_code == 403

    async with activity_deps.db.transaction() as tx:
        actions = (await tx.session.scalars(select(AuditLog.action).where(AuditLog.resource_type == "policy"))).all()
    assert sorted(actions) == [
        "policy.changed",
        "policy.reload_refused",
    ]  # one each, whether the endpoint or the watcher came first
