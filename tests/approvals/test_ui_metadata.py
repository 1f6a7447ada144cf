"""What an operator reads in the Temporal UI, read back through the client from the real dev server: an approval's
static summary and details (set when the API starts it), its current details as the decisions move it, the
summaries of its activities, and the summary a schedule gives each run it starts."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus, WorkflowHandle
from temporalio.converter import DataConverter

from core.engine import WorkflowEngine
from core.settings import BackupSettings, Settings
from domain.backups.schedules import backup_schedules
from tests.approvals.conftest import ended_status, submitted_expense
from tests.conftest import MakeUser
from workflows.contracts import AMOUNT_CENTS, BACKUP_SCHEDULE_ID, CURRENT_APPROVER, ENTRY_ID, ENTRY_KIND

SINCE = r"since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"


async def current_details(handle: WorkflowHandle) -> str:
    """The workflow's current details, as the UI reads them (the SDK's built-in metadata query)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_an_approval_reads_like_a_ledger_line_in_the_temporal_ui(
    client: httpx.AsyncClient, worker: None, make_user: MakeUser, temporal_client: Client
) -> None:
    admin = await make_user("admin", full_name="Ada Admin")
    manager = await make_user("manager", manager=admin, full_name="Jane Doe")
    employee = await make_user("employee", manager=manager, full_name="Eve Employee", email="eve@example.com")
    entry = await submitted_expense(client, employee, "15000.00")  # above the manager's limit: two levels
    handle = temporal_client.get_workflow_handle(entry["workflow_id"])

    described = await handle.describe()
    assert await described.static_summary() == (
        f"Expense #{entry['id']}, 15000.00 USD, travel, requested by Eve Employee"
    )
    details = await described.static_details()
    assert details is not None
    assert "Level 1 of 2: Jane Doe (manager, up to 10000.00)" in details
    assert "Level 2 of 2: Ada Admin (admin, " in details
    assert f"/api/v1/expenses/{entry['id']}" in details
    assert "eve@example.com" not in details + str(await described.static_summary())  # names, never addresses
    # The search attributes stay as they were: ids and amounts, no names.
    attributes = described.typed_search_attributes
    assert attributes.get(ENTRY_KIND) == "expense" and attributes.get(ENTRY_ID) == str(entry["id"])
    assert attributes.get(CURRENT_APPROVER) == str(manager.id) and attributes.get(AMOUNT_CENTS) == 1_500_000

    assert re.fullmatch(
        rf"Waiting on Jane Doe \(manager, level 1 of 2\) {SINCE}\n\nReminder due .+\n\nEscalates .+",
        await current_details(handle),
    )

    url = f"/api/v1/expenses/{entry['id']}"
    first = await client.post(f"{url}/approve", json={}, headers=manager.headers)
    assert first.status_code == 200, first.text
    assert re.match(rf"Waiting on Ada Admin \(admin, level 2 of 2\) {SINCE}", await current_details(handle))

    second = await client.post(f"{url}/approve", json={}, headers=admin.headers)
    assert second.status_code == 200, second.text
    assert await ended_status(temporal_client, handle.id) == WorkflowExecutionStatus.COMPLETED
    assert re.fullmatch(r"Approved at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", await current_details(handle))

    # Each transition in the timeline says what it did (local activities: their markers carry the summary).
    converter = DataConverter.default.payload_converter
    summaries = [
        converter.from_payload(event.user_metadata.summary, str)
        for event in (await handle.fetch_history()).events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and event.user_metadata.HasField("summary")
    ]
    assert "announce the first step" in summaries
    assert f"record approve by user {manager.id} on step" in " ".join(summaries)


async def test_a_schedule_gives_each_run_a_summary(temporal_client: Client, settings: Settings) -> None:
    engine = WorkflowEngine(settings.temporal, temporal_client)
    schedules = backup_schedules(BackupSettings(daily_cron="0 2 * * *", timezone="UTC"), engine.queues.backups)
    backup = schedules[BACKUP_SCHEDULE_ID]
    schedule_id = f"ui-metadata-{BACKUP_SCHEDULE_ID}"
    await engine.put_schedule(schedule_id, replace(backup, paused=True))
    try:
        action = (await temporal_client.get_schedule_handle(schedule_id).describe()).schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        converter = DataConverter.default.payload_converter
        summary, details = action.static_summary, action.static_details
        assert isinstance(summary, Payload) and isinstance(details, Payload)  # as described: still encoded
        assert converter.from_payload(summary, str) == "Database backup, daily schedule, 0 2 * * * (UTC)"
        assert "pg_dump" in converter.from_payload(details, str)
    finally:
        await engine.delete_schedule(schedule_id)
