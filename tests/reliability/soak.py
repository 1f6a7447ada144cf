"""The Locust soak: 50 users mixing reads, creates and approvals for 5 minutes, in one of two modes.

Self-contained (CI, and the default): the real stack on free ports (a scratch PostgreSQL database, a Temporal dev
server, the worker and one uvicorn API process), users inserted straight into the database with tokens minted from
the stack's key.

    python -m tests.reliability.soak [--users 50] [--seconds 300] [--spawn-rate 10] [--append docs/reliability.md]

Against a running system (`make dev`, or any deployment): the soak signs in as a superadmin, creates its teams
through the API (`POST /users`, a fresh set each run, tagged `soak<time>`), signs each user in for a token and
counts what it created through the API afterwards. The credentials come from the flags or the environment
(`SOAK_ADMIN_EMAIL` / `SOAK_ADMIN_PASSWORD`, else `FIRST_SUPERADMIN_EMAIL` / `FIRST_SUPERADMIN_PASSWORD`).

    python -m tests.reliability.soak --host http://127.0.0.1:8000 --admin-email root@example.com

Locust runs as a subprocess (gevent never enters the caller's process); its final statistics give requests per
second, failures and p50/p95/p99 for reads (GET) and writes separately. The suite runs a 30-second variant
(tests/reliability/test_soak.py). Goals: zero failures, read p95 under 300 ms.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from core.security import issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.approvals import _insert_user
from tests.bench.stack import Stack, running_stack, temporal_server
from tests.services import admin_database_url, scratch_database

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
READ_P95_GOAL_MS = 300.0
SELF_CONTAINED = "self-contained stack"
API = "/api/v1"


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
    host: str = ""  # the system under load: "self-contained stack", or the URL given with --host
    approve_retries: int = 0
    approved_entries: int = 0
    entries_created: int = 0
    counts_exact: bool = True  # false when an API count was capped (1,000 per list): the figures are lower bounds
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
        at_least = "" if self.counts_exact else "at least "
        lines = [
            f"### Soak {self.started_at}",
            "",
            f"Command: `{command}`; machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}; "
            + (
                "one uvicorn API process, one worker, Temporal dev server, PostgreSQL on 127.0.0.1."
                if self.host == SELF_CONTAINED
                else f"against {self.host}."
            ),
            "",
            f"{self.users} users (spawn rate {self.spawn_rate}/s) for {self.seconds} s: {self.requests} requests, "
            f"{self.per_second} requests/s, **{self.failures} failures**; {at_least}{self.entries_created} expenses "
            f"created, {at_least}{self.approved_entries} approved through the workflow ({self.approve_retries} approve "
            "calls answered "
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


def write_tokens(stack: Stack, teams: int, path: Path, hours: float = 2) -> list[int]:
    """Users straight into the database (no bcrypt round trips under load), with access tokens from the stack's key.
    Returns the employees' ids (the owners of everything the soak files)."""
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
    return [employee for _, employee in members]


# --- against a running system (--host) ----------------------------------------------------------------


class SoakSetupError(RuntimeError):
    """The running system refused what the soak needs before any load (sign-in, creating its users)."""


def _post_retrying(http: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """POST, waiting out the login throttle (429 with Retry-After): signing in 21 users from one address may touch
    the per-address limit of a default configuration."""
    for _ in range(10):
        response = http.post(url, **kwargs)
        if response.status_code != 429:
            return response
        time.sleep(min(float(response.headers.get("Retry-After", "5")), 60.0))
    return response


def _sign_in(http: httpx.Client, login: str, password: str) -> tuple[str, int]:
    """An access token and its lifetime in seconds."""
    response = _post_retrying(http, f"{API}/auth/login", json={"username": login, "password": password})
    if response.status_code != 200:
        raise SoakSetupError(f"signing in as {login} answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    if body.get("otp_required"):
        raise SoakSetupError(f"{login} has two-factor sign-in: use an account without it for the soak")
    return str(body["access_token"]), int(body["expires_in"])


def _token_lifetime_left(token: str) -> float:
    """Seconds until the token's `exp` (read, not verified: the server verifies it)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"]) - time.time()


def provision_through_api(host: str, admin_email: str, admin_password: str, teams: int, path: Path) -> list[int]:
    """Sign in as the superadmin, create an accountant and `teams` teams (a manager under the superadmin, an
    employee under the manager) through `POST /users`, sign each in and write the tokens file; returns the
    employees' ids."""
    tag = f"soak{int(time.time())}"
    password = secrets.token_urlsafe(18)
    with httpx.Client(base_url=host, timeout=30) as http:
        admin_token, _ = _sign_in(http, admin_email, admin_password)
        admin = {"Authorization": f"Bearer {admin_token}"}
        me = http.get(f"{API}/users/me", headers=admin)
        if me.status_code != 200:
            raise SoakSetupError(f"GET /users/me as {admin_email} answered {me.status_code}: {me.text[:300]}")
        admin_id = int(me.json()["id"])

        def create(role: str, name: str, manager_id: int) -> dict[str, Any]:
            body = {
                "email": f"{name}-{tag}@soak.example.com",
                "username": f"{name}-{tag}",
                "full_name": f"Soak {name}",
                "password": password,
                "role": role,
                "manager_id": manager_id,
            }
            created = http.post(f"{API}/users/", json=body, headers=admin)
            if created.status_code != 201:
                raise SoakSetupError(f"creating {role} {name} answered {created.status_code}: {created.text[:300]}")
            token, _ = _sign_in(http, body["username"], password)
            return {"id": int(created.json()["id"]), "token": token}

        accountant = create("accountant", "acct", admin_id)
        members = []
        for n in range(teams):
            manager = create("manager", f"mgr{n}", admin_id)
            members.append({"manager": manager, "employee": create("employee", f"emp{n}", manager["id"])})
    document = {"accountant": accountant, "teams": members, "admin": {"id": admin_id, "token": admin_token}}
    path.write_text(json.dumps(document), encoding="utf-8")
    return [team["employee"]["id"] for team in members]


def count_through_api(host: str, admin_token: str, owners: list[int], report: SoakReport) -> None:
    """What the soak's employees own, as the API lists it (no database access against a running system)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    created = approved = 0
    exact = True
    with httpx.Client(base_url=host, timeout=30) as http:
        for owner in owners:
            for status in (None, "approved"):
                params: dict[str, Any] = {"owner_id": owner, "limit": 1}
                if status:
                    params["status"] = status
                page = http.get(f"{API}/expenses/", params=params, headers=headers)
                page.raise_for_status()
                body = page.json()
                exact = exact and bool(body["total_exact"])
                if status:
                    approved += int(body["total"])
                else:
                    created += int(body["total"])
    report.entries_created, report.approved_entries, report.counts_exact = created, approved, exact


def run_soak_against(
    host: str,
    admin_email: str,
    admin_password: str,
    users: int = 50,
    seconds: int = 300,
    spawn_rate: float = 10,
    work: Path | None = None,
    classes: list[str] | None = None,
) -> SoakReport:
    """The soak against a system that is already running (`make dev`): only Locust and the machine's CPU are
    measured here, as the processes under load are not this script's children."""
    report = SoakReport(users=users, seconds=seconds, spawn_rate=spawn_rate, host=host.rstrip("/"))
    with tempfile.TemporaryDirectory(prefix="finance-soak-") as scratch:
        folder = work or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        tokens = folder / "soak-tokens.json"
        owners = provision_through_api(report.host, admin_email, admin_password, max(1, users // 5), tokens)
        document = json.loads(tokens.read_text(encoding="utf-8"))
        # Tokens are the API's ordinary access tokens (ACCESS_TOKEN_EXPIRE_MINUTES, 15 by default): a run that
        # outlasts them would turn into a stream of 401s, so refuse it up front.
        left = _token_lifetime_left(document["admin"]["token"])
        if seconds + 60 > left:
            raise SoakSetupError(
                f"the API's access tokens expire in {left:.0f} s: run at most {max(0, left - 60):.0f} s, "
                "or raise ACCESS_TOKEN_EXPIRE_MINUTES on the system under test"
            )
        report.started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        stats, wall = _timed_locust(report, report.host, tokens, folder, users, seconds, spawn_rate, classes)
        parse_stats(stats, report)
        count_through_api(report.host, document["admin"]["token"], owners, report)
        retire_through_api(report.host, document)
    return report


def retire_through_api(host: str, document: dict[str, Any]) -> None:
    """Deactivate the soak's users (`DELETE /users/{id}`): their entries stay, as in any system, but nobody can sign
    in with them and they leave the lists of active users."""
    headers = {"Authorization": f"Bearer {document['admin']['token']}"}
    people = [document["accountant"]] + [team[role] for team in document["teams"] for role in ("employee", "manager")]
    with httpx.Client(base_url=host, timeout=30) as http:
        for person in people:
            http.delete(f"{API}/users/{person['id']}", headers=headers).raise_for_status()


# --- measuring ------------------------------------------------------------------------------------------


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


def _group(row: dict[str, Any]) -> GroupStats:
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


def _final_or_csv(prefix: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Locust's statistics at quit (the locustfile writes `<prefix>_final.json` once every user has stopped), or,
    from an older run, its `_stats.csv` and `_failures.csv` (rewritten once a second, so missing the last moments)."""
    final = Path(f"{prefix}_final.json")
    if final.exists():
        document = json.loads(final.read_text(encoding="utf-8"))
        return list(document["stats"]), list(document["failures"])
    with Path(f"{prefix}_stats.csv").open(newline="", encoding="utf-8") as stats_file:
        rows: list[dict[str, Any]] = list(csv.DictReader(stats_file))
    failures: list[dict[str, Any]] = []
    failures_path = Path(f"{prefix}_failures.csv")
    if failures_path.exists():
        with failures_path.open(newline="", encoding="utf-8") as failures_file:
            failures = list(csv.DictReader(failures_file))
    return rows, failures


def parse_stats(prefix: Path, report: SoakReport) -> None:
    """Fill the report from Locust's final statistics (see `_final_or_csv`)."""
    rows, failures = _final_or_csv(prefix)
    for row in rows:
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
    report.failure_samples = [f"{f['Method']} {f['Name']}: {f['Error']} x{f['Occurrences']}" for f in failures][:10]


def _timed_locust(report: SoakReport, host: str, tokens: Path, work: Path, *args: Any) -> tuple[Path, float]:
    """Run Locust (`run_locust`'s arguments after `work`), record its exit code and the CPU it and the whole
    machine used; returns its stats prefix and the wall time."""
    busy, total = _machine_busy()
    started = time.monotonic()
    stats, report.locust_exit_code, locust_cpu = run_locust(host, tokens, work, *args)
    wall = time.monotonic() - started
    busy_after, total_after = _machine_busy()
    report.cpu_percent = {
        "locust": round(100 * locust_cpu / wall, 1),
        "machine (all cores)": round(100 * (busy_after - busy) / max(total_after - total, 1.0), 1),
    }
    return stats, wall


def run_locust(
    host: str,
    tokens: Path,
    work: Path,
    users: int,
    seconds: int,
    spawn_rate: float,
    classes: list[str] | None = None,
) -> tuple[Path, int, float]:
    """Run the headless soak; returns the statistics prefix, the exit code and Locust's own CPU seconds.

    `--stop-timeout` lets every user finish the task it is in when the time is up (an approval's create, submit and
    approve), and the final statistics are written after that, so Locust counts every request the system served.
    """
    prefix = work / "soak"
    env = {
        **os.environ,
        "SOAK_TOKENS": str(tokens),
        "SOAK_FINAL_STATS": f"{prefix}_final.json",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
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
                host,
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
    report = SoakReport(users=users, seconds=seconds, spawn_rate=spawn_rate, host=SELF_CONTAINED)
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
            tokens = folder / "soak-tokens.json"
            write_tokens(stack, teams=max(1, users // 5), path=tokens)
            prefix, wall = _timed_locust(report, stack.api_url, tokens, folder, users, seconds, spawn_rate, classes)
            report.cpu_percent = {
                "api": round(100 * (_cpu_seconds(stack.api.pid) - api_cpu) / wall, 1),
                "worker": round(100 * (_cpu_seconds(stack.worker.pid) - worker_cpu) / wall, 1),
                "temporal": round(100 * (_cpu_seconds(temporal_pid) - temporal_cpu) / wall, 1) if temporal_pid else -1,
                **report.cpu_percent,
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
    parser.add_argument(
        "--host", help="soak a running system (make dev: http://127.0.0.1:8000) instead of starting a stack"
    )
    parser.add_argument(
        "--admin-email",
        default=os.environ.get("SOAK_ADMIN_EMAIL") or os.environ.get("FIRST_SUPERADMIN_EMAIL"),
        help="with --host: a superadmin's email or username (env SOAK_ADMIN_EMAIL, else FIRST_SUPERADMIN_EMAIL)",
    )
    parser.add_argument(
        "--admin-password",
        default=os.environ.get("SOAK_ADMIN_PASSWORD") or os.environ.get("FIRST_SUPERADMIN_PASSWORD"),
        help="with --host: their password (better in env SOAK_ADMIN_PASSWORD, else FIRST_SUPERADMIN_PASSWORD)",
    )
    args = parser.parse_args(argv)
    if args.host:
        if not (args.admin_email and args.admin_password):
            parser.error("--host needs a superadmin: --admin-email/--admin-password or SOAK_ADMIN_EMAIL/_PASSWORD")
        try:
            report = run_soak_against(
                args.host,
                args.admin_email,
                args.admin_password,
                args.users,
                args.seconds,
                args.spawn_rate,
                work=args.keep,
                classes=args.only,
            )
        except (SoakSetupError, httpx.HTTPError) as error:
            print(f"soak setup failed against {args.host}: {error}", file=sys.stderr)
            return 2
    else:
        report = run_soak(args.users, args.seconds, args.spawn_rate, work=args.keep, classes=args.only)
    command = f"python -m tests.reliability.soak --seconds {args.seconds} --users {args.users}"
    if args.host:
        command += f" --host {args.host}"
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
