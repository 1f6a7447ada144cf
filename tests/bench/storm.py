"""`make bench ARGS='--only storm'`: does a storm of heavy work stay off the approvals?

One API, one worker process for the approvals queue and one for reports and backups (`worker.py --queues`), as
docs/operations.md splits them. Serial approvals, paced, are timed first with nothing else running (the idle
figure), then while 50 large reports (CSV and XLSX of about 50,000 ledger rows, PDFs of a few thousand) and a
backup of the whole bench database are queued and running. The reports worker takes WORKER_REPORTS_ACTIVITY_SLOTS
of them at a time (`--storm-slots` overrides it for the run); the rest wait in Temporal's queue. `--storm-nice N`
runs the reports process at a lower CPU priority, as its own nodes or CPU limits would keep it off the approvals'.

Only approvals answered while the storm was still running count towards the storm figure. The goal: the storm's
approve p95 within 2x of the idle one, and every report and the backup completing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from core.security import issue_token
from core.settings import AuthSettings
from tests.bench import approvals
from tests.bench.approvals import Actor, Http, load_client, percentile
from tests.bench.cluster import Cluster, running_cluster
from tests.bench.cpu import cpu_split
from tests.bench.generate import bench_viewers, ensure_bench_dataset, plain_url
from tests.bench.stack import bench_database_url, stack_user, temporal_server

Row = tuple[str, str, str, str, str]
STORM_REPORTS = 50
# (format, days of ledger): about 550 entries a day in the million-entry set, so ~50,000 rows for a quarter; a PDF
# is capped at 5,000 rows (domain/reports/renderers.py), so its period is a few days (~3,000 rows, several seconds).
STORM_SHAPES = (("csv", 90), ("xlsx", 90), ("pdf", 5))
PAUSE_SECONDS = 0.2  # between serial approvals: the samples spread over the storm rather than crowd its start
UNFINISHED = ("queued", "running")


@dataclass
class StormWatch:
    """The storm's state, polled from the database while the approvals run."""

    report_ids: list[str]
    backup_id: int
    started: float = field(default_factory=time.monotonic)
    first_running: float | None = None
    finished: float | None = None
    unfinished: int = 0
    running_most: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.finished is None

    async def poll(self, database_url: str) -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while self.finished is None:
                cursor = await conn.execute(
                    "SELECT status, count(*) FROM reports WHERE id::text = ANY(%s) GROUP BY status "
                    "UNION ALL SELECT 'backup ' || status, 1 FROM backups WHERE id = %s",
                    (self.report_ids, self.backup_id),
                )
                self.statuses = {str(status): int(count) for status, count in await cursor.fetchall()}
                running = self.statuses.get("running", 0)
                self.running_most = max(self.running_most, running)
                if self.first_running is None and (running or self.statuses.get("backup running")):
                    self.first_running = time.monotonic()
                self.unfinished = sum(self.statuses.get(status, 0) for status in UNFINISHED)
                backup_done = not any(self.statuses.get(f"backup {status}") for status in UNFINISHED)
                if self.unfinished == 0 and backup_done:
                    self.finished = time.monotonic()
                    return
                await asyncio.sleep(0.5)


async def _approve_paced(
    http: Http, manager: Actor, ids: list[int], keep_going: Callable[[], bool] | None = None
) -> list[tuple[float, float]]:
    """Approve `ids` one after the other, a pause between them; (when answered, seconds) for each. Stops early when
    `keep_going()` says no."""
    timings: list[tuple[float, float]] = []
    for entry_id in ids:
        if keep_going is not None and not keep_going():
            break
        seconds = await approvals._approve(http, manager, entry_id)
        timings.append((time.monotonic(), seconds))
        await asyncio.sleep(PAUSE_SECONDS)
    return timings


def _token(cluster: Cluster, user_id: int) -> dict[str, str]:
    auth = AuthSettings(secret_key=cluster.env["SECRET_KEY"])
    token, _ = issue_token(auth, user_id=user_id, token_type="access", token_version=0, lifetime=timedelta(hours=2))
    return {"Authorization": f"Bearer {token}"}


def _storm_requests(today: date) -> list[dict[str, Any]]:
    """50 ledger reports over different periods (none shares another's rows exactly), formats in turn."""
    bodies = []
    for n in range(STORM_REPORTS):
        fmt, days = STORM_SHAPES[n % len(STORM_SHAPES)]
        end = today - timedelta(days=30 + 7 * n)
        bodies.append(
            {
                "type": "ledger",
                "format": fmt,
                "period": {"from": (end - timedelta(days=days - 1)).isoformat(), "to": end.isoformat()},
            }
        )
    return bodies


async def _start_storm(http: Http, reporter: dict[str, str], superadmin: dict[str, str]) -> tuple[list[str], int]:
    report_ids = []
    for body in _storm_requests(date.today()):
        answer = approvals._ok(await http.post("/api/v1/reports/", body, reporter), "request a report")
        report_ids.append(str(json.loads(answer.text)["id"]))
    answer = approvals._ok(await http.post("/api/v1/admin/backups", None, superadmin), "start a backup")
    return report_ids, int(json.loads(answer.text)["backup_id"])


def _figures(timings: list[tuple[float, float]]) -> dict[str, float]:
    seconds = [elapsed for _, elapsed in timings]
    if not seconds:
        return {"approvals": 0, "p50_ms": float("nan"), "p95_ms": float("nan")}
    return {
        "approvals": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


async def _measure(cluster: Cluster, samples: int, storm_samples: int, timeout: float) -> dict[str, Any]:
    stack = cluster.stack()
    manager, employee = approvals.make_team(stack, f"storm{int(time.time())}")
    admin_id = bench_viewers(cluster.database_url)["admin (everyone)"]
    _, superadmin = stack_user(stack, "superadmin", None)
    async with load_client(stack.api_url, 2) as http:
        idle_ids = [await approvals._create_and_submit(http, employee, n) for n in range(samples)]
        storm_ids = [await approvals._create_and_submit(http, employee, samples + n) for n in range(storm_samples)]
        await asyncio.sleep(1.0)  # every workflow has opened its first step
        idle = await _approve_paced(http, manager, idle_ids)

        report_ids, backup_id = await _start_storm(http, _token(cluster, admin_id), superadmin)
        watch = StormWatch(report_ids, backup_id)
        watcher = asyncio.create_task(watch.poll(cluster.database_url))
        while watch.first_running is None and time.monotonic() - watch.started < 60:
            await asyncio.sleep(0.1)
        storm = await _approve_paced(http, manager, storm_ids, keep_going=lambda: watch.active)
        try:
            await asyncio.wait_for(asyncio.shield(watcher), timeout)
        except TimeoutError:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    ended = watch.finished or time.monotonic()
    during = [(at, seconds) for at, seconds in storm if at <= ended]
    outcome = _storm_outcome(cluster.database_url, report_ids, backup_id)
    return {
        "idle": _figures(idle),
        "storm": _figures(during),
        "after_storm_approvals": len(storm) - len(during),
        "storm_seconds": round(ended - watch.started, 1),
        "finished": watch.finished is not None,
        "running_most": watch.running_most,
        **outcome,
    }


def _storm_outcome(database_url: str, report_ids: list[str], backup_id: int) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        reports = conn.execute(
            "SELECT format, status, rows, extract(epoch FROM completed_at - created_at), error FROM reports "
            "WHERE id::text = ANY(%s)",
            (report_ids,),
        ).fetchall()
        backup = conn.execute(
            "SELECT status, size_bytes, duration_seconds, error FROM backups WHERE id = %s", (backup_id,)
        ).fetchone()
    by_format: dict[str, list[int]] = {}
    for fmt, _, rows, _, _ in reports:
        by_format.setdefault(str(fmt), []).append(int(rows or 0))
    waits = sorted(float(seconds) for *_, seconds, _ in reports if seconds is not None)
    return {
        "completed": sum(1 for _, status, *_ in reports if status == "completed"),
        "failed": [f"{fmt}: {error}" for fmt, status, _, _, error in reports if status == "failed"],
        "rows_by_format": {fmt: round(statistics.median(rows)) for fmt, rows in by_format.items()},
        "request_to_done_p50_s": round(statistics.median(waits), 1) if waits else None,
        "request_to_done_max_s": round(waits[-1], 1) if waits else None,
        "backup": {
            "status": backup[0] if backup else None,
            "bytes": backup[1] if backup else None,
            "seconds": round(float(backup[2]), 1) if backup and backup[2] is not None else None,
            "error": backup[3] if backup else None,
        },
    }


def bench_storm(args: argparse.Namespace, work: Path, rows: list[Row], notes: list[str]) -> None:
    database_url = plain_url(bench_database_url())  # psycopg's form: the app takes it too
    data = ensure_bench_dataset(database_url, entries=args.entries, users=1_000, rebuild=args.rebuild)
    extra = {"APPROVAL_REMINDER_HOURS": "48", "REPORT_REQUESTS_PER_HOUR": "1000"}
    if args.storm_slots:
        extra["WORKER_REPORTS_ACTIVITY_SLOTS"] = str(args.storm_slots)
    layout = ["approvals", "reports,backups"]
    with (
        temporal_server(work) as address,
        running_cluster(
            database_url, address, work, workers=layout, extra_env=extra, worker_nice=[0, args.storm_nice]
        ) as cluster,
    ):
        processes = cluster.processes()
        approvals_worker, reports_worker = cluster.workers
        processes["worker (approvals)"] = lambda: [approvals_worker.pid]
        processes["worker (reports, backups)"] = lambda: [reports_worker.pid]
        del processes["worker"]
        with cpu_split(processes, 1) as cpu:  # the whole section's CPU seconds (units=1), by process
            found = asyncio.run(_measure(cluster, args.latency_samples, args.storm_samples, args.storm_timeout))
    slots = args.storm_slots or "the default"
    niceness = f", at nice {args.storm_nice}" if args.storm_nice else ""
    idle, storm = found["idle"], found["storm"]
    ratio = storm["p95_ms"] / idle["p95_ms"] if storm["approvals"] else float("nan")
    rows.append(
        (
            f"Approve latency over HTTP, serial and paced, while {STORM_REPORTS} large reports and a backup run on "
            f"their own worker process (reports,backups; {slots} activity slots{niceness}), p50 / p95, "
            f"{storm['approvals']} approvals during the storm",
            f"{storm['p50_ms']} / {storm['p95_ms']} ms",
            f"idle, same run: {idle['p50_ms']} / {idle['p95_ms']} ms ({idle['approvals']} approvals)",
            f"{ratio:.2f}",
            "p95 <= 2x idle " + ("met" if ratio <= 2 else "MISSED"),
        )
    )
    failed = found["failed"] or ([] if found["backup"]["status"] == "completed" else ["the backup"])
    rows.append(
        (
            f"The storm: {STORM_REPORTS} ledger reports (median rows by format {found['rows_by_format']}) and a "
            f"backup of the {data.entries:,}-entry database, all requested at once",
            f"done in {found['storm_seconds']} s; {found['completed']} reports completed, backup "
            f"{found['backup']['status']} ({found['backup']['seconds']} s)",
            "goal",
            "",
            "every one completes " + ("met" if found["finished"] and not failed else "MISSED"),
        )
    )
    notes.append(
        f"Storm: reports requested to done, p50 {found['request_to_done_p50_s']} s, max "
        f"{found['request_to_done_max_s']} s; at most {found['running_most']} reports running at once; "
        f"{found['after_storm_approvals']} paced approvals after the storm ended were left out of its figure"
    )
    if failed:
        notes.append("Storm failures: " + "; ".join(str(failure)[:300] for failure in failed))
    notes.append(
        "Storm: CPU seconds over the whole section (idle approvals, then the storm), by process: "
        + ", ".join(f"{name} {ms / 1000:.1f} s" for name, ms in cpu.per_unit_ms.items())
        + (f"; machine {cpu.machine_busy:.0%} busy" if cpu.machine_busy is not None else "")
    )
