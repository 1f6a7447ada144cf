"""The compose health checks of the API and the worker, run as Docker would run them (`python -c ...` inside the
container) against real processes: each passes when its service works and fails when it does not."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from core.devstack import port_in_use
from core.settings import PROJECT_ROOT
from tests.bench.stack import temporal_server
from tests.services import free_port


def _probe(service: str, port: int) -> subprocess.CompletedProcess[str]:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    command = compose["services"][service]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    published = {"api": "8000", "worker": compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"]}
    code = command[3].replace(f"127.0.0.1:{published[service]}", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


async def test_the_api_probe_passes_on_a_running_api_and_fails_without_one(api_url: str) -> None:
    # In a thread: the API is served by this test's event loop.
    assert (await asyncio.to_thread(_probe, "api", urlsplit(api_url).port or 80)).returncode == 0
    assert (await asyncio.to_thread(_probe, "api", free_port())).returncode != 0


def _wait(check, timeout: float, what: str, worker: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def test_the_worker_probe_passes_only_once_it_polls_temporal(database_url: str, tmp_path: Path) -> None:
    temporal_port, metrics_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SMTP_", "AWS_", "S3_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",  # nothing there yet
        TEMPORAL_TASK_QUEUE_PREFIX=f"probe-{secrets.token_hex(4)}",
        WORKER_METRICS_PORT=str(metrics_port),
        WORKER_BUSINESS_METRICS_PORT="0",  # only the SDK metrics are probed here
        BACKUP_SCHEDULES_ENABLED="false",
        REPORT_DEFAULT_SCHEDULES="false",
        STORAGE_DIR=str(tmp_path / "storage"),
        MAIL_DIR=str(tmp_path / "mail"),
    )
    log = tmp_path / "worker.log"
    with log.open("ab") as output:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=output, stderr=output
        )
    try:
        # Alive and serving its metrics, but not connected: unhealthy.
        _wait(lambda: port_in_use(metrics_port), 30, "the metrics port", worker, log)
        assert _probe("worker", metrics_port).returncode != 0
        with temporal_server(tmp_path, port=temporal_port):
            _wait(lambda: _probe("worker", metrics_port).returncode == 0, 60, "a healthy worker", worker, log)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
