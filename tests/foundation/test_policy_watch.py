"""Ops edit policies/policy.csv while the API runs: the change is picked up, audited, and a broken edit refused."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from pathlib import Path

from sqlalchemy import select

from api.deps import AppServices
from core.authz import Authorizer
from core.settings import Settings
from domain.models import AuditLog
from domain.policies.versions import watch_policy_files


async def _audited_actions(services: AppServices) -> list[tuple[str, dict]]:
    async with services.db.transaction() as tx:
        rows = (await tx.session.scalars(select(AuditLog).where(AuditLog.resource_type == "policy"))).all()
        return [(row.action, row.changes) for row in rows]


async def _until(predicate, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_file_edits_reload_and_are_audited(
    tmp_path: Path, settings: Settings, app_services: AppServices, database_url: str
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(settings.policy_dir, policies)
    services = dataclasses.replace(app_services, authorizer=Authorizer(policies))
    assert not services.authorizer.allows("employee", "audit", "read")
    first_version = services.authorizer.version

    watcher = asyncio.create_task(
        watch_policy_files(services.authorizer, services.db, applied_by="api", interval_seconds=0.05)
    )
    try:
        with (policies / "policy.csv").open("a") as handle:
            handle.write("\np, employee, audit, read, *\n")

        async def granted() -> bool:
            return services.authorizer.allows("employee", "audit", "read")

        await _until(granted)

        good_version = services.authorizer.version
        (policies / "policy.csv").write_text((policies / "policy.csv").read_text() + "\np, intern, entry, create\n")

        async def refused() -> bool:
            return any(action == "policy.reload_refused" for action, _ in await _audited_actions(services))

        await _until(refused)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    assert services.authorizer.version == good_version, "a broken file must leave the good policy in force"
    assert services.authorizer.allows("employee", "audit", "read")
    actions = await _audited_actions(services)
    assert (
        "policy.changed",
        {"from_version": first_version, "to_version": good_version, "applied_by": "api"},
    ) in actions
