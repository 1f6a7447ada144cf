"""Presigned uploads never completed (moto's S3 over HTTP, the project's workers on queues of their own): the
attachments upkeep removes those older than their grace, row and object, each audited, and so frees their place on
the entry; a recent one and a stored one stay. A completion and the removal exclude each other (the row's lock): the
one that comes second finds the other's result, and a completion after the removal answers 404. The worker puts the
`attachments-upkeep` schedule in place, and a run it starts does the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.service import RPCError

from activities.deps import ActivityDeps
from core.settings import (
    AttachmentSettings,
    BackupSettings,
    BudgetSettings,
    FxSettings,
    ReportSettings,
    Settings,
    TemporalSettings,
)
from core.storage import S3Storage
from core.temporal import task_queues
from domain.attachments import service, upkeep
from domain.audit.service import AuditContext
from domain.models import AuditLog
from domain.reports.schedules import RETENTION_SCHEDULE_ID
from domain.users.caller import load_user
from tests.approvals.conftest import Team, audit_count, create_expense, eventually
from tests.attachments.conftest import (
    PDF,
    PNG,
    attachment_rows,
    complete_upload,
    own_stack,
    receipts_bucket,
    send_upload,
    start_upload,
)
from worker import reconcile_schedules
from workflows.attachments import AttachmentUpkeepWorkflow
from workflows.contracts import ATTACHMENT_UPKEEP_SCHEDULE_ID, AttachmentUpkeepInput, AttachmentUpkeepSummary

PER_ENTRY = 4


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Settings  # as the stack's API and workers have them
    store: S3Storage


@pytest.fixture
async def stack(settings: Settings, temporal_client: Client, team: Team) -> AsyncIterator[Stack]:
    with receipts_bucket() as storage:
        changes: dict[str, Any] = {
            "storage": storage,
            "attachments": AttachmentSettings(max_bytes=1024, max_per_entry=PER_ENTRY),
            "temporal": TemporalSettings(task_queue_prefix=f"abandoned-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
        }
        async with own_stack(settings, temporal_client, **changes) as http:
            yield Stack(http, settings.model_copy(update=changes), S3Storage(storage))


def _grace(stack: Stack) -> int:
    return stack.settings.attachments.grace_seconds


async def _pending(stack: Stack, team: Team, entry_id: int, filename: str, content: bytes | None) -> dict[str, Any]:
    """A presigned upload started (and its file sent to the store when `content` is given), never completed."""
    started = await start_upload(stack.api, team.employee, entry_id, filename, len(content or PDF))
    assert started.status_code == 201, started.text
    ticket: dict[str, Any] = started.json()
    if content is not None:
        assert (await send_upload(ticket, content)).status_code in (200, 201, 204)
        assert stack.store.exists(ticket["fields"]["key"])
    return ticket


async def _started_ago(deps: ActivityDeps, ticket: dict[str, Any], seconds: int) -> None:
    """As if the upload had been started `seconds` ago (by the database's clock, which the upkeep reads)."""
    async with deps.db.transaction() as tx:
        await tx.sql.run(
            "UPDATE attachments SET created_at = now() - make_interval(secs => %s) WHERE id = %s",
            (seconds, ticket["attachment"]["id"]),
        )


async def _upkeep(temporal_client: Client, stack: Stack, grace: int | None = None) -> AttachmentUpkeepSummary:
    result: AttachmentUpkeepSummary = await temporal_client.execute_workflow(
        AttachmentUpkeepWorkflow.run,
        AttachmentUpkeepInput(grace_seconds=_grace(stack) if grace is None else grace),
        id=f"attachments-upkeep-test-{uuid.uuid4().hex[:8]}",
        task_queue=task_queues(stack.settings.temporal).reports,
    )
    return result


async def _abandoned_trail(deps: ActivityDeps) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with deps.db.transaction() as tx:
        rows = await tx.session.scalars(
            select(AuditLog).where(AuditLog.action == "attachment.abandoned").order_by(AuditLog.id)
        )
        return [(row.resource_type, row.resource_id, row.changes) for row in rows]


async def test_an_abandoned_upload_is_removed_with_its_object_and_frees_its_place(
    stack: Stack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    entry = await create_expense(stack.api, team.employee)
    grace = _grace(stack)
    sent = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)  # sent to the store, never completed
    never_sent = await _pending(stack, team, entry["id"], "hotel.pdf", None)  # not even sent
    recent = await _pending(stack, team, entry["id"], "lunch.pdf", PDF)  # still within its grace
    kept = await _pending(stack, team, entry["id"], "train.png", PNG)
    completed = await complete_upload(stack.api, team.employee, kept)
    assert completed.status_code == 200, completed.text
    full = await start_upload(stack.api, team.employee, entry["id"], "more.pdf", len(PDF))
    assert full.status_code == 409  # four of four: pending uploads hold their places
    for ticket in (sent, never_sent, kept):
        await _started_ago(activity_deps, ticket, grace + 5)
    await _started_ago(activity_deps, recent, grace - 120)

    summary = await _upkeep(temporal_client, stack)

    abandoned = sorted([sent["attachment"]["id"], never_sent["attachment"]["id"]])
    assert sorted(summary.removed) == abandoned
    rows = {row["id"]: row["status"] for row in await attachment_rows(activity_deps, entry["id"])}
    assert rows == {recent["attachment"]["id"]: "pending", kept["attachment"]["id"]: "stored"}
    assert not stack.store.exists(sent["fields"]["key"])
    assert stack.store.exists(recent["fields"]["key"]) and stack.store.exists(kept["fields"]["key"])
    trail = await _abandoned_trail(activity_deps)
    assert [(kind, resource, changes["attachment_id"], changes["filename"]) for kind, resource, changes in trail] == [
        ("entry", str(entry["id"]), sent["attachment"]["id"], "taxi.pdf"),
        ("entry", str(entry["id"]), never_sent["attachment"]["id"], "hotel.pdf"),
    ]
    # Their places are free again; the stored receipt is still there to download.
    assert (await start_upload(stack.api, team.employee, entry["id"], "more.pdf", len(PDF))).status_code == 201
    download = await stack.api.get(completed.json()["download_url"], headers=team.employee.headers)
    assert download.status_code == 307
    # The client that comes back too late is told, and nothing comes back to life.
    late = await complete_upload(stack.api, team.employee, sent)
    assert late.status_code == 404, late.text
    assert "abandoned" in late.json()["error"]["message"]
    assert "start a new upload" in late.json()["error"]["message"]
    assert sent["attachment"]["id"] not in {row["id"] for row in await attachment_rows(activity_deps)}

    again = await _upkeep(temporal_client, stack)  # nothing left to remove: no second removal, no second audit row
    assert again.removed == []
    assert await audit_count(activity_deps, "attachment.abandoned") == 2


async def test_a_completion_holding_the_upload_wins_and_the_upkeep_leaves_it(
    stack: Stack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    """A completion under way when the upkeep comes (its row locked, stored but not yet committed): the upkeep
    leaves it, and it commits as a stored receipt with its file."""
    entry = await create_expense(stack.api, team.employee)
    ticket = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)
    await _started_ago(activity_deps, ticket, _grace(stack) + 5)
    attachment_id = ticket["attachment"]["id"]
    deps = replace(activity_deps, storage=stack.store, settings=stack.settings)
    async with deps.db.transaction() as tx:
        owner = await load_user(tx, team.employee.id)
        assert owner is not None
        completion = await service.complete_upload(
            tx, deps.authorizer, deps.storage, deps.settings.attachments, owner, entry["id"], attachment_id,
            AuditContext(actor_id=owner.id),
        )  # fmt: skip
        assert completion.row is not None and completion.row.status == "stored"
        # Meanwhile, the completion not yet committed (bounded: an upkeep that waited for the row would wait for
        # this very test).
        summary = await asyncio.wait_for(_upkeep(temporal_client, stack), 30)
        assert summary.removed == [] and summary.left == 1
    [row] = await attachment_rows(activity_deps, entry["id"])
    assert (row["id"], row["status"]) == (attachment_id, "stored")
    assert stack.store.exists(ticket["fields"]["key"])
    assert (await _upkeep(temporal_client, stack)).removed == []  # stored: never the upkeep's again
    assert await audit_count(activity_deps, "attachment.abandoned") == 0


async def test_an_upload_completed_after_the_upkeep_listed_it_is_left(
    stack: Stack, team: Team, activity_deps: ActivityDeps
) -> None:
    """The upkeep lists a page, the client completes one of its uploads, then the upkeep comes to it: it checks
    the row again under its lock and leaves the stored receipt."""
    entry = await create_expense(stack.api, team.employee)
    ticket = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)
    await _started_ago(activity_deps, ticket, _grace(stack) + 5)
    attachment_id = ticket["attachment"]["id"]
    async with activity_deps.db.transaction() as tx:
        assert await upkeep.abandoned_page(tx, _grace(stack), 0, 10) == [attachment_id]
    completed = await complete_upload(stack.api, team.employee, ticket)
    assert completed.status_code == 200, completed.text
    async with activity_deps.db.transaction() as tx:
        assert await upkeep.remove_abandoned(tx, stack.store, attachment_id, _grace(stack), AuditContext()) is None
    [row] = await attachment_rows(activity_deps, entry["id"])
    assert (row["id"], row["status"]) == (attachment_id, "stored")
    assert stack.store.exists(ticket["fields"]["key"])


async def _waiting_on_a_lock(deps: ActivityDeps) -> bool:
    async with deps.db.transaction() as tx:
        waiting = await tx.sql.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            ("%FROM attachments%FOR UPDATE%",),
        )
    return bool(waiting)


async def test_a_completion_arriving_during_the_removal_waits_and_answers_404(
    stack: Stack, team: Team, activity_deps: ActivityDeps
) -> None:
    """The upkeep holds the row (removed, its object deleted, not yet committed) when the client completes: the
    completion waits for the row, then finds it gone. Never both: no stored row, no object."""
    entry = await create_expense(stack.api, team.employee)
    ticket = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)
    await _started_ago(activity_deps, ticket, _grace(stack) + 5)
    attachment_id = ticket["attachment"]["id"]
    async with activity_deps.db.transaction() as tx:
        removed = await upkeep.remove_abandoned(
            tx, stack.store, attachment_id, _grace(stack), AuditContext(workflow_id="attachments-upkeep-test")
        )
        assert removed is not None and removed.id == attachment_id
        completing = asyncio.create_task(complete_upload(stack.api, team.employee, ticket))
        assert await eventually(lambda: _waiting_on_a_lock(activity_deps))
        assert not completing.done()
    late = await completing
    assert late.status_code == 404, late.text
    assert "abandoned" in late.json()["error"]["message"]
    assert await attachment_rows(activity_deps, entry["id"]) == []
    assert not stack.store.exists(ticket["fields"]["key"])
    assert await audit_count(activity_deps, "attachment.added", entry["id"]) == 0
    assert await audit_count(activity_deps, "attachment.abandoned", entry["id"]) == 1


async def test_two_runs_at_once_remove_each_upload_once(
    stack: Stack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    entries = [await create_expense(stack.api, team.employee) for _ in range(3)]
    tickets = []
    for entry in entries:
        for name in ("a.pdf", "b.pdf"):
            ticket = await _pending(stack, team, entry["id"], name, PDF)
            await _started_ago(activity_deps, ticket, _grace(stack) + 5)
            tickets.append(ticket)
    first, second = await asyncio.gather(_upkeep(temporal_client, stack), _upkeep(temporal_client, stack))
    removed = first.removed + second.removed
    assert sorted(removed) == sorted(ticket["attachment"]["id"] for ticket in tickets)  # each once, none twice
    assert await attachment_rows(activity_deps) == []
    assert await audit_count(activity_deps, "attachment.abandoned") == len(tickets)
    assert not any(stack.store.exists(ticket["fields"]["key"]) for ticket in tickets)


async def test_a_run_given_a_grace_shorter_than_the_link_removes_nothing(
    stack: Stack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    """Started by hand (the Temporal CLI) with too short a grace: refused, not retried, nothing removed."""
    entry = await create_expense(stack.api, team.employee)
    ticket = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)
    link = stack.settings.attachments.upload_link_seconds
    await _started_ago(activity_deps, ticket, link - 30)  # its link still works
    with pytest.raises(WorkflowFailureError) as failure:
        await _upkeep(temporal_client, stack, grace=link - 60)
    assert "link still works" in str(failure.value.cause.cause)  # type: ignore[union-attr]
    assert [row["status"] for row in await attachment_rows(activity_deps, entry["id"])] == ["pending"]
    assert stack.store.exists(ticket["fields"]["key"])


def test_the_grace_defaults_beyond_the_link_and_may_not_be_shorter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("ATTACHMENT_UPLOAD_LINK_SECONDS", "ATTACHMENT_PENDING_GRACE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    assert AttachmentSettings().grace_seconds == 900 + 900
    monkeypatch.setenv("ATTACHMENT_UPLOAD_LINK_SECONDS", "3600")
    assert AttachmentSettings().grace_seconds == 3600 + 900  # follows the link's lifetime when unset
    monkeypatch.setenv("ATTACHMENT_PENDING_GRACE_SECONDS", "3600")
    with pytest.raises(ValidationError, match="ATTACHMENT_PENDING_GRACE_SECONDS"):
        AttachmentSettings()
    monkeypatch.setenv("ATTACHMENT_PENDING_GRACE_SECONDS", "3660")
    assert AttachmentSettings().grace_seconds == 3660


def _only_attachments(settings: Settings, attachments: AttachmentSettings) -> Settings:
    # No default report schedules, backups, rate import or budget upkeep: their own tests have them (the report
    # retention comes along anyway).
    return settings.model_copy(
        update={
            "attachments": attachments,
            "reports": ReportSettings(default_schedules=False),
            "backups": BackupSettings(schedules_enabled=False),
            "fx": FxSettings(schedule_enabled=False),
            "budgets": BudgetSettings(upkeep_enabled=False),
        }
    )


async def test_the_worker_schedules_the_upkeep_and_its_runs_remove_abandoned_uploads(
    stack: Stack, team: Team, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    entry = await create_expense(stack.api, team.employee)
    ticket = await _pending(stack, team, entry["id"], "taxi.pdf", PDF)
    await _started_ago(activity_deps, ticket, _grace(stack) + 5)
    attachments = stack.settings.attachments
    deps = replace(activity_deps, settings=_only_attachments(stack.settings, attachments))
    handle = temporal_client.get_schedule_handle(ATTACHMENT_UPKEEP_SCHEDULE_ID)
    try:
        assert await reconcile_schedules(temporal_client, deps) == [
            RETENTION_SCHEDULE_ID,
            ATTACHMENT_UPKEEP_SCHEDULE_ID,
        ]
        assert await reconcile_schedules(temporal_client, deps) == [
            RETENTION_SCHEDULE_ID,
            ATTACHMENT_UPKEEP_SCHEDULE_ID,
        ]
        described = await handle.describe()
        first, second = described.info.next_action_times[:2]
        assert (first.minute, first.second, second - first) == (0, 0, timedelta(hours=1))  # hourly, on the hour
        assert described.schedule.spec.time_zone_name == "UTC"
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (
            "AttachmentUpkeepWorkflow",
            task_queues(stack.settings.temporal).reports,
        )

        await handle.trigger()  # a run now, as the hour would start it
        assert await eventually(lambda: _no_rows(activity_deps, entry["id"]), seconds=30)
        assert not stack.store.exists(ticket["fields"]["key"])
        assert await audit_count(activity_deps, "attachment.abandoned", entry["id"]) == 1

        off = replace(deps, settings=_only_attachments(stack.settings, AttachmentSettings(upkeep_enabled=False)))
        assert await reconcile_schedules(temporal_client, off) == [RETENTION_SCHEDULE_ID]
    finally:
        for schedule_id in (ATTACHMENT_UPKEEP_SCHEDULE_ID, RETENTION_SCHEDULE_ID):
            try:
                await temporal_client.get_schedule_handle(schedule_id).delete()
            except RPCError:
                pass
        await _runs_ended(temporal_client, task_queues(stack.settings.temporal).reports)


async def _no_rows(deps: ActivityDeps, entry_id: int) -> bool:
    return await attachment_rows(deps, entry_id) == []


async def _runs_ended(client: Client, task_queue: str) -> None:
    """The triggered run ends before the stack's workers stop (the tables are emptied after each test)."""
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for run in client.list_workflows(query):
        await client.get_workflow_handle(run.id, run_id=run.run_id).result()
