"""Every process reloads a changed policy by itself (each API process, the worker); the change is audited once,
by whichever applied it first, naming the old and new versions. The database enforces it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from activities.deps import ActivityDeps
from core.authz import Authorizer
from core.db import Database
from core.settings import PROJECT_ROOT
from domain.audit.service import SYSTEM
from domain.models import AuditLog, PolicyVersion
from domain.policies.versions import record_applied, record_at_start, watch_policy_files
from tests.policy_preview.conftest import (
    shipped_policy,
    with_line_inserted,
    with_manager_limit,
    without_budget_creation,
)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", copy)
    return copy


async def _policy_audit(db: Database) -> list[tuple[str, dict]]:
    async with db.transaction() as tx:
        rows = (
            await tx.session.scalars(select(AuditLog).where(AuditLog.resource_type == "policy").order_by(AuditLog.id))
        ).all()
        return [(row.action, row.changes) for row in rows]


async def _versions(db: Database) -> list[tuple[int, str, str | None]]:
    async with db.transaction() as tx:
        rows = (await tx.session.scalars(select(PolicyVersion).order_by(PolicyVersion.position))).all()
        return [(row.position, row.version, row.previous_version) for row in rows]


@contextlib.asynccontextmanager
async def _watching(*watchers: tuple[Authorizer, str], db: Database) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(watch_policy_files(authorizer, db, applied_by=name, interval_seconds=0.02))
        for authorizer, name in watchers
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.02)


async def test_two_reloaders_watching_concurrently_audit_each_change_once(
    policy_dir: Path, activity_deps: ActivityDeps
) -> None:
    db = activity_deps.db
    api, worker = Authorizer(policy_dir), Authorizer(policy_dir)
    policy = policy_dir / "policy.csv"
    versions = [api.version]
    async with _watching((api, "api"), (worker, "worker"), db=db):
        # Three changes, the last one back to the first version: each is a change of its own.
        for text in (without_budget_creation(), with_manager_limit("1000.00"), shipped_policy()):
            policy.write_text(text)
            expected = len(versions)

            async def both_applied_and_recorded(expected: int = expected) -> bool:
                return api.version == worker.version != versions[-1] and len(await _versions(db)) == expected

            await _until(both_applied_and_recorded)
            versions.append(api.version)
        await asyncio.sleep(0.2)  # time for a second row, if either process were to write one

    assert versions[0] == versions[-1] and len(set(versions)) == 3
    changes = [changes for action, changes in await _policy_audit(db) if action == "policy.changed"]
    assert [(change["from_version"], change["to_version"]) for change in changes] == list(
        zip(versions, versions[1:], strict=False)
    )
    assert {change["applied_by"] for change in changes} <= {"api", "worker"}
    assert await _versions(db) == [(n, versions[n], versions[n - 1]) for n in (1, 2, 3)]


async def test_the_database_lets_only_the_first_of_two_concurrent_reloaders_record_a_change(
    policy_dir: Path, activity_deps: ActivityDeps
) -> None:
    """The race itself: the second process inserts while the first has not committed; the unique position makes it
    wait, then do nothing."""
    db = activity_deps.db
    api, worker = Authorizer(policy_dir), Authorizer(policy_dir)
    (policy_dir / "policy.csv").write_text(without_budget_creation())
    api_result, worker_result = api.reload(), worker.reload()
    assert api_result.changed and worker_result.changed and api_result.version == worker_result.version

    async with db.transaction() as first:
        assert await record_applied(first.sql, api_result, SYSTEM, "api")

        async def second() -> bool:
            async with db.transaction() as tx:
                return await record_applied(tx.sql, worker_result, SYSTEM, "worker")

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not racing.done(), "the second insert waits on the first one's uncommitted position"
        await first.commit()
    assert await racing is False

    changes = [changes for action, changes in await _policy_audit(db) if action == "policy.changed"]
    assert changes == [{"from_version": api_result.previous, "to_version": api_result.version, "applied_by": "api"}]


async def test_a_broken_file_refused_by_both_reloaders_is_audited_once(
    policy_dir: Path, activity_deps: ActivityDeps
) -> None:
    db = activity_deps.db
    api, worker = Authorizer(policy_dir), Authorizer(policy_dir)
    version = api.version
    broken, line = with_line_inserted("p, pirate, treasure, read, *\n")
    async with _watching((api, "api"), (worker, "worker"), db=db):
        (policy_dir / "policy.csv").write_text(broken)

        async def refused() -> bool:
            return any(action == "policy.reload_refused" for action, _ in await _policy_audit(db))

        await _until(refused)
        await asyncio.sleep(0.3)  # both have polled the file several times by now

    [(action, changes)] = await _policy_audit(db)
    assert action == "policy.reload_refused" and changes["version_in_force"] == version
    assert f"policy.csv line {line}: unknown role 'pirate'" in changes["error"]
    assert api.version == worker.version == version, "the policy in force stays"


async def test_a_change_made_while_the_processes_were_down_is_audited_once_at_their_start(
    policy_dir: Path, activity_deps: ActivityDeps
) -> None:
    db = activity_deps.db
    running = Authorizer(policy_dir)
    before = running.version
    assert not await record_at_start(db, running, "api"), "nothing recorded yet, nothing changed: no row"
    (policy_dir / "policy.csv").write_text(with_manager_limit("1000.00"))
    async with db.transaction() as tx:  # a change applied (and recorded) while running
        assert await record_applied(tx.sql, running.reload(), SYSTEM, "api")

    (policy_dir / "policy.csv").write_text(without_budget_creation())  # edited while everything is down
    api, worker = Authorizer(policy_dir), Authorizer(policy_dir)  # both start with the new file
    started = await asyncio.gather(record_at_start(db, api, "api"), record_at_start(db, worker, "worker"))

    assert sorted(started) == [False, True]
    changes = [changes for action, changes in await _policy_audit(db) if action == "policy.changed"]
    assert [(change["from_version"], change["to_version"]) for change in changes] == [
        (before, running.version),
        (running.version, api.version),
    ]
    assert changes[-1]["applied_by"] in {"api (at start)", "worker (at start)"}
