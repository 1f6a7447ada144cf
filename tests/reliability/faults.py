"""Fault injection: approvals in flight while the worker is SIGKILLed, Temporal restarts and the database drops
every connection. Afterwards nothing is lost or doubled.

    python -m tests.reliability.faults [--approvals 100] [--kills 3]

The test suite runs a short variant (tests/reliability/test_faults.py); the numbers of the full run go to
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from core.settings import PROJECT_ROOT
from tests.bench.approvals import Actor, _create_and_submit, make_team
from tests.bench.stack import Stack, running_stack, start_worker, temporal_server
from tests.services import SmtpSink, admin_database_url, free_port, scratch_database, smtp_server


@dataclass
class FaultReport:
    approvals: int
    worker_kills: int = 0
    temporal_restarts: int = 0
    database_drops: int = 0
    during_outage: dict[str, int] = field(default_factory=dict)
    approved: int = 0
    transitions_per_entry: dict[int, int] = field(default_factory=dict)
    emails: int = 0
    expected_emails: int = 0
    duplicate_emails: int = 0
    audit_chain_ok: bool = False
    seconds: float = 0.0

    def problems(self) -> list[str]:
        found = []
        if self.approved != self.approvals:
            found.append(f"{self.approvals - self.approved} entries did not end approved")
        doubled = {entry: n for entry, n in self.transitions_per_entry.items() if n != 1}
        if doubled:
            found.append(f"entries without exactly one approve transition: {doubled}")
        if self.emails - self.duplicate_emails != self.expected_emails:
            found.append(
                f"{self.emails - self.duplicate_emails} distinct emails arrived, {self.expected_emails} expected"
            )
        if self.duplicate_emails:
            found.append(f"{self.duplicate_emails} duplicate emails reached the SMTP server")
        if not self.audit_chain_ok:
            found.append("the audit chain does not verify")
        if self.during_outage.get("action_status") != 503:
            found.append(f"an approval while Temporal was down answered {self.during_outage.get('action_status')}")
        if self.during_outage.get("read_status") != 200:
            found.append(f"a read while Temporal was down answered {self.during_outage.get('read_status')}")
        return found


async def _approve_until_done(http: httpx.AsyncClient, manager: Actor, entry_id: int, deadline: float) -> None:
    """Keep trying through faults; a 409 on an entry that reads approved means an earlier call already won."""
    response = httpx.Response(0, text="no answer yet")
    while time.monotonic() < deadline:
        try:
            response = await http.post(f"/api/v1/expenses/{entry_id}/approve", json={}, headers=manager.headers)
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 200:
            return
        if response.status_code == 409:
            status = await http.get(f"/api/v1/expenses/{entry_id}", headers=manager.headers)
            if status.status_code == 200 and status.json().get("status") == "approved":
                return
        await asyncio.sleep(0.3 + random.random() * 0.5)
    raise TimeoutError(f"entry {entry_id} was never approved (last answer {response.status_code}: {response.text})")


def _drop_connections(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


async def run_faults(approvals: int, kills: int, work: Path) -> FaultReport:
    report = FaultReport(approvals=approvals)
    started = time.monotonic()
    temporal_port = free_port()
    temporal_db = work / "temporal.db"
    with (
        smtp_server() as smtp,
        scratch_database(admin_database_url(), "finance_faults") as database_url,
    ):
        temporal = temporal_server(work, temporal_db, temporal_port)
        address = temporal.__enter__()
        temporal_up = True
        smtp_env = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}
        try:
            with running_stack(database_url, address, work, {**smtp_env, "TEMPORAL_RPC_TIMEOUT_SECONDS": "3"}) as stack:
                manager, employee = make_team(stack, f"faults{int(time.time())}")
                async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
                    ids = [await _create_and_submit(http, employee, n) for n in range(approvals)]
                    deadline = time.monotonic() + 120
                    deciders = [
                        asyncio.create_task(_approve_until_done(http, manager, entry_id, deadline)) for entry_id in ids
                    ]
                    for _ in range(kills):
                        await asyncio.sleep(random.uniform(0.2, 1.5))
                        _kill_and_restart_worker(stack, work)
                        report.worker_kills += 1
                    await asyncio.sleep(random.uniform(0.2, 1.0))
                    _drop_connections(database_url)
                    report.database_drops += 1

                    temporal.__exit__(None, None, None)
                    temporal_up = False
                    report.during_outage = await _probe_outage(http, manager, employee)
                    temporal = temporal_server(work, temporal_db, temporal_port)
                    temporal.__enter__()
                    temporal_up = True
                    report.temporal_restarts += 1
                    await asyncio.gather(*deciders)
                await _wait_settled(database_url, ids, deadline=time.monotonic() + 120)
                # Each entry mails its approver on submission and its owner on approval.
                report.expected_emails = 2 * approvals
                await _wait_for_mail(smtp, report.expected_emails, deadline=time.monotonic() + 120)
                _collect(report, database_url, ids, smtp)
        finally:
            if temporal_up:
                temporal.__exit__(None, None, None)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _kill_and_restart_worker(stack: Stack, work: Path) -> None:
    stack.worker.send_signal(signal.SIGKILL)
    stack.worker.wait()
    stack.worker = start_worker(stack.env, work)


async def _probe_outage(http: httpx.AsyncClient, manager: Actor, employee: Actor) -> dict[str, int]:
    extra = await _create_and_submit_tolerant(http, employee)
    read = await http.get("/api/v1/expenses/", headers=manager.headers)
    action = await http.post(f"/api/v1/expenses/{extra}/submit", headers=employee.headers)
    return {"read_status": read.status_code, "action_status": action.status_code}


async def _create_and_submit_tolerant(http: httpx.AsyncClient, employee: Actor) -> int:
    """Creating a draft needs only the database: it works while Temporal is down."""
    body = {
        "amount": "12.34",
        "currency": "USD",
        "category": "travel",
        "description": "outage probe",
        "entry_date": "2026-01-15",
        "vendor": "Probe",
    }
    created = await http.post("/api/v1/expenses/", json=body, headers=employee.headers)
    created.raise_for_status()
    return int(created.json()["id"])


async def _wait_settled(database_url: str, ids: list[int], deadline: float) -> None:
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM approval_requests WHERE entry_id = ANY(%s) AND status = 'approved'", (ids,)
            ).fetchone()
        if row and row[0] == len(ids):
            return
        await asyncio.sleep(0.5)


async def _wait_for_mail(smtp: SmtpSink, expected: int, deadline: float) -> None:
    """Mail is sent by retried activities (with back-off): give the stragglers time, then a moment for doubles."""
    while time.monotonic() < deadline and len({str(m["Message-ID"]) for m in smtp.messages}) < expected:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


def _collect(report: FaultReport, database_url: str, ids: list[int], smtp: SmtpSink) -> None:
    with psycopg.connect(database_url) as conn:
        report.approved = conn.execute(
            "SELECT count(*) FROM entries WHERE id = ANY(%s) AND status = 'approved'", (ids,)
        ).fetchone()[0]  # type: ignore[index]
        steps = conn.execute(
            "SELECT r.entry_id, count(*) FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
            "WHERE r.entry_id = ANY(%s) AND s.status = 'approved' GROUP BY r.entry_id",
            (ids,),
        ).fetchall()
    report.transitions_per_entry = {entry: 0 for entry in ids} | {int(e): int(n) for e, n in steps}
    message_ids = Counter(str(message["Message-ID"]) for message in smtp.messages)
    report.emails = len(smtp.messages)
    report.duplicate_emails = sum(n - 1 for n in message_ids.values() if n > 1)
    report.audit_chain_ok = _audit_chain_verifies(database_url)


def _audit_chain_verifies(database_url: str) -> bool:
    """The operator's own check: `python cli.py verify-audit`."""
    env = {"DATABASE_URL": database_url, "APP_ENV": "test", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "cli.py", "verify-audit"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.faults")
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the logs (worker, API, Temporal) in this folder")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run_faults(args.approvals, args.kills, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="finance-faults-") as folder:
            report = asyncio.run(run_faults(args.approvals, args.kills, Path(folder)))
    print(json.dumps(report.__dict__, indent=2, default=str))
    problems = report.problems()
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
