"""Report schedules over Temporal Schedules: CRUD, pause/resume, trigger now delivering mail, defaults, retention."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from core.settings import AttachmentSettings, BackupSettings, BudgetSettings, FxSettings, Settings
from core.storage import ObjectStorage
from domain.models import AuditLog, Report, ReportSchedule, User
from domain.reports.schedules import RETENTION_SCHEDULE_ID, period_for
from tests.reports.conftest import KnownData
from tests.reports.readback import csv_table
from tests.reports.test_formats import generate
from tests.services import SmtpSink
from worker import reconcile_schedules
from workflows.contracts import ReportRetentionInput, ScheduledReportInput

SCHEDULE = {
    "name": "Quarterly numbers",
    "type": "pnl",
    "format": "csv",
    "cron": "0 6 1 * *",
    "timezone": "Europe/Berlin",
    "period": "previous_month",
    "recipients": ["finance@example.com", "ceo@example.com"],
}


async def _mail_to(smtp: SmtpSink, address: str, seconds: float = 60) -> object:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        for message in list(smtp.messages):
            if address in str(message["To"]):
                return message
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mail to {address}")


async def test_a_schedule_triggered_now_mails_the_report(
    api: httpx.AsyncClient, known: KnownData, smtp: SmtpSink, temporal_client: Client
) -> None:
    smtp.clear()
    created = await api.post("/api/v1/reports/schedules", json=SCHEDULE, headers=known.admin.headers)
    assert created.status_code == 201, created.text
    schedule = created.json()
    key = schedule["schedule_id"]
    try:
        assert schedule["next_runs"], "Temporal computed the next runs"
        first = datetime.fromisoformat(schedule["next_runs"][0].replace("Z", "+00:00"))
        berlin = first.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        assert (berlin.day, berlin.hour, berlin.minute) == (1, 6, 0)
        description = await temporal_client.get_schedule_handle(key).describe()
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert description.schedule.spec.time_zone_name == "Europe/Berlin"
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "ScheduledReportWorkflow"

        triggered = await api.post(f"/api/v1/reports/schedules/{schedule['id']}/trigger", headers=known.admin.headers)
        assert triggered.status_code == 202, triggered.text
        message = await _mail_to(smtp, "finance@example.com")
        assert "ceo@example.com" in str(message["To"]) or await _mail_to(smtp, "ceo@example.com")
        assert "Quarterly numbers" in str(message["Subject"])  # type: ignore[index]
        attachments = list(message.iter_attachments())  # type: ignore[attr-defined]
        start, end = period_for("previous_month", datetime.now(UTC), "Europe/Berlin")
        assert [a.get_filename() for a in attachments] == [f"pnl_{start}_{end}.csv"]
        content = attachments[0].get_content()
        text = content.decode() if isinstance(content, bytes) else content
        assert text.splitlines()[0] == "Month,Revenue,Expenses,Net"
        # the main table's last row (the By currency section follows it); the known entries are in 2024
        assert csv_table(text.encode())[1][-1] == ["Total", "0.00", "0.00", "0.00"]

        services = api._transport.app.state.services  # type: ignore[attr-defined]
        async with services.db.transaction() as tx:
            report = await tx.session.scalar(select(Report).where(Report.schedule_id == schedule["id"]))
        assert report is not None and report.status == "completed" and report.requested_by_id is None
        admin_list = (await api.get("/api/v1/reports", headers=known.admin.headers)).json()
        assert str(report.id) in [item["id"] for item in admin_list["items"]]

        paused = await api.post(f"/api/v1/reports/schedules/{schedule['id']}/pause", headers=known.admin.headers)
        assert paused.status_code == 200 and paused.json()["paused"] is True
        assert (await temporal_client.get_schedule_handle(key).describe()).schedule.state.paused
        resumed = await api.post(f"/api/v1/reports/schedules/{schedule['id']}/resume", headers=known.admin.headers)
        assert resumed.json()["paused"] is False
        assert not (await temporal_client.get_schedule_handle(key).describe()).schedule.state.paused

        changed = await api.patch(
            f"/api/v1/reports/schedules/{schedule['id']}",
            json={"cron": "30 7 * * 1", "format": "xlsx"},
            headers=known.admin.headers,
        )
        assert changed.status_code == 200, changed.text
        described = await temporal_client.get_schedule_handle(key).describe()
        args = described.schedule.action.args  # type: ignore[attr-defined]
        decoded = await temporal_client.data_converter.decode(args, [ScheduledReportInput])
        assert decoded[0].format == "xlsx" and decoded[0].recipients == SCHEDULE["recipients"]
        listed = (await api.get("/api/v1/reports/schedules", headers=known.admin.headers)).json()
        assert [(s["name"], s["cron"], s["format"]) for s in listed] == [("Quarterly numbers", "30 7 * * 1", "xlsx")]
    finally:
        deleted = await api.delete(f"/api/v1/reports/schedules/{schedule['id']}", headers=known.admin.headers)
    assert deleted.status_code == 204
    try:
        await temporal_client.get_schedule_handle(key).describe()
        raise AssertionError("the Temporal schedule still exists")
    except RPCError:
        pass
    async with services.db.transaction() as tx:
        actions = list(
            await tx.session.scalars(
                select(AuditLog.action).where(AuditLog.resource_type == "report_schedule").order_by(AuditLog.id)
            )
        )
    assert actions == [
        "report_schedule.created",
        "report_schedule.triggered",
        "report_schedule.paused",
        "report_schedule.resumed",
        "report_schedule.updated",
        "report_schedule.deleted",
    ]


async def test_bad_schedules_are_422(api: httpx.AsyncClient, known: KnownData) -> None:
    bad = [
        {**SCHEDULE, "recipients": ["someone@elsewhere.org"]},  # outside the organisation
        {**SCHEDULE, "timezone": "Mars/Olympus"},
        {**SCHEDULE, "cron": "every day"},
        {**SCHEDULE, "cron": "99 99 * * *"},  # five fields, but Temporal refuses it
        {**SCHEDULE, "type": "unknown"},
        {**SCHEDULE, "period": "next_decade"},
        {**SCHEDULE, "surprise": True},
    ]
    for body in bad:
        response = await api.post("/api/v1/reports/schedules", json=body, headers=known.admin.headers)
        assert response.status_code == 422, (body, response.text)
    outside = await api.post(
        "/api/v1/reports/schedules", json={**SCHEDULE, "recipients": ["x@elsewhere.org"]}, headers=known.admin.headers
    )
    assert outside.json()["error"]["details"]["outside"] == ["x@elsewhere.org"]
    listed = await api.get("/api/v1/reports/schedules", headers=known.admin.headers)
    assert listed.json() == []  # nothing half-created


async def test_default_schedules_are_created_and_reconciled(
    reports_deps: ActivityDeps, temporal_client: Client, known: KnownData
) -> None:
    key = "report-schedule-monthly-pnl"
    # The worker's start-up, without the backup schedules (tests/backups/test_schedules.py has those) and the rate
    # import (tests/fx/test_import.py).
    settings = reports_deps.settings.model_copy(
        update={
            "backups": BackupSettings(schedules_enabled=False),
            "fx": FxSettings(schedule_enabled=False),
            "budgets": BudgetSettings(upkeep_enabled=False),
            "attachments": AttachmentSettings(upkeep_enabled=False),
        }
    )
    deps = dataclasses.replace(reports_deps, settings=settings)
    try:
        first = await reconcile_schedules(temporal_client, deps)
        second = await reconcile_schedules(temporal_client, deps)  # a restart: no error, no duplicate
        assert first == second == [key, RETENTION_SCHEDULE_ID]
        async with reports_deps.db.transaction() as tx:
            rows = list(await tx.session.scalars(select(ReportSchedule)))
        assert [(r.schedule_key, r.type, r.cron, r.timezone) for r in rows] == [(key, "pnl", "0 6 1 * *", "UTC")]
        description = await temporal_client.get_schedule_handle(key).describe()
        next_run = description.info.next_action_times[0]
        assert (next_run.day, next_run.hour, next_run.minute) == (1, 6, 0)
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        # A schedule lost by Temporal (a dev server restarted) comes back from its record; a paused one stays paused.
        async with reports_deps.db.transaction() as tx:
            await tx.session.execute(update(ReportSchedule).values(paused=True))
        await temporal_client.get_schedule_handle(key).delete()
        await reconcile_schedules(temporal_client, deps)
        assert (await temporal_client.get_schedule_handle(key).describe()).schedule.state.paused
    finally:
        for schedule_id in (key, RETENTION_SCHEDULE_ID):
            try:
                await temporal_client.get_schedule_handle(schedule_id).delete()
            except RPCError:
                pass


async def test_retention_prunes_old_report_files(known: KnownData, reports_deps: ActivityDeps) -> None:
    old, _, old_path = await generate(reports_deps, known.admin.id, "pnl", "csv")
    new, _, new_path = await generate(reports_deps, known.admin.id, "pnl", "json")
    async with reports_deps.db.transaction() as tx:
        await tx.session.execute(
            update(Report).where(Report.id == old.id).values(created_at=datetime.now(UTC) - timedelta(days=91))
        )
    result = await ActivityEnvironment().run(
        ReportActivities(reports_deps).prune_reports, ReportRetentionInput(retention_days=90)
    )
    assert result.pruned == 1
    assert not old_path.exists() and new_path.exists()
    async with reports_deps.db.transaction() as tx:
        statuses = dict((await tx.session.execute(select(Report.id, Report.status))).all())
        pruned_rows = await tx.session.scalar(select(func.count()).where(AuditLog.action == "report.pruned"))
    assert statuses == {old.id: "expired", new.id: "completed"}
    assert pruned_rows == 1
    again = await ActivityEnvironment().run(ReportActivities(reports_deps).prune_reports, ReportRetentionInput())
    assert again.pruned == 0
    assert uuid.UUID(str(new.id))


async def _inactive_user(api: httpx.AsyncClient, email: str) -> None:
    services = api._transport.app.state.services  # type: ignore[attr-defined]
    async with services.db.transaction() as tx:
        user = User(
            email=email,
            username=f"former-{uuid.uuid4().hex[:6]}",
            full_name="Former Partner",
            password_hash="x",
            role="employee",
            is_active=False,
        )
        tx.session.add(user)


async def test_without_configured_domains_recipients_must_share_an_active_users_domain(
    api: httpx.AsyncClient, known: KnownData, reports_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORGANISATION_EMAIL_DOMAINS unset (the default): the organisation is its active users' email domains."""
    monkeypatch.setattr(reports_settings.reports, "organisation_email_domains", "")
    await _inactive_user(api, "someone@former-partner.org")
    for outsider in ("someone@elsewhere.org", "boss@former-partner.org"):  # a deactivated user's domain is out
        refused = await api.post(
            "/api/v1/reports/schedules", json={**SCHEDULE, "recipients": [outsider]}, headers=known.admin.headers
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["message"] == "recipients must be addresses of the organisation (the domains of active users)"
        assert error["details"] == {"outside": [outsider], "allowed_domains": ["example.com"]}
    assert (await api.get("/api/v1/reports/schedules", headers=known.admin.headers)).json() == []

    created = await api.post(
        "/api/v1/reports/schedules",
        json={**SCHEDULE, "recipients": ["Finance@Example.com"]},
        headers=known.admin.headers,
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    try:
        changed = await api.patch(
            f"/api/v1/reports/schedules/{schedule_id}",
            json={"recipients": ["leak@elsewhere.org"]},
            headers=known.admin.headers,
        )
        assert changed.status_code == 422, changed.text
    finally:
        await api.delete(f"/api/v1/reports/schedules/{schedule_id}", headers=known.admin.headers)


async def test_patching_a_schedule_with_null_is_422_and_changes_nothing(
    api: httpx.AsyncClient, known: KnownData, temporal_client: Client
) -> None:
    created = await api.post("/api/v1/reports/schedules", json=SCHEDULE, headers=known.admin.headers)
    assert created.status_code == 201, created.text
    schedule = created.json()
    try:
        for field in ("type", "format", "name", "cron", "timezone", "period", "recipients", "filters"):
            response = await api.patch(
                f"/api/v1/reports/schedules/{schedule['id']}", json={field: None}, headers=known.admin.headers
            )
            assert response.status_code == 422, (field, response.text)
            assert response.json()["error"]["message"] == (
                f"{field}: Value error, may not be null; leave the field out to keep its current value"
            )
        after = (await api.get(f"/api/v1/reports/schedules/{schedule['id']}", headers=known.admin.headers)).json()
        assert {k: after[k] for k in SCHEDULE} == SCHEDULE
    finally:
        await api.delete(f"/api/v1/reports/schedules/{schedule['id']}", headers=known.admin.headers)


class _DeleteFails:
    """Storage whose delete fails (an outage of the bucket or folder); everything else passes through."""

    def __init__(self, inner: ObjectStorage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def delete(self, key: str) -> None:
        raise OSError("storage unavailable")


async def test_a_report_is_expired_before_its_file_is_deleted(known: KnownData, reports_deps: ActivityDeps) -> None:
    """The pruner commits `expired` before deleting: when the delete fails the report is already not downloadable
    (never a completed report without its file), and the next run deletes the file it left."""
    old, _, old_path = await generate(reports_deps, known.admin.id, "pnl", "csv")
    async with reports_deps.db.transaction() as tx:
        await tx.session.execute(
            update(Report).where(Report.id == old.id).values(created_at=datetime.now(UTC) - timedelta(days=91))
        )
    failing = dataclasses.replace(reports_deps, storage=_DeleteFails(reports_deps.storage))
    with pytest.raises(OSError, match="storage unavailable"):
        await ActivityEnvironment().run(
            ReportActivities(failing).prune_reports, ReportRetentionInput(retention_days=90)
        )
    async with reports_deps.db.transaction() as tx:
        stuck = await tx.session.get(Report, old.id)
    assert stuck is not None and stuck.status == "expired" and old_path.exists()

    result = await ActivityEnvironment().run(
        ReportActivities(reports_deps).prune_reports, ReportRetentionInput(retention_days=90)
    )
    assert result.pruned == 1 and not old_path.exists()
    async with reports_deps.db.transaction() as tx:
        done = await tx.session.get(Report, old.id)
        audited = await tx.session.scalar(select(func.count()).where(AuditLog.action == "report.pruned"))
    assert done is not None and (done.status, done.storage_key) == ("expired", None)
    assert audited == 1  # the expiry is recorded once, by the run that made it
