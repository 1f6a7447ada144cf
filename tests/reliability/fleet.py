"""Several API and worker processes against one Temporal server and one PostgreSQL database, as a deployment that
has grown past one machine runs them: N uvicorn API processes on distinct localhost ports and M `worker.py`
processes, each started, stopped, SIGKILLed and restarted on its own; and a small client that spreads requests over
the APIs and fails over to the next one when an API refuses the connection (a load balancer's health check, in
miniature).

The fault run (tests/reliability/faults.py) drives it; one API and one worker is the stack the benchmarks measure
(tests/bench/stack.py), with its settings but for the ones `fleet_env` names (a small sign-in limit, a policy folder
of the run's own, the sample exchange rates, a pool sized by the number of processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from core.security import hash_password, issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.approvals import Actor, Answer
from tests.bench.stack import Stack, stack_env
from tests.services import free_port, migrate

# The login throttle every process enforces (LOGIN_RATE_PER_MINUTE): small, so the run can prove it holds in total
# across the API processes; the run itself signs nobody in (its tokens are minted).
LOGIN_LIMIT_PER_MINUTE = 10
PASSWORD = "fleet-password-1"
SAMPLE_RATES = (PROJECT_ROOT / "domain" / "fx" / "samples" / "eurofxref-hist-90d.xml").as_uri()


@dataclass
class Member:
    """One process of the fleet: how to start it, its own settings and log, and how to tell it is ready."""

    name: str  # "api1", "worker2"
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str  # answers 200 once the process serves (an API's /health, a worker's business metrics)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    _terminated: bool = False

    def start(self) -> None:
        """Start (or restart) the process; returns at once (`wait_ready` waits for it to serve)."""
        log = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=log)
        self._terminated = False
        log.close()  # the child holds its own descriptor
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, in-flight work and open connections die with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def terminate(self) -> None:
        """SIGTERM, once (a second one makes uvicorn exit without finishing its requests)."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> None:
        """SIGTERM and wait for the process to end (SIGKILL after 30 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.ready_url, timeout=1).status_code == 200
        return False

    async def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until the process serves (raises if it died or took longer than `timeout`)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} (log: {self.log})")
            if await asyncio.to_thread(self.answers):
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {self.ready_url} within {timeout:.0f} s (log: {self.log})")


def fleet_env(
    database_url: str, temporal_address: str, work: Path, processes: int, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The settings every process shares (the bench stack's, tests/bench/stack.py), with the pool sized so that the
    processes together stay within 60 connections, and a policy folder of the run's own (the run edits it)."""
    policy_dir = work / "policies"
    shutil.rmtree(policy_dir, ignore_errors=True)  # a kept folder may hold an earlier run's edit
    shutil.copytree(PROJECT_ROOT / "policies", policy_dir)
    own = {
        "TEMPORAL_TASK_QUEUE_PREFIX": f"fleet-{secrets.token_hex(4)}",
        "POLICY_DIR": str(policy_dir),
        "LOGIN_RATE_PER_MINUTE": str(LOGIN_LIMIT_PER_MINUTE),
        # A fixed pool (an overflow connection is closed when given back: docs/benchmarks.md): 30 for one API and
        # one worker as in the benchmarks, less each when there are more, for the server's 100 connections.
        "DATABASE_POOL_SIZE": str(max(10, 60 // processes)),
        # The exchange rates the workers import at start come from the shipped sample, never from the internet.
        "FX_RATES_URL": SAMPLE_RATES,
        "FX_RATES_HISTORY_URL": SAMPLE_RATES,
    }
    return stack_env(database_url, temporal_address, work, own | (extra_env or {}))


@dataclass
class Fleet:
    database_url: str
    temporal_address: str
    env: dict[str, str]
    apis: list[Member] = field(default_factory=list)
    workers: list[Member] = field(default_factory=list)

    @property
    def api_urls(self) -> list[str]:
        return [member.ready_url.removesuffix("/health") for member in self.apis]

    @property
    def members(self) -> list[Member]:
        return [*self.apis, *self.workers]

    def as_stack(self) -> Stack:
        """The benchmarks' view of the fleet, for their helpers (they read its database URL and key): the first
        API and worker stand for all."""
        api, worker = self.apis[0], self.workers[0]
        assert api.process is not None and worker.process is not None
        return Stack(self.api_urls[0], self.temporal_address, self.database_url, self.env, worker.process, api.process)

    def user(self, role: str, manager_id: int | None, tag: str) -> Actor:
        """A user of `role` stored in the database (password PASSWORD), with an access token for two hours."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO users (email, username, full_name, password_hash, role, manager_id, is_active, "
                "is_verified, otp_enabled, token_version) VALUES (%s, %s, %s, %s, %s, %s, true, true, false, 0) "
                "RETURNING id",
                (f"{tag}@fleet.example", tag, f"Fleet {tag}", hash_password(PASSWORD, 4), role, manager_id),
            ).fetchone()
        assert row is not None
        auth = AuthSettings(secret_key=self.env["SECRET_KEY"])
        token, _ = issue_token(auth, user_id=row[0], token_type="access", token_version=0, lifetime=timedelta(hours=2))
        return Actor(int(row[0]), {"Authorization": f"Bearer {token}"})


def _api(index: int, env: dict[str, str], work: Path) -> Member:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "api.app:app_factory", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Member(f"api{index}", argv, env, work / f"api{index}.log", f"http://127.0.0.1:{port}/health")


def _worker(index: int, env: dict[str, str], work: Path) -> Member:
    # Each worker serves its metrics on ports of its own (two processes cannot share one).
    business_port = free_port()
    own = env | {"WORKER_METRICS_PORT": str(free_port()), "WORKER_BUSINESS_METRICS_PORT": str(business_port)}
    argv = [sys.executable, "worker.py"]
    return Member(f"worker{index}", argv, own, work / f"worker{index}.log", f"http://127.0.0.1:{business_port}/metrics")


@contextlib.asynccontextmanager
async def running_fleet(
    database_url: str,
    temporal_address: str,
    work: Path,
    apis: int = 1,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """Migrate the database, start `apis` API and `workers` worker processes and wait until each serves; stop them
    all (SIGTERM) at the end, whatever was killed or restarted meanwhile."""
    await asyncio.to_thread(migrate, database_url)
    env = fleet_env(database_url, temporal_address, work, apis + workers, extra_env)
    fleet = Fleet(database_url, temporal_address, env)
    fleet.workers = [_worker(n + 1, env, work) for n in range(workers)]
    fleet.apis = [_api(n + 1, env, work) for n in range(apis)]
    try:
        for member in fleet.members:
            member.start()
        await asyncio.gather(*(member.wait_ready() for member in fleet.members))
        yield fleet
    finally:
        await asyncio.to_thread(stop_all, fleet.members)


def stop_all(members: list[Member]) -> None:
    """SIGTERM to every process at once, then wait for each (a worker drains its activities first)."""
    for member in members:
        member.terminate()
    for member in members:
        member.stop()


class FleetClient:
    """Requests spread over the API processes: to the API asked for (`prefer`, an index), else the next in turn;
    when one refuses the connection (down, or restarting) the same request goes to the next, and only when every
    API refuses does the error reach the caller. Any other failure (an answer lost as its process died) is the
    caller's to handle: the request may have taken effect, so resending it is not this client's decision."""

    def __init__(self, api_urls: list[str], timeout: float = 30) -> None:
        self.api_urls = api_urls
        self.http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=200))
        self._turn = 0
        self.failovers = 0  # requests sent to another API because the first refused the connection
        self.answers: dict[int, dict[int, int]] = {n: {} for n in range(len(api_urls))}  # API -> status -> count

    async def __aenter__(self) -> FleetClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    def api_of(self, response: httpx.Response) -> int:
        """Which API (index) gave this answer."""
        base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
        return self.api_urls.index(base)

    async def request(self, method: str, path: str, *, prefer: int | None = None, **kwargs: Any) -> httpx.Response:
        if prefer is None:
            prefer, self._turn = self._turn, self._turn + 1
        refused: httpx.ConnectError | None = None
        for step in range(len(self.api_urls)):
            index = (prefer + step) % len(self.api_urls)
            try:
                response = await self.http.request(method, self.api_urls[index] + path, **kwargs)
            except httpx.ConnectError as error:
                refused = error
                self.failovers += 1
                continue
            statuses = self.answers[index]
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            return response
        assert refused is not None
        raise refused

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)


class FleetPoster:
    """The benchmarks' posting interface (tests/bench/approvals.Http) over the fleet client, to one preferred API."""

    def __init__(self, client: FleetClient, prefer: int | None = None) -> None:
        self.client = client
        self.prefer = prefer

    async def post(self, path: str, body: object, headers: dict[str, str]) -> Answer:
        response = await self.client.post(path, json=body, headers=headers, prefer=self.prefer)
        return Answer(response.status_code, response.text)
