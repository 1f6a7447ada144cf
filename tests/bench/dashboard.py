"""Dashboard latency over HTTP on the million-entry data set (`tests.bench.generate`).

`dashboard_latency(api_url, database_url, secret_key)` measures GET /dashboard/overview and /dashboard/kpi (default
parameters) for one viewer of each scope, serially, and returns p50/p95 per endpoint and viewer and over all viewers.
Run alone (it starts its own uvicorn against the bench database; Temporal is not needed for reads):

    python -m tests.bench.dashboard [--samples 100] [--entries 1000000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from core.security import issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.generate import bench_viewers, ensure_bench_dataset
from tests.services import free_port

ENDPOINTS = {
    "overview": "/api/v1/dashboard/overview",
    "kpi": "/api/v1/dashboard/kpi",
}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p * (len(ordered) - 1))))]


def dashboard_latency(
    api_url: str, database_url: str, secret_key: str, samples: int = 100, extra: dict[str, str] | None = None,
    endpoints: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """{"overview": {"p50_ms", "p95_ms", "<viewer> p95_ms", ...}, "kpi": {...}} from `samples` calls per viewer, of
    `endpoints` (name: path; the dashboard's by default)."""
    auth = AuthSettings(secret_key=secret_key, **(extra or {}))
    viewers = bench_viewers(database_url)
    tokens = {
        label: issue_token(auth, user_id=user_id, token_type="access", token_version=0, lifetime=timedelta(hours=2))[0]
        for label, user_id in viewers.items()
    }
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        for name, path in (endpoints or ENDPOINTS).items():
            everyone: list[float] = []
            figures: dict[str, float] = {}
            for label, token in tokens.items():
                headers = {"Authorization": f"Bearer {token}"}
                for _ in range(3):  # warm the connection pool and the caches
                    http.get(path, headers=headers).raise_for_status()
                timings = []
                for _ in range(samples):
                    started = time.perf_counter()
                    response = http.get(path, headers=headers)
                    timings.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                figures[f"{label} p50_ms"] = round(statistics.median(timings), 1)
                figures[f"{label} p95_ms"] = round(_percentile(timings, 0.95), 1)
                everyone += timings
            figures["p50_ms"] = round(statistics.median(everyone), 1)
            figures["p95_ms"] = round(_percentile(everyone, 0.95), 1)
            results[name] = figures
    return results


def _serve(database_url: str, secret_key: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ)
    env.update(APP_ENV="test", DATABASE_URL=database_url, SECRET_KEY=secret_key, LOG_LEVEL="WARNING")
    env.update(BACKUP_SCHEDULES_ENABLED="false", REPORT_DEFAULT_SCHEDULES="false", DATABASE_POOL_SIZE="10")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app_factory", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=PROJECT_ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"the API did not start; see {log}")


def main(argv: list[str] | None = None) -> int:
    from tests.bench.stack import bench_database_url

    parser = argparse.ArgumentParser(prog="python -m tests.bench.dashboard")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild a data set of another size")
    args = parser.parse_args(argv)
    database_url = bench_database_url()
    print(ensure_bench_dataset(database_url, args.entries, args.users, rebuild=args.rebuild), flush=True)
    secret_key = secrets.token_urlsafe(48)
    process, url = _serve(database_url, secret_key, Path("/tmp/bench-dashboard-api.log"))
    try:
        for endpoint, figures in dashboard_latency(url, database_url, secret_key, args.samples).items():
            print(endpoint)
            for key, value in figures.items():
                print(f"  {key}: {value}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
