"""The Locust soak: 50 users mixing reads, creates and approvals against the real stack (PostgreSQL, a Temporal dev
server, the worker and one uvicorn API process), each on free ports.

    python -m tests.reliability.soak [--users 50] [--seconds 300] [--spawn-rate 10] [--append docs/reliability.md]

Locust runs as a subprocess (gevent never enters the caller's process); its CSV stats give requests per second,
failures and p50/p95/p99 for reads (GET) and writes separately. The suite runs a 30-second variant
(tests/reliability/test_soak.py). Goals: zero failures, read p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from core.security import issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.approvals import _insert_user
from tests.bench.stack import Stack, running_stack, temporal_server
from tests.services import admin_database_url, scratch_database

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
READ_P95_GOAL_MS = 300.0


@dataclass
class GroupStats:
    requests: int = 0
    failures: int = 0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class SoakReport:
    users: int
    seconds: int
    spawn_rate: float
    started_at: str = ""
    requests: int = 0
    failures: int = 0
    per_second: float = 0.0
    reads: GroupStats = field(default_factory=GroupStats)
    writes: GroupStats = field(default_factory=GroupStats)
    endpoints: dict[str, GroupStats] = field(default_factory=dict)
    approve_retries: int = 0
    approved_entries: int = 0
    entries_created: int = 0
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core, over the run
    failure_samples: list[str] = field(default_factory=list)
    locust_exit_code: int = 0

    def problems(self) -> list[str]:
        found = []
        if self.requests == 0:
            found.append("no requests were made")
        if self.failures:
            found.append(f"{self.failures} failed requests: {self.failure_samples}")
        if self.reads.p95_ms >= READ_P95_GOAL_MS:
            found.append(f"read p95 {self.reads.p95_ms} ms is not under {READ_P95_GOAL_MS:.0f} ms")
        return found

    def markdown(self, command: str) -> str:
        lines = [
            f"### Soak {self.started_at}",
            "",
            f"Command: `{command}`; machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}; one uvicorn API process, one worker, Temporal dev server, "
            "PostgreSQL on 127.0.0.1.",
            "",
            f"{self.users} users (spawn rate {self.spawn_rate}/s) for {self.seconds} s: {self.requests} requests, "
            f"{self.per_second} requests/s, **{self.failures} failures**; {self.entries_created} expenses created, "
            f"{self.approved_entries} approved through the workflow ({self.approve_retries} approve calls answered "
            "409 while the step was opening and were retried).",
            "",
            "| Group | Requests | Failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        rows = [("**reads**", self.reads), ("**writes**", self.writes), *sorted(self.endpoints.items())]
        for name, stats in rows:
            lines.append(
                f"| {name} | {stats.requests} | {stats.failures} | {stats.per_second} | {stats.p50_ms:g} | "
                f"{stats.p95_ms:g} | {stats.p99_ms:g} | {stats.max_ms:g} |"
            )
        cpu = ", ".join(f"{name} {value:g}%" for name, value in self.cpu_percent.items())
        verdict = "met" if not self.problems() else "NOT met: " + "; ".join(self.problems())
        lines += [
            "",
            f"CPU (percent of one core over the run): {cpu}.",
            "",
            f"Goals (0 failures, read p95 < 300 ms): {verdict}.",
            "",
        ]
        return "\n".join(lines)


def _token(auth: AuthSettings, user_id: int, hours: float) -> str:
    token, _ = issue_token(auth, user_id=user_id, token_type="access", token_version=0, lifetime=timedelta(hours=hours))
    return token


def write_tokens(stack: Stack, teams: int, path: Path, hours: float = 2) -> None:
    """Users straight into the database (no bcrypt round trips under load), with access tokens from the stack's key."""
    auth = AuthSettings.model_validate({"secret_key": stack.env["SECRET_KEY"]})
    tag = f"soak{int(time.time())}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        accountant_id = _insert_user(conn, "accountant", None, f"acct-{tag}")
        members = []
        for n in range(teams):
            manager_id = _insert_user(conn, "manager", None, f"mgr{n}-{tag}")
            employee_id = _insert_user(conn, "employee", manager_id, f"emp{n}-{tag}")
            members.append((manager_id, employee_id))

    def actor(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "token": _token(auth, user_id, hours)}

    document = {
        "accountant": actor(accountant_id),
        "teams": [{"manager": actor(manager), "employee": actor(employee)} for manager, employee in members],
    }
    path.write_text(json.dumps(document), encoding="utf-8")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _temporal_pid(address: str) -> int | None:
    """The dev server's process (temporal_server does not hand it out): the one started with this port."""
    port = address.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"start-dev" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == port.encode():
                return int(proc.name)
    return None


def _machine_busy() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def _group(row: dict[str, str]) -> GroupStats:
    def number(key: str) -> float:
        value = row.get(key) or "0"
        return 0.0 if value == "N/A" else float(value)

    return GroupStats(
        requests=int(number("Request Count")),
        failures=int(number("Failure Count")),
        per_second=round(number("Requests/s"), 2),
        p50_ms=number("50%"),
        p95_ms=number("95%"),
        p99_ms=number("99%"),
        max_ms=round(number("Max Response Time"), 1),
    )


def parse_stats(prefix: Path, report: SoakReport) -> None:
    """Fill the report from Locust's `<prefix>_stats.csv` (and the failures file)."""
    with Path(f"{prefix}_stats.csv").open(newline="", encoding="utf-8") as stats_file:
        for row in csv.DictReader(stats_file):
            kind, name = row["Type"], row["Name"]
            stats = _group(row)
            if name == "Aggregated":
                report.requests, report.failures, report.per_second = stats.requests, stats.failures, stats.per_second
            elif kind == "GROUP":
                setattr(report, name, stats)
            elif name.endswith("(409, retried)"):
                report.approve_retries = stats.requests
            else:
                report.endpoints[name if name.startswith(kind) else f"{kind} {name}"] = stats
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with failures.open(newline="", encoding="utf-8") as failures_file:
            report.failure_samples = [
                f"{row['Method']} {row['Name']}: {row['Error']} x{row['Occurrences']}"
                for row in csv.DictReader(failures_file)
            ][:10]


def run_locust(
    stack: Stack, work: Path, users: int, seconds: int, spawn_rate: float, classes: list[str] | None = None
) -> tuple[Path, int, float]:
    """Run the headless soak; returns the CSV prefix, the exit code and Locust's own CPU seconds."""
    tokens = work / "soak-tokens.json"
    write_tokens(stack, teams=max(1, users // 5), path=tokens)
    prefix = work / "soak"
    env = {**os.environ, "SOAK_TOKENS": str(tokens), "PYTHONPATH": str(PROJECT_ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (work / "locust.log").open("ab") as log:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("locust")),
                "--headless",
                "-f",
                str(LOCUSTFILE),
                "-u",
                str(users),
                "-r",
                str(spawn_rate),
                "-t",
                f"{seconds}s",
                "--stop-timeout",
                "15",
                "--host",
                stack.api_url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
                *(classes or []),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=log,
            timeout=seconds + 180,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return prefix, result.returncode, locust_cpu


def run_soak(
    users: int = 50,
    seconds: int = 300,
    spawn_rate: float = 10,
    work: Path | None = None,
    classes: list[str] | None = None,
) -> SoakReport:
    """`classes` limits the mix to some of the locustfile's user classes (Reader, Creator, Approver)."""
    report = SoakReport(users=users, seconds=seconds, spawn_rate=spawn_rate)
    with tempfile.TemporaryDirectory(prefix="finance-soak-") as scratch:
        folder = work or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with (
            scratch_database(admin_database_url(), "finance_soak") as database_url,
            temporal_server(folder) as address,
            running_stack(database_url, address, folder) as stack,
        ):
            report.started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            temporal_pid = _temporal_pid(address)
            api_cpu, worker_cpu = _cpu_seconds(stack.api.pid), _cpu_seconds(stack.worker.pid)
            temporal_cpu = _cpu_seconds(temporal_pid) if temporal_pid else 0.0
            busy, total = _machine_busy()
            started = time.monotonic()
            prefix, report.locust_exit_code, locust_cpu = run_locust(stack, folder, users, seconds, spawn_rate, classes)
            wall = time.monotonic() - started
            busy_after, total_after = _machine_busy()
            report.cpu_percent = {
                "api": round(100 * (_cpu_seconds(stack.api.pid) - api_cpu) / wall, 1),
                "worker": round(100 * (_cpu_seconds(stack.worker.pid) - worker_cpu) / wall, 1),
                "temporal": round(100 * (_cpu_seconds(temporal_pid) - temporal_cpu) / wall, 1) if temporal_pid else -1,
                "locust": round(100 * locust_cpu / wall, 1),
                "machine (all cores)": round(100 * (busy_after - busy) / max(total_after - total, 1.0), 1),
            }
            parse_stats(prefix, report)
            with psycopg.connect(database_url) as conn:
                counts = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'approved') FROM entries"
                ).fetchone()
            if counts:
                report.entries_created, report.approved_entries = int(counts[0]), int(counts[1])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--append", type=Path, help="append the result as a Markdown section to this file")
    parser.add_argument(
        "--only", nargs="+", metavar="CLASS", help="run only these user classes (Reader Creator Approver)"
    )
    parser.add_argument("--keep", type=Path, help="keep the logs and CSV files in this folder")
    args = parser.parse_args(argv)
    report = run_soak(args.users, args.seconds, args.spawn_rate, work=args.keep, classes=args.only)
    command = f"python -m tests.reliability.soak --seconds {args.seconds} --users {args.users}"
    if args.spawn_rate != 10:
        command += f" --spawn-rate {args.spawn_rate:g}"
    if args.only:
        command += " --only " + " ".join(args.only)
    print(json.dumps(asdict(report), indent=2))
    section = report.markdown(command)
    print(section)
    if args.append:
        with args.append.open("a", encoding="utf-8") as doc:
            doc.write("\n" + section)
    for problem in report.problems():
        print("PROBLEM:", problem)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
