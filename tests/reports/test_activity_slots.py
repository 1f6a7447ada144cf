"""A worker process runs at most WORKER_REPORTS_ACTIVITY_SLOTS of the reports queue's activities at once; the rest
wait in Temporal's queue (a storm of renders must not take every database connection and the CPU at once), where
the renders go after the queue's quicker work (a report-ready email does not wait for every render)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from core.settings import DatabaseSettings, Environment, Settings, SmtpSettings, StorageSettings, TemporalSettings
from worker import build_deps, build_workers, worker_plan
from workflows.contracts import SEND_EMAIL, EmailJob, GeneratedReport, ReportActivity, ReportJob, ReportNotice
from workflows.report import ReportWorkflow


class Occupancy:
    """How many probe activities run at this moment, and the most that ever did."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0


OCCUPANCY = Occupancy()


@activity.defn(name="slot_probe_occupy")
async def occupy() -> None:
    OCCUPANCY.now += 1
    OCCUPANCY.most = max(OCCUPANCY.most, OCCUPANCY.now)
    try:
        await asyncio.sleep(0.3)
    finally:
        OCCUPANCY.now -= 1


@workflow.defn(sandboxed=False)
class SlotProbe:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(occupy, start_to_close_timeout=timedelta(seconds=30))


def _settings(tmp_path: Path) -> Settings:
    """Read from the environment as the worker reads it; nothing here connects to the database."""
    return Settings(
        environment=Environment.TEST,
        db=DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/unused"),
        temporal=TemporalSettings(task_queue_prefix=f"slots-{uuid.uuid4().hex[:8]}"),
        storage=StorageSettings(bucket="", local_dir=tmp_path / "storage"),
        smtp=SmtpSettings(host="", mail_dir=tmp_path / "mail"),
    )


async def test_the_reports_worker_runs_no_more_activities_at_once_than_its_slots(
    temporal_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_REPORTS_ACTIVITY_SLOTS", "2")
    deps = build_deps(_settings(tmp_path))
    (reports,) = worker_plan(deps, ["reports"])
    reports.workflows.append(SlotProbe)
    reports.activities.append(occupy)
    workers = build_workers(temporal_client, [reports])
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        handles = [
            await temporal_client.start_workflow(
                SlotProbe.run, id=f"slot-probe-{uuid.uuid4()}", task_queue=reports.task_queue
            )
            for _ in range(6)
        ]
        await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), timeout=60)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*running, return_exceptions=True)
        await deps.db.dispose()
    assert OCCUPANCY.most == 2  # six were queued together: two ran at a time, and every one of them ran


def test_the_slots_default_to_a_few_and_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WORKER_REPORTS_ACTIVITY_SLOTS", raising=False)
    assert TemporalSettings().worker_reports_activity_slots == 4
    (approvals,) = worker_plan(build_deps(_settings(tmp_path)), ["approvals"])
    assert approvals.max_concurrent_activities is None  # the decisions' queue keeps the SDK's default
    for refused in ("0", "33", "many"):
        monkeypatch.setenv("WORKER_REPORTS_ACTIVITY_SLOTS", refused)
        with pytest.raises(ValidationError, match="WORKER_REPORTS_ACTIVITY_SLOTS"):
            TemporalSettings()


STARTS: list[str] = []


@activity.defn(name=ReportActivity.GENERATE)
async def render_stand_in(report_id: str) -> GeneratedReport:
    STARTS.append(f"render {report_id}")
    await asyncio.sleep(0.3)
    return GeneratedReport(report_id=report_id, status="completed", rows=1, title="Ledger", period="2026-11")


@activity.defn(name=ReportActivity.NOTIFY_REQUESTER)
async def notify_stand_in(notice: ReportNotice) -> None:
    STARTS.append(f"notify {notice.report.report_id}")


@activity.defn(name=SEND_EMAIL)
async def email_stand_in(job: EmailJob) -> None:
    STARTS.append(f"email {job.message_key.removeprefix('report-ready-')}")


async def test_a_report_ready_email_does_not_wait_for_every_render_queued_before_it(temporal_client: Client) -> None:
    """Six reports requested at once on one slot: in the order they were queued, every render would run before the
    first report's email. The renders go at a lower priority (workflows/contracts.py BULK_PRIORITY), so the first
    report's email takes a slot while renders are still waiting."""
    task_queue = f"priority-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[ReportWorkflow],
        activities=[render_stand_in, notify_stand_in, email_stand_in],
        max_concurrent_activities=1,
    )
    async with worker:
        handles = [
            await temporal_client.start_workflow(
                ReportWorkflow.run,
                ReportJob(report_id=str(n), requested_by_id=1),
                id=f"report-prio-{uuid.uuid4()}",
                task_queue=task_queue,
            )  # fmt: skip
            for n in range(6)
        ]
        await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), timeout=60)
    renders = [n for n, start in enumerate(STARTS) if start.startswith("render")]
    assert len(renders) == 6
    assert STARTS.index("email 0") < renders[-1], STARTS
