"""Each business metric moves as a user acts: submit and decide (approvals waiting by level, decisions, emails),
request a report (runs and their duration), back up and drill (ages, a failed drill). Read as Prometheus reads
them: the API's /metrics and the worker's business endpoint, parsed by prometheus_client's parser. (The SLA timers'
counter is checked where the timers fire, on the time-skipping server: tests/approvals/test_timers.py.)"""

from __future__ import annotations

import asyncio
import math
from datetime import date, timedelta

import httpx

from activities.deps import ActivityDeps
from domain.audit.service import SYSTEM
from domain.backups import service as backups
from tests.approvals.conftest import expense_body
from tests.conftest import MakeUser
from tests.operations.conftest import Samples, scrape, value


async def _eventually(check: object, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.1)


def pending(samples: Samples, level: str) -> float:
    return sum(
        count
        for (name, labels), count in samples.items()
        if name == "finance_approvals_pending" and dict(labels)["level"] == level
    )


async def test_an_approval_moves_the_waiting_gauges_the_decisions_and_the_emails(
    http: httpx.AsyncClient,
    worker: None,
    fresh_gauges: None,
    worker_metrics_url: str,
    make_user: MakeUser,
    activity_deps: ActivityDeps,
) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    before = await scrape(http, worker_metrics_url)
    api = await scrape(http, "/metrics")
    assert pending(api, "1") == pending(api, "2") == 0

    created = await http.post("/api/v1/expenses/", json=expense_body("15000.00"), headers=employee.headers)
    entry = created.json()
    submitted = await http.post(f"/api/v1/expenses/{entry['id']}/submit", headers=employee.headers)
    assert submitted.status_code == 200, submitted.text
    api = await scrape(http, "/metrics")
    assert value(api, "finance_approvals_pending", level="1", age="under_1h") == 1
    assert pending(api, "2") == 0
    assert value(api, "finance_approvals_past_escalation", level="1") == 0

    first = await http.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=manager.headers)
    assert first.status_code == 200, first.text
    api = await scrape(http, "/metrics")
    assert pending(api, "1") == 0 and value(api, "finance_approvals_pending", level="2", age="under_1h") == 1

    rejected = await http.post(
        f"/api/v1/expenses/{entry['id']}/reject", json={"reason": "over budget"}, headers=admin.headers
    )
    assert rejected.status_code == 200, rejected.text
    api = await scrape(http, "/metrics")
    assert pending(api, "1") == pending(api, "2") == 0

    after = await scrape(http, worker_metrics_url)
    decided = "finance_approval_decisions_total"
    assert value(after, decided, outcome="approved") - value(before, decided, outcome="approved") == 1
    assert value(after, decided, outcome="rejected") - value(before, decided, outcome="rejected") == 1
    # The approver was told of the submit, the admin of their turn, the employee of the rejection.
    sent = value(after, "finance_emails_total", outcome="sent") - value(before, "finance_emails_total", outcome="sent")
    assert sent >= 3
    version = activity_deps.authorizer.version
    assert value(after, "finance_policy_info", version=version) == 1
    assert value(api, "finance_policy_info", version=version) == 1


async def test_a_report_run_is_counted_with_its_duration(
    http: httpx.AsyncClient, worker: None, worker_metrics_url: str, make_user: MakeUser
) -> None:
    accountant = await make_user("accountant")
    before = await scrape(http, worker_metrics_url)
    today = date.today()
    period = {"from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}
    accepted = await http.post(
        "/api/v1/reports", json={"type": "pnl", "format": "csv", "period": period}, headers=accountant.headers
    )
    assert accepted.status_code == 202, accepted.text

    async def completed() -> bool:
        body = (await http.get(f"/api/v1/reports/{accepted.json()['id']}", headers=accountant.headers)).json()
        return bool(body["status"] == "completed")

    await _eventually(completed)
    after = await scrape(http, worker_metrics_url)
    runs = "finance_report_runs_total"
    assert value(after, runs, outcome="completed") - value(before, runs, outcome="completed") == 1
    renders = "finance_report_render_duration_seconds_count"
    assert value(after, renders, format="csv") - value(before, renders, format="csv") == 1
    assert value(after, runs, outcome="failed") == value(before, runs, outcome="failed")


async def test_backup_and_drill_ages_follow_the_backups(
    http: httpx.AsyncClient, fresh_gauges: None, activity_deps: ActivityDeps
) -> None:
    api = await scrape(http, "/metrics")
    assert math.isinf(value(api, "finance_backup_last_success_age_seconds"))  # none yet: the alert fires
    assert math.isinf(value(api, "finance_restore_drill_last_success_age_seconds"))
    assert value(api, "finance_restore_drill_last_failed") == 0

    async with activity_deps.db.transaction() as tx:
        await backups.request_backup(tx, SYSTEM, "backup-metrics-test")
        backup = await backups.complete_backup(
            tx, SYSTEM, workflow_id="backup-metrics-test", storage_key="k", size_bytes=10, sha256="0" * 64,
            duration_seconds=1.0, manifest={},
        )  # fmt: skip
        drill = await backups.request_drill(tx, SYSTEM, "restore-drill-metrics-test", backup.id)
        await backups.finish_drill(tx, SYSTEM, drill.id, passed=False, reason="row counts differ", details={})
        await tx.commit()
    api = await scrape(http, "/metrics")
    assert 0 <= value(api, "finance_backup_last_success_age_seconds") < 60
    assert value(api, "finance_restore_drill_last_failed") == 1
    assert math.isinf(value(api, "finance_restore_drill_last_success_age_seconds"))  # never passed
    assert 0 <= value(api, "finance_metrics_read_age_seconds") < 5
