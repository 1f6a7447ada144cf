"""Approval throughput and latency over HTTP, and the bare-engine floor on the same Temporal server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import aiohttp
import httpx
import psycopg

from core.security import hash_password, issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.floor import WARM_UP  # our runs warm up exactly as the floor does
from tests.bench.generate import CURRENCIES, store_recent_rates
from tests.bench.stack import Stack

# The project's own floor (the engine alone, same shape as the one the earlier figures were measured with),
# run as a separate process so its client and worker share nothing with the system under test.
FLOOR_SCRIPT = PROJECT_ROOT / "tests" / "bench" / "floor.py"


@dataclass
class Actor:
    id: int
    headers: dict[str, str]


def _insert_user(conn: psycopg.Connection, role: str, manager_id: int | None, tag: str) -> int:
    row = conn.execute(
        "INSERT INTO users (email, username, full_name, password_hash, role, manager_id, is_active, is_verified,"
        " otp_enabled, token_version) VALUES (%s, %s, %s, %s, %s, %s, true, true, false, 0) RETURNING id",
        (f"{tag}@bench.example", tag, f"Bench {tag}", hash_password("bench-password-1", 4), role, manager_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _insert_team_budget(conn: psycopg.Connection, manager_id: int, tag: str) -> None:
    """A budget for the team this month (policy warn, never reached): every submit charges it under its period's
    lock, and every approval books the spend, as in an installation that keeps budgets."""
    month = date.today().replace(day=1)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    row = conn.execute(
        "INSERT INTO budgets (name, team_manager_id, period_kind, starts_on, policy, currency, thresholds, owner_id, "
        "created_by_id) VALUES (%s, %s, 'month', %s, 'warn', 'USD', '{80,100}', %s, %s) RETURNING id",
        (f"Bench {tag}", manager_id, month, manager_id, manager_id),
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount) VALUES (%s, %s, %s, 1000000000)",
        (row[0], month, following),
    )


def make_team(stack: Stack, tag: str) -> tuple[Actor, Actor]:
    """A manager and an employee reporting to them, with access tokens, and a budget for the team."""
    auth = AuthSettings(secret_key=stack.env["SECRET_KEY"])
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        manager_id = _insert_user(conn, "manager", None, f"mgr-{tag}")
        employee_id = _insert_user(conn, "employee", manager_id, f"emp-{tag}")
        store_recent_rates(conn)  # a third of the expenses are in euros or pounds
        _insert_team_budget(conn, manager_id, tag)

    def actor(user_id: int) -> Actor:
        token, _ = issue_token(auth, user_id=user_id, token_type="access", token_version=0, lifetime=timedelta(hours=2))
        return Actor(user_id, {"Authorization": f"Bearer {token}"})

    return actor(manager_id), actor(employee_id)


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


class Http(Protocol):
    async def post(self, path: str, body: object, headers: dict[str, str]) -> Answer: ...


class HttpxPoster:
    """Posts through an httpx client (the fault-injection run's, which also reads and probes)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, path: str, body: object, headers: dict[str, str]) -> Answer:
        response = await self.http.post(path, json=body, headers=headers)
        return Answer(response.status_code, response.text)


class AiohttpPoster:
    """The load generator's client. It shares the machine with the system it measures, and aiohttp spends about a
    third of httpx's CPU per request (docs/benchmarks.md), which leaves that CPU to the system under test."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, path: str, body: object, headers: dict[str, str]) -> Answer:
        async with self.session.post(path, json=body, headers=headers) as response:
            return Answer(response.status, await response.text())


@contextlib.asynccontextmanager
async def load_client(base_url: str, concurrency: int) -> AsyncIterator[AiohttpPoster]:
    connector = aiohttp.TCPConnector(limit=concurrency + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        yield AiohttpPoster(session)


# Vendors with no trigram in common to speak of: expenses close in amount (n and n + 1 differ by about 1%) never
# share one, so the duplicate check at submit runs on every expense and, as in most claims, finds nothing. (With one
# vendor for all, most submits were flagged with about three possible duplicates each: docs/benchmarks.md.)
VENDORS = (
    "Lufthansa", "Hilton", "Uber", "Deutsche Bahn", "Marriott", "Starbucks", "Amazon", "Hertz", "Delta", "Sixt",
    "Ikea", "Staples", "Avis", "Qantas", "Zoom", "Slack", "Dropbox", "FedEx", "Shell", "Aldi", "Costco", "Expedia",
    "Wework", "Notion",
)  # fmt: skip


def _expense(n: int) -> dict[str, str]:
    return {
        "amount": f"{100 + n % 900}.{n % 100:02d}",
        "currency": CURRENCIES[n % len(CURRENCIES)],  # a third in other currencies, their rate locked at submit
        "category": "travel",
        "description": f"bench expense {n}",
        "entry_date": date.today().isoformat(),
        "vendor": VENDORS[n % len(VENDORS)],
    }


def _ok(answer: Answer, what: str) -> Answer:
    if answer.status >= 400:
        raise RuntimeError(f"{what}: {answer.status} {answer.text}")
    return answer


async def _create_and_submit(http: Http, employee: Actor, n: int) -> int:
    created = _ok(await http.post("/api/v1/expenses/", _expense(n), employee.headers), "create")
    entry_id = int(json.loads(created.text)["id"])
    _ok(await http.post(f"/api/v1/expenses/{entry_id}/submit", None, employee.headers), "submit")
    return entry_id


async def _approve(http: Http, manager: Actor, entry_id: int) -> float:
    """Approve, retrying while the workflow has not yet opened its step; returns the successful call's seconds."""
    deadline = time.monotonic() + 180
    pause = 0.02
    last = ""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = await http.post(f"/api/v1/expenses/{entry_id}/approve", {}, manager.headers)
        elapsed = time.perf_counter() - started
        if response.status == 200:
            return elapsed
        if response.status not in (409, 503):
            raise RuntimeError(f"approve {entry_id}: {response.status} {response.text}")
        if response.status == 409 and '"status":"approved"' in response.text:
            return elapsed  # an earlier attempt won after its answer timed out (503): the approval stands
        last = f"{response.status} {response.text}"
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    raise RuntimeError(f"approve {entry_id} never succeeded; last answer {last}")


async def _wait_all_approved(stack: Stack, ids: list[int], limit_seconds: float = 600) -> None:
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM entries WHERE id = ANY(%s) AND status = 'approved'", (ids,)
            ).fetchone()
        if row and row[0] == len(ids):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("not every entry reached approved")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


async def approval_throughput(
    stack: Stack, count: int, concurrency: int, api_urls: Sequence[str] = ()
) -> dict[str, float]:
    """`count` expenses created, submitted and approved over HTTP by `concurrency` clients, after a warm-up. With
    `api_urls` (several API processes), client n talks to API n mod their number, as behind a load balancer."""
    manager, employee = make_team(stack, f"tp{int(time.time())}")
    gate = asyncio.Semaphore(concurrency)
    ids: list[int] = []
    urls = list(api_urls) or [stack.api_url]
    per_api = -(-concurrency // len(urls))

    async with contextlib.AsyncExitStack() as clients:
        posters = [await clients.enter_async_context(load_client(url, per_api)) for url in urls]

        async def one(n: int) -> None:
            async with gate:
                http = posters[n % len(posters)]
                entry_id = await _create_and_submit(http, employee, n)
                ids.append(entry_id)
                await _approve(http, manager, entry_id)

        await asyncio.gather(*(one(n) for n in range(min(WARM_UP, count))))  # warm-up
        ids.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        await _wait_all_approved(stack, ids)
        elapsed = time.perf_counter() - started
    return {
        "workflows": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 2),
    }


async def approve_latency(stack: Stack, count: int) -> dict[str, float]:
    """Serial approvals: the HTTP round trip of one approve (an Update that commits through an activity)."""
    manager, employee = make_team(stack, f"lat{int(time.time())}")
    latencies: list[float] = []
    async with load_client(stack.api_url, 1) as http:
        ids = [await _create_and_submit(http, employee, n) for n in range(count)]
        await asyncio.sleep(1.0)  # let every workflow open its first step
        for entry_id in ids:
            latencies.append(await _approve(http, manager, entry_id))
    return {
        "approvals": count,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
    }


def temporal_floor(address: str, count: int, concurrency: int, attempts: int = 3) -> dict[str, float]:
    """Run the floor script; retried because its process has been seen to crash (SIGSEGV) under load."""
    failure: subprocess.CalledProcessError | None = None
    for _ in range(attempts):
        try:
            output = subprocess.run(
                [sys.executable, str(FLOOR_SCRIPT), address, str(count), str(concurrency)],
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            ).stdout
        except subprocess.CalledProcessError as error:
            failure = error
            continue
        return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]
    assert failure is not None
    raise RuntimeError(
        f"the floor script failed {attempts} times; its last words: {failure.stderr[-2000:]}"
    ) from failure


def floor_script_path() -> Path:
    return FLOOR_SCRIPT
