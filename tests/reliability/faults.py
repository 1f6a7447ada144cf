"""Fault injection: approvals in flight while workers and API processes are SIGKILLed, Temporal restarts and the
database drops every connection. Afterwards nothing is lost or doubled, and what must hold across processes holds.

    python -m tests.reliability.faults [--approvals 100] [--kills 3] [--window 20] [--seed N] [--keep DIR]
        [--apis N] [--workers M] [--api-kills K] [--temporal-restarts R]

N API processes and M workers (default one of each) share one Temporal dev server and one database
(tests/reliability/fleet.py); the client spreads the entries over the APIs and fails over when one refuses the
connection. Every expense is created and submitted first (all workflows in flight); then the approve calls start at
random moments across the approval window, and the faults (the worker kills, the API kills, one connection drop, the
Temporal restarts) strike at other random moments across the same window, one at a time; a killed process is
restarted at once. Afterwards every approval workflow must have COMPLETED (asked of Temporal), every entry be approved
with exactly one approve transition and one `approval.approved` audit row, no email be doubled (but for one the
server took just before its sender was killed: SMTP's own window), each entry's approver and owner mailed once, no
request answered 500, and the audit chain verify. Then the cross-process checks (tests/reliability/cross_process.py):
the notification stream held on the first API received every notice, whichever API the decision went through and
across that API's kill; a policy edit reloaded through the first API takes effect in every process (timed); the
sign-in throttle lets exactly its limit through across the APIs.

The test suite runs short variants (tests/reliability/test_faults.py, test_multi_process.py); the numbers of the
full runs go to docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from core.settings import PROJECT_ROOT
from tests.bench.approvals import Actor, _create_and_submit, make_team
from tests.bench.stack import temporal_server
from tests.reliability.cross_process import (
    MailCheck,
    PolicyCheck,
    StreamCheck,
    StreamWatcher,
    ThrottleCheck,
    login_throttle_holds_across_apis,
    mail_per_recipient_and_entry,
    policy_edit_reaches_every_process,
    stream_check,
)
from tests.reliability.fleet import LOGIN_LIMIT_PER_MINUTE, Fleet, FleetClient, FleetPoster, Member, running_fleet
from tests.services import SmtpSink, admin_database_url, free_port, migrate, scratch_database, smtp_server


@dataclass
class FaultReport:
    approvals: int
    apis: int = 1
    workers: int = 1
    seed: int = 0
    window_seconds: float = 0.0
    faults_at: list[tuple[str, float]] = field(default_factory=list)  # (fault, wall seconds since the window opened)
    approvals_done_from_to: list[float] = field(default_factory=list)  # first and last approve answered, same clock
    worker_kills: int = 0
    api_kills: int = 0
    api_back_after_seconds: list[float] = field(default_factory=list)  # each killed API until it served again
    temporal_restarts: int = 0
    database_drops: int = 0
    during_outage: dict[str, int] = field(default_factory=dict)
    unsettled_after_wait: int = 0  # approval requests still not approved when the wait for them gave up
    approved: int = 0
    workflows: dict[str, int] = field(default_factory=dict)  # Temporal's status of each approval workflow -> count
    emails: int = 0
    expected_emails: int = 0
    duplicate_emails: int = 0
    # Of those, the ones whose first copy reached the server just before a worker was killed: the server had taken
    # it and the worker died before it could record the send (SMTP has no two-phase commit; the copy carries the
    # same Message-ID, which mail clients collapse). Any other double is a fault of ours.
    duplicates_sent_as_a_worker_died: int = 0
    audit_chain_ok: bool = False
    audit_verifier: str = ""  # what `cli.py verify-audit` printed
    # Every HTTP answer the run's client got, per API process and status; a 500 is a problem whatever the fault.
    answers_by_api: dict[str, dict[int, int]] = field(default_factory=dict)
    failovers: int = 0  # requests the client sent to another API because the first refused the connection
    decisions_by_api: dict[str, int] = field(default_factory=dict)  # approve calls answered 200, per API
    # The cross-process checks (tests/reliability/cross_process.py).
    stream: StreamCheck | None = None
    policy: PolicyCheck | None = None
    throttle: ThrottleCheck | None = None
    mail: MailCheck | None = None
    seconds: float = 0.0
    # Seconds since the start when each phase ended (start: the processes serve; then the entries submitted, the
    # approvals answered, everything settled, every check done); `seconds` includes stopping it all.
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # Per entry, kept out of the printed summary (which gives their histograms) but named by problems().
    transitions_per_entry: dict[int, int] = field(default_factory=dict)
    approved_audit_rows_per_entry: dict[int, int] = field(default_factory=dict)
    workflow_status_per_entry: dict[int, str] = field(default_factory=dict)
    budget_rows_per_entry: dict[int, list[str]] = field(default_factory=dict)  # the team budget's ledger, per entry
    budget_books: tuple[object, ...] = ()  # its committed, actual and the ledger's sums of each
    kill_times: list[float] = field(default_factory=list)  # time.monotonic() of each worker kill

    def summary(self) -> dict[str, Any]:
        """What the script prints (and docs/reliability.md quotes): counts and histograms, not 100-entry maps."""
        result: dict[str, Any] = {
            key: value
            for key, value in self.__dict__.items()
            if key
            not in (
                "transitions_per_entry",
                "approved_audit_rows_per_entry",
                "workflow_status_per_entry",
                "budget_rows_per_entry",
                "kill_times",
            )
        }
        result["faults_at"] = [f"{name} at {at} s" for name, at in self.faults_at]
        for name in ("stream", "policy", "throttle", "mail"):
            check = getattr(self, name)
            result[name] = asdict(check) if check is not None else None
        result["entries_by_approve_transitions"] = _histogram(self.transitions_per_entry)
        result["entries_by_approved_audit_rows"] = _histogram(self.approved_audit_rows_per_entry)
        return result

    def problems(self) -> list[str]:
        found = []
        if self.unsettled_after_wait:
            found.append(f"{self.unsettled_after_wait} approval requests were still not approved when the wait ended")
        if self.approved != self.approvals:
            found.append(f"{self.approvals - self.approved} entries did not end approved")
        doubled = {entry: n for entry, n in self.transitions_per_entry.items() if n != 1}
        if doubled:
            found.append(f"entries without exactly one approve transition: {doubled}")
        audited = {entry: n for entry, n in self.approved_audit_rows_per_entry.items() if n != 1}
        if audited:
            found.append(f"entries without exactly one approval.approved audit row: {audited}")
        unfinished = {e: status for e, status in self.workflow_status_per_entry.items() if status != "COMPLETED"}
        if unfinished or len(self.workflow_status_per_entry) != self.approvals:
            found.append(f"approval workflows that did not complete: {unfinished or self.workflows}")
        if self.emails - self.duplicate_emails != self.expected_emails:
            found.append(
                f"{self.emails - self.duplicate_emails} distinct emails arrived, {self.expected_emails} expected"
            )
        if self.duplicate_emails > self.duplicates_sent_as_a_worker_died:
            found.append(
                f"{self.duplicate_emails - self.duplicates_sent_as_a_worker_died} duplicate emails reached the SMTP "
                "server (not counting any whose sender was killed as the server took it)"
            )
        charged = {
            e: rows for e, rows in self.budget_rows_per_entry.items() if rows != ["committed", "released", "actual"]
        }
        if charged or len(self.budget_rows_per_entry) != self.approvals:
            found.append(f"entries whose budget charges are not one commitment, its release and the spend: {charged}")
        if (
            len(self.budget_books) != 4
            or self.budget_books[0] != self.budget_books[2]
            or (self.budget_books[1] != self.budget_books[3])
        ):
            found.append(f"the team budget's sums (committed, actual) disagree with its ledger: {self.budget_books}")
        if not self.audit_chain_ok:
            found.append(f"the audit chain does not verify: {self.audit_verifier}")
        if self.temporal_restarts or self.during_outage:
            if self.during_outage.get("action_status") != 503:
                found.append(f"an approval while Temporal was down answered {self.during_outage.get('action_status')}")
            if self.during_outage.get("read_status") != 200:
                found.append(f"a read while Temporal was down answered {self.during_outage.get('read_status')}")
        errors = {api: statuses[500] for api, statuses in self.answers_by_api.items() if statuses.get(500)}
        if errors:
            found.append(f"requests answered 500 (a fault must be a 503 to try again, never a 500): {errors}")
        for check in (self.stream, self.policy, self.throttle, self.mail):
            if check is not None:
                found.extend(check.problems())
        return found


def _histogram(per_entry: dict[int, int]) -> dict[str, int]:
    """{"1": 100}: a hundred entries had exactly one."""
    return {str(n): count for n, count in sorted(Counter(per_entry.values()).items())}


class WindowClock:
    """Seconds into the approval window, not counting the Temporal outage: the approve calls and faults drawn for
    after the outage keep their spread instead of all going off the moment Temporal is back."""

    def __init__(self) -> None:
        self.opened = time.monotonic()
        self._paused_total = 0.0
        self._paused_at: float | None = None

    def now(self) -> float:
        stopped = self._paused_at if self._paused_at is not None else time.monotonic()
        return stopped - self.opened - self._paused_total

    def wall(self) -> float:
        return round(time.monotonic() - self.opened, 1)

    def pause(self) -> None:
        self._paused_at = time.monotonic()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._paused_total += time.monotonic() - self._paused_at
            self._paused_at = None

    async def reach(self, moment: float) -> None:
        while (left := moment - self.now()) > 0:
            await asyncio.sleep(min(left, 0.1))


async def _approve_until_done(
    http: FleetClient,
    manager: Actor,
    entry_id: int,
    clock: WindowClock,
    at: float,
    deadline: float,
    prefer: int,
) -> tuple[float, str]:
    """At `at` seconds into the window, approve through the API `prefer` (the client fails over when it refuses
    the connection), trying again through faults; a 409 on an entry that reads approved means an earlier call
    already won (its answer was lost to a fault). Returns when it was done (wall seconds) and through which API
    the winning call went ("unknown" when its answer was lost)."""
    await clock.reach(at)
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = await http.post(
                f"/api/v1/expenses/{entry_id}/approve", json={}, headers=manager.headers, prefer=prefer
            )
        except httpx.HTTPError as error:
            last = repr(error)
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 200:
            return clock.wall(), f"api{http.api_of(response) + 1}"
        last = f"{response.status_code}: {response.text}"
        if response.status_code == 409:
            with contextlib.suppress(httpx.HTTPError):
                status = await http.get(f"/api/v1/expenses/{entry_id}", headers=manager.headers, prefer=prefer)
                if status.status_code == 200 and status.json().get("status") == "approved":
                    return clock.wall(), "unknown"
        await asyncio.sleep(0.3 + random.random() * 0.5)
    raise TimeoutError(f"entry {entry_id} was never approved (last answer {last})")


def _drop_connections(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def default_window(approvals: int) -> float:
    """Seconds over which the approve calls and the faults are spread: long enough that the faults meet approvals
    at every stage, short enough for CI (20 approvals: 15 s; 100: 25 s)."""
    return max(15.0, approvals * 0.25)


async def run_faults(
    approvals: int,
    kills: int,
    work: Path,
    window: float | None = None,
    seed: int | None = None,
    apis: int = 1,
    workers: int = 1,
    api_kills: int = 0,
    temporal_restarts: int = 1,
) -> FaultReport:
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)  # printed in the report: a failing run can be replayed with --seed
    window = default_window(approvals) if window is None else window
    report = FaultReport(approvals=approvals, apis=apis, workers=workers, seed=seed, window_seconds=window)
    started = time.monotonic()
    temporal_port = free_port()
    temporal_db = work / "temporal.db"
    with (
        smtp_server() as smtp,
        scratch_database(admin_database_url(), "finance_faults") as database_url,
    ):
        temporal = temporal_server(work, temporal_db, temporal_port)
        # The Temporal server starts while the database is migrated (seconds each; the fleet's own migration then
        # finds nothing to do).
        migrated = asyncio.create_task(asyncio.to_thread(migrate, database_url))
        address = await asyncio.to_thread(temporal.__enter__)
        temporal_up = True
        smtp_env = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}
        extra_env = {**smtp_env, "TEMPORAL_RPC_TIMEOUT_SECONDS": "3"}
        try:
            await migrated
            async with (
                running_fleet(database_url, address, work, apis, workers, extra_env) as fleet,
                FleetClient(fleet.api_urls) as http,
            ):
                report.phase_seconds["start"] = round(time.monotonic() - started, 1)
                tag = f"faults{int(time.time())}"
                manager, employee = make_team(fleet.as_stack(), tag)
                superadmin = fleet.user("superadmin", None, f"root-{tag}")
                throttled = fleet.user("employee", manager.id, f"throttled-{tag}")
                # The owner's stream, held on the first API (the one killed first): it must see every approval,
                # whichever API took the decision, and lose none across its process's kill.
                watcher = StreamWatcher(fleet.api_urls[0], employee)
                watcher.start()
                await asyncio.wait_for(watcher.connected.wait(), 30)
                ids = await _create_and_submit_spread(http, employee, approvals, apis)
                report.phase_seconds["create_and_submit"] = round(time.monotonic() - started, 1)
                clock = WindowClock()
                deadline = clock.opened + window + 120
                deciders = [
                    asyncio.create_task(
                        _approve_until_done(
                            http, manager, entry_id, clock, rng.uniform(0, window), deadline, prefer=n % apis
                        )
                    )
                    for n, entry_id in enumerate(ids)
                ]
                faults = (
                    ["worker_kill"] * kills
                    + ["api_kill"] * api_kills
                    + ["database_drop"]
                    + ["temporal_restart"] * temporal_restarts
                )
                restarts: list[asyncio.Task[None]] = []
                # One at a time, in the order drawn (a Temporal restart takes seconds, and the window's clock
                # stands still meanwhile), inside the window's middle half: a process killed in its first second
                # (a drawn 0.4 s) had decided nothing before, and on a busy machine was back only after the window.
                drawn = ((rng.uniform(window / 4, window * 3 / 4), fault) for fault in faults)
                for at, fault in sorted(drawn):
                    await clock.reach(at)
                    report.faults_at.append((fault, clock.wall()))
                    if fault == "worker_kill":
                        report.kill_times.append(time.monotonic())
                        _kill_and_restart(fleet.workers[report.worker_kills % workers])
                        report.worker_kills += 1
                    elif fault == "api_kill":
                        # The first kill strikes the API the stream is held on; then the next, in turn.
                        member = fleet.apis[report.api_kills % apis]
                        _kill_and_restart(member)
                        restarts.append(asyncio.create_task(_time_back(member, report)))
                        report.api_kills += 1
                    elif fault == "database_drop":
                        _drop_connections(database_url)
                        report.database_drops += 1
                    else:
                        clock.pause()
                        temporal.__exit__(None, None, None)
                        temporal_up = False
                        report.during_outage = await _probe_outage(http, manager, employee)
                        temporal = temporal_server(work, temporal_db, temporal_port)
                        temporal.__enter__()
                        temporal_up = True
                        report.temporal_restarts += 1
                        clock.resume()
                done = await asyncio.gather(*deciders)
                report.phase_seconds["approvals"] = round(time.monotonic() - started, 1)
                await asyncio.gather(*restarts)
                # No fault strikes from here on (the throttle's count is exact only if no process dies during its
                # burst): these two run while the last workflows finish.
                cross_checks = asyncio.gather(
                    login_throttle_holds_across_apis(http, _username(fleet, throttled), LOGIN_LIMIT_PER_MINUTE),
                    policy_edit_reaches_every_process(fleet, http, superadmin, employee),
                )
                report.approvals_done_from_to = [min(at for at, _ in done), max(at for at, _ in done)]
                report.decisions_by_api = dict(sorted(Counter(api for _, api in done).items()))
                report.unsettled_after_wait = await _wait_settled(database_url, ids, deadline=time.monotonic() + 120)
                # Each entry mails its approver on submission and its owner on approval.
                report.expected_emails = 2 * approvals
                await _wait_for_mail(smtp, report.expected_emails, deadline=time.monotonic() + 120)
                report.workflow_status_per_entry = await _workflow_statuses(
                    address, database_url, ids, deadline=time.monotonic() + 60
                )
                report.workflows = dict(Counter(report.workflow_status_per_entry.values()))
                report.phase_seconds["settled"] = round(time.monotonic() - started, 1)
                decided_through = {entry: api for entry, (_, api) in zip(ids, done, strict=True)}
                report.stream = await stream_check(watcher, database_url, decided_through, "api1")
                await watcher.stop()
                report.throttle, report.policy = await cross_checks
                report.mail = mail_per_recipient_and_entry(smtp, database_url, ids)
                report.answers_by_api = {
                    f"api{n + 1}": dict(sorted(statuses.items())) for n, statuses in http.answers.items()
                }
                report.failovers = http.failovers
                _collect(report, fleet.env, ids, smtp)
                report.phase_seconds["checked"] = round(time.monotonic() - started, 1)
        finally:
            if temporal_up:
                temporal.__exit__(None, None, None)
    report.seconds = round(time.monotonic() - started, 1)
    return report


async def _create_and_submit_spread(http: FleetClient, employee: Actor, approvals: int, apis: int) -> list[int]:
    """Create and submit the expenses through the APIs in turn, a few at a time; their ids in order."""
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> int:
        async with gate:
            return await _create_and_submit(FleetPoster(http, prefer=n % apis), employee, n)

    return list(await asyncio.gather(*(one(n) for n in range(approvals))))


def _username(fleet: Fleet, user: Actor) -> str:
    with psycopg.connect(fleet.database_url) as conn:
        row = conn.execute("SELECT username FROM users WHERE id = %s", (user.id,)).fetchone()
    assert row is not None
    return str(row[0])


def _kill_and_restart(member: Member) -> None:
    """SIGKILL, then start it again at once (it serves a few seconds later)."""
    member.kill()
    member.start()


async def _time_back(member: Member, report: FaultReport) -> None:
    report.api_back_after_seconds.append(await member.wait_ready())


async def _workflow_statuses(address: str, database_url: str, ids: list[int], deadline: float) -> dict[int, str]:
    """Each entry's approval workflow as Temporal reports it (by the workflow id stored on the entry), waiting
    until none is running or the deadline passes (a workflow ends a moment after its last activity)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, workflow_id FROM entries WHERE id = ANY(%s)", (ids,)).fetchall()
    workflow_ids = {int(entry_id): str(workflow_id) for entry_id, workflow_id in rows if workflow_id}
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    statuses: dict[int, str] = {}
    while True:
        for entry_id, workflow_id in workflow_ids.items():
            if statuses.get(entry_id) not in (None, "RUNNING"):
                continue
            try:
                described = await client.get_workflow_handle(workflow_id).describe()
            except RPCError as error:  # not found: the workflow was lost
                statuses[entry_id] = f"missing ({error.status.name})"
                continue
            status = described.status
            statuses[entry_id] = status.name if status is not None else "UNKNOWN"
        if all(status != WorkflowExecutionStatus.RUNNING.name for status in statuses.values()):
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return statuses


async def _probe_outage(http: FleetClient, manager: Actor, employee: Actor) -> dict[str, int]:
    extra = await _create_and_submit_tolerant(http, employee)
    read = await http.get("/api/v1/expenses/", headers=manager.headers)
    action = await http.post(f"/api/v1/expenses/{extra}/submit", headers=employee.headers)
    return {"read_status": read.status_code, "action_status": action.status_code}


async def _create_and_submit_tolerant(http: FleetClient, employee: Actor) -> int:
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


async def _wait_settled(database_url: str, ids: list[int], deadline: float) -> int:
    """Wait until every approval request is approved; returns how many were not by the deadline (0: all settled)."""
    remaining = len(ids)
    while True:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM approval_requests WHERE entry_id = ANY(%s) AND status = 'approved'", (ids,)
            ).fetchone()
        remaining = len(ids) - int(row[0] if row else 0)
        if remaining == 0 or time.monotonic() > deadline:
            return remaining
        await asyncio.sleep(0.5)


async def _wait_for_mail(smtp: SmtpSink, expected: int, deadline: float) -> None:
    """Mail is sent by retried activities (with back-off): give the stragglers time, then a moment for doubles."""
    while time.monotonic() < deadline and len({str(m["Message-ID"]) for m in smtp.messages}) < expected:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


def _collect(report: FaultReport, stack_env: dict[str, str], ids: list[int], smtp: SmtpSink) -> None:
    database_url = stack_env["DATABASE_URL"]
    with psycopg.connect(database_url) as conn:
        report.approved = conn.execute(
            "SELECT count(*) FROM entries WHERE id = ANY(%s) AND status = 'approved'", (ids,)
        ).fetchone()[0]  # type: ignore[index]
        steps = conn.execute(
            "SELECT r.entry_id, count(*) FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id "
            "WHERE r.entry_id = ANY(%s) AND s.status = 'approved' GROUP BY r.entry_id",
            (ids,),
        ).fetchall()
        audited = conn.execute(
            "SELECT resource_id, count(*) FROM audit_log WHERE action = 'approval.approved' "
            "AND resource_type = 'entry' AND resource_id = ANY(%s) GROUP BY resource_id",
            ([str(entry) for entry in ids],),
        ).fetchall()
        charges = conn.execute(
            "SELECT entry_id, array_agg(kind ORDER BY id) FROM budget_ledger WHERE entry_id = ANY(%s) "
            "GROUP BY entry_id",
            (ids,),
        ).fetchall()
        books = conn.execute(
            "SELECT p.committed, p.actual, coalesce(sum(l.amount) FILTER (WHERE l.kind = 'committed'), 0) - "
            "coalesce(sum(l.amount) FILTER (WHERE l.kind = 'released'), 0), "
            "coalesce(sum(l.amount) FILTER (WHERE l.kind = 'actual'), 0) FROM budget_periods p JOIN budget_ledger l "
            "ON l.budget_id = p.budget_id AND l.period_starts_on = p.starts_on WHERE p.budget_id IN "
            "(SELECT budget_id FROM budget_ledger WHERE entry_id = ANY(%s)) "
            "GROUP BY p.committed, p.actual",
            (ids,),
        ).fetchall()
    report.budget_rows_per_entry = {int(e): list(kinds) for e, kinds in charges}
    report.budget_books = tuple(books[0]) if len(books) == 1 else tuple(books)
    report.transitions_per_entry = {entry: 0 for entry in ids} | {int(e): int(n) for e, n in steps}
    report.approved_audit_rows_per_entry = {entry: 0 for entry in ids} | {int(e): int(n) for e, n in audited}
    message_ids = Counter(str(message["Message-ID"]) for message in smtp.messages)
    report.emails = len(smtp.messages)
    report.duplicate_emails = sum(n - 1 for n in message_ids.values() if n > 1)
    report.duplicates_sent_as_a_worker_died = _doubles_explained_by_kills(smtp, report.kill_times)
    report.audit_chain_ok, report.audit_verifier = _audit_chain_verifies(stack_env)


# How soon after the server took a mail a kill may land and still leave the send unrecorded: the reply to the sender
# and the ledger's COMMIT take a few milliseconds (1.8 to 2.2 ms measured, seed 1978380703); generous for a busy host.
CRASH_WINDOW_SECONDS = 0.25


def _doubles_explained_by_kills(smtp: SmtpSink, kill_times: list[float]) -> int:
    """Doubled messages whose first copy arrived within CRASH_WINDOW_SECONDS before a worker kill (each kill can
    explain one double at most)."""
    first_arrival: dict[str, float] = {}
    copies: Counter[str] = Counter()
    for message, arrived in zip(smtp.messages, smtp.arrived, strict=True):
        message_id = str(message["Message-ID"])
        copies[message_id] += 1
        first_arrival.setdefault(message_id, arrived)
    unused = sorted(kill_times)
    explained = 0
    for message_id, count in copies.items():
        if count != 2:
            continue  # three copies or more: more than a crash in the window
        kill = next((k for k in unused if 0 <= k - first_arrival[message_id] <= CRASH_WINDOW_SECONDS), None)
        if kill is not None:
            unused.remove(kill)
            explained += 1
    return explained


def _audit_chain_verifies(stack_env: dict[str, str]) -> tuple[bool, str]:
    """The operator's own check, `python cli.py verify-audit`, with the stack's settings (the key included: outside
    dev the settings refuse to load without one). Returns whether it passed and what it said."""
    env = {name: stack_env[name] for name in ("DATABASE_URL", "APP_ENV", "SECRET_KEY")} | {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "cli.py", "verify-audit"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    said = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return result.returncode == 0, said[-1] if said else f"exit code {result.returncode}, no output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.faults")
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument(
        "--window", type=float, help="seconds to spread the approvals and faults over (default: max(15, approvals / 4))"
    )
    parser.add_argument("--seed", type=int, help="replay the random approve and fault times of an earlier run")
    parser.add_argument("--keep", type=Path, help="keep the logs (workers, APIs, Temporal) in this folder")
    parser.add_argument("--apis", type=int, default=1, help="API processes (uvicorn), each on its own port")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (worker.py)")
    parser.add_argument("--api-kills", type=int, default=0, help="API processes SIGKILLed (and restarted)")
    parser.add_argument("--temporal-restarts", type=int, default=1, help="Temporal server stops and restarts")
    args = parser.parse_args(argv)
    if min(args.apis, args.workers) < 1:
        parser.error("--apis and --workers need at least one process each")

    def run(work: Path) -> FaultReport:
        return asyncio.run(
            run_faults(
                args.approvals,
                args.kills,
                work,
                args.window,
                args.seed,
                apis=args.apis,
                workers=args.workers,
                api_kills=args.api_kills,
                temporal_restarts=args.temporal_restarts,
            )
        )

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="finance-faults-") as folder:
            report = run(Path(folder))
    print(json.dumps(report.summary(), indent=2, default=str))
    problems = report.problems()
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
