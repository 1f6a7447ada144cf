"""The system as `make bench` measures it: PostgreSQL, a Temporal dev server, the worker and the API,
each a real process on free ports (never the development ones)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg

from core.security import hash_password, issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from core.temporal import search_attribute_flags
from tests.services import TEMPORAL_CLI, admin_database_url, free_port, migrate, with_database
from workflows.contracts import SEARCH_ATTRIBUTES

BENCH_DATABASE = "finance_bench"


@dataclass
class Stack:
    api_url: str
    temporal_address: str
    database_url: str
    env: dict[str, str]
    worker: subprocess.Popen[bytes]
    api: subprocess.Popen[bytes]


def bench_database_url() -> str:
    """A persistent database for benchmarks, so the million-entry data set is built once."""
    configured = os.environ.get("BENCH_DATABASE_URL")
    if configured:
        return configured
    admin = admin_database_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return with_database(admin, BENCH_DATABASE)


def wait_for_health(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def temporal_server(log_dir: Path, db_file: Path | None = None, port: int | None = None) -> Iterator[str]:
    """A Temporal dev server; with `db_file` it persists (and can be restarted on the same port and file)."""
    port = port or free_port()
    persistence = ["--db-filename", str(db_file)] if db_file else []
    log = (log_dir / "bench-temporal.log").open("ab")
    process = subprocess.Popen(
        [
            str(TEMPORAL_CLI),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            *persistence,
            *search_attribute_flags(SEARCH_ATTRIBUTES),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check = subprocess.run(
                [str(TEMPORAL_CLI), "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"],
                capture_output=True,
            )
            if check.returncode == 0:
                break
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process)


def start_worker(
    env: dict[str, str], log_dir: Path, queues: str | None = None, log_name: str = "bench-worker.log", nice: int = 0
) -> subprocess.Popen[bytes]:
    """`worker.py` in a process of its own; `queues` (`approvals`, `reports,backups`) passes `--queues`; `nice`
    lowers its CPU priority (and its children's: pg_dump), as a host shared between queues would."""
    log = (log_dir / log_name).open("ab")
    arguments = ["--queues", queues] if queues else []
    niceness = ["nice", "-n", str(nice)] if nice else []  # nice execs the worker: the pid is the worker's
    return subprocess.Popen(
        [*niceness, sys.executable, "worker.py", *arguments], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log
    )


def start_api(
    env: dict[str, str], log_dir: Path, port: int, log_name: str = "bench-api.log"
) -> subprocess.Popen[bytes]:
    """The API under uvicorn on 127.0.0.1:`port` (one process, as each replica of a deployment runs it)."""
    log = (log_dir / log_name).open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )


def stack_env(
    database_url: str, temporal_address: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment every process of one benchmarked system shares (its own task queues, secret and folders)."""
    env = dict(os.environ)
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_TASK_QUEUE_PREFIX=f"bench-{secrets.token_hex(4)}",
        WORKER_METRICS_PORT=str(free_port()),
        WORKER_BUSINESS_METRICS_PORT=str(free_port()),
        STORAGE_DIR=str(log_dir / "storage"),
        MAIL_DIR=str(log_dir / "mail"),
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        LOGIN_RATE_PER_MINUTE="100000",
        BACKUP_SCHEDULES_ENABLED="false",
        REPORT_DEFAULT_SCHEDULES="false",
        # A fixed pool, sized for the approval run's 50 clients: an overflow connection is closed when it is given
        # back, and 20 + 20 overflow had API and worker start a server process for every other approval
        # (docs/benchmarks.md). Past 30 busy connections a transaction waits for one to come back.
        DATABASE_POOL_SIZE="30",
        DATABASE_MAX_OVERFLOW="0",
    )
    env.update(extra_env or {})
    for key in ("SMTP_HOST", "AWS_BUCKET_NAME", "S3_BUCKET"):
        if key not in (extra_env or {}):
            env.pop(key, None)
    return env


@contextlib.contextmanager
def running_stack(database_url: str, temporal_address: str, log_dir: Path, extra_env: dict[str, str] | None = None):
    migrate(database_url)
    api_port = free_port()
    env = stack_env(database_url, temporal_address, log_dir, extra_env)
    worker = start_worker(env, log_dir)
    api = start_api(env, log_dir, api_port)
    try:
        wait_for_health(f"http://127.0.0.1:{api_port}/health")
        stack = Stack(f"http://127.0.0.1:{api_port}", temporal_address, database_url, env, worker, api)
        yield stack
    finally:
        stop_process(api)
        stop_process(stack.worker if "stack" in locals() else worker)  # a fault test may have replaced the worker


def stack_user(stack: Stack, role: str, manager_id: int | None) -> tuple[int, dict[str, str]]:
    """A user of `role` in the stack's database, and the headers of an access token for them."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, username, full_name, password_hash, role, manager_id, is_active, is_verified, "
            "token_version) VALUES (%s, %s, %s, %s, %s, %s, true, true, 0) RETURNING id",
            (f"{role}-{time.monotonic_ns()}@example.com", f"{role}{time.monotonic_ns()}", role.title(),
             hash_password("correct-horse-battery", 4), role, manager_id),
        ).fetchone()  # fmt: skip
    assert row is not None
    auth = AuthSettings(secret_key=stack.env["SECRET_KEY"], bcrypt_rounds=4)
    token, _ = issue_token(auth, user_id=row[0], token_type="access", token_version=0, lifetime=timedelta(minutes=15))
    return row[0], {"Authorization": f"Bearer {token}"}
