"""`make dev` on embedded defaults: the system comes up, answers, stops cleanly, and keeps its data.

Runs the real dev runner (`python -m core.devstack`) with an embedded PostgreSQL and a Temporal dev server in a
temporary folder, on free ports, exactly as a new user's first `make dev` would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.settings import PROJECT_ROOT
from tests.services import TEMPORAL_CLI, free_port

BIN = Path(sys.executable).parent

STARTUP_SECONDS = 120


def dev_env(var: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a `make dev` in `var` on these ports, nothing configured: every default embedded."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_", "AWS_", "S3_", "SECRET_KEY"))
    }
    env.update(
        DEV_VAR_DIR=str(var),
        API_PORT=str(ports["api"]),
        TEMPORAL_PORT=str(ports["temporal"]),
        TEMPORAL_UI_PORT=str(ports["ui"]),
        WORKER_METRICS_PORT=str(ports["metrics"]),
        WORKER_BUSINESS_METRICS_PORT=str(ports.get("business_metrics") or free_port()),
    )
    return env


def _start(var: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = dev_env(var, ports) | {"BACKUP_SCHEDULES_ENABLED": "false", "REPORT_DEFAULT_SCHEDULES": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "core.devstack"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_ready(process: subprocess.Popen[str], url: str) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make dev exited early:\n{process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("make dev did not answer in time")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return output


def _from_a_second_shell(var: Path) -> dict[str, str]:
    """What another shell gets from `set -a; . var/dev.env; set +a`: enough for cli.py and alembic to work."""
    assert (var / "dev.env").stat().st_mode & 0o077 == 0, "the database URL is for its owner's eyes only"
    clean = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    script = f"set -a; . {var / 'dev.env'}; set +a; {sys.executable} cli.py create-superadmin && env"
    shell = subprocess.run(["bash", "-c", script], cwd=PROJECT_ROOT, env=clean, capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    assert "already exists" in shell.stdout  # it reached make dev's database
    current = subprocess.run(
        ["bash", "-c", f"set -a; . {var / 'dev.env'}; set +a; {BIN / 'alembic'} current"],
        cwd=PROJECT_ROOT,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert current.returncode == 0 and "(head)" in current.stdout, current.stdout + current.stderr
    return dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)


def _reset(var: Path, ports: dict[str, int], *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.devstack", "reset", *args],
        cwd=PROJECT_ROOT,
        env=dev_env(var, ports),
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_make_dev_runs_the_whole_system_and_keeps_data(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("api", "temporal", "ui", "metrics")}
    api = f"http://127.0.0.1:{ports['api']}"

    first = _start(tmp_path, ports)
    try:
        _wait_ready(first, f"{api}/health")
        assert httpx.get(f"{api}/health/ready", timeout=5).json()["checks"] == {"database": "ok", "temporal": "ok"}
        assert "swagger" in httpx.get(f"{api}/docs", timeout=5).text.lower()
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/", timeout=5).status_code == 200
        attributes = subprocess.run(
            [str(TEMPORAL_CLI), "operator", "search-attribute", "list", "--address", f"127.0.0.1:{ports['temporal']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name in ("EntryKind", "EntryId", "ApprovalStatus", "CurrentApprover", "AmountCents", "InvoiceNumber"):
            assert name in attributes
        second_shell = _from_a_second_shell(tmp_path)
        refused = _reset(tmp_path, ports, "--yes")
        assert refused.returncode != 0 and "make dev is running" in refused.stderr
        assert (tmp_path / "pgdata").is_dir()
    finally:
        output = _stop(first)
    assert first.returncode == 0, output
    assert "password:" in output, "the first run must print the generated superadmin password once"
    password = output.split("password:")[1].split()[0]
    assert f"Database     {second_shell['DATABASE_URL']}" in output, "make dev prints where its database is"

    second = _start(tmp_path, ports)
    try:
        _wait_ready(second, f"{api}/health")
        login = httpx.post(
            f"{api}/api/v1/auth/login",
            data={"username": "superadmin@localhost", "password": password},
            timeout=10,
        )
    finally:
        output = _stop(second)
    assert "already exists" in output, "the second run must keep the first run's data"
    assert "password:" not in output.split("already exists")[1]
    assert login.status_code == 200, login.text

    kept = _reset(tmp_path, ports, answer="no\n")
    assert kept.returncode != 0 and (tmp_path / "pgdata").is_dir()
    wiped = _reset(tmp_path, ports, "--yes")
    assert wiped.returncode == 0, wiped.stdout + wiped.stderr
    left = [
        name
        for name in ("pgdata", "temporal.db", "storage", "mail", "dev.env", "secret_key")
        if (tmp_path / name).exists()
    ]
    assert not left, f"make reset left {left}"
