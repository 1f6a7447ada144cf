"""The README's curl walkthrough, run as a newcomer would run it, against the real system: PostgreSQL, a Temporal
dev server, the worker and the API as separate processes, the first superadmin created by the CLI as `make dev`
creates it. The app connects as the role compose gives it (deploy/grant_app_role.py), which owns nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import PROJECT_ROOT
from tests.bench.stack import Stack, running_stack, temporal_server
from tests.foundation.app_role import app_database

WALKTHROUGH_HEADING = "## Walkthrough"


def walkthrough() -> str:
    """The bash blocks under the README's walkthrough heading, in order."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split(WALKTHROUGH_HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's walkthrough has no bash block"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("walkthrough")
    with (
        app_database("finance_readme") as database,
        temporal_server(work) as address,
        running_stack(database.app_url, address, work) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def superadmin(stack: Stack) -> tuple[str, str]:
    """The first superadmin, created and its password printed by the CLI, as `make dev` does."""
    env = {key: value for key, value in stack.env.items() if not key.startswith("FIRST_SUPERADMIN")}
    created = subprocess.run(
        [sys.executable, "cli.py", "create-superadmin"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    email = created.stdout.split("email:")[1].split()[0]
    password = created.stdout.split("password:")[1].split()[0]
    return email, password


def test_the_readme_walkthrough_takes_an_expense_through_two_levels(
    stack: Stack, superadmin: tuple[str, str], tmp_path: Path
) -> None:
    email, password = superadmin
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(API=f"{stack.api_url}/api/v1", ADMIN_EMAIL=email, ADMIN_PASSWORD=password)
    script = tmp_path / "walkthrough.sh"
    # As pasted into a shell, except that any failing command fails the test.
    script.write_text("set -euo pipefail\n" + walkthrough())
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    # What the README's comments promise the reader sees: pending, pending, approved, and the two steps.
    lines = run.stdout.splitlines()
    assert lines[1:] == ["pending", "pending", "approved", "0 Maria Manager approved", "1 Superadmin approved"], lines
    assert lines[0].isdigit()  # the employee's id

    token = httpx.post(f"{stack.api_url}/api/v1/auth/login", data={"username": email, "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    expenses = httpx.get(f"{stack.api_url}/api/v1/expenses/", headers=headers).json()["items"]
    assert [(item["amount"], item["status"]) for item in expenses] == [("15000.00", "approved")]
    history = httpx.get(f"{stack.api_url}/api/v1/expenses/{expenses[0]['id']}/history", headers=headers).json()
    users = {
        user["username"]: user["id"]
        for user in httpx.get(f"{stack.api_url}/api/v1/users/", headers=headers).json()["items"]
    }
    me = httpx.get(f"{stack.api_url}/api/v1/users/me", headers=headers).json()
    assert [(step["level"], step["approver_id"], step["status"]) for step in history["steps"]] == [
        (0, users["maria"], "approved"),
        (1, me["id"], "approved"),
    ]
    assert history["status"] == "approved"


def _eventually(read, done, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"still {value}")


def test_backups_and_restore_drills_work_as_the_app_role(stack: Stack, superadmin: tuple[str, str]) -> None:
    """pg_dump needs SELECT on everything, a restore drill CREATEDB: what the compose role is given, and no more."""
    email, password = superadmin
    token = httpx.post(f"{stack.api_url}/api/v1/auth/login", data={"username": email, "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    started = httpx.post(f"{stack.api_url}/api/v1/admin/backups", headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    url = f"{stack.api_url}/api/v1/admin/backups/{started.json()['backup_id']}"
    backup = _eventually(
        lambda: httpx.get(url, headers=headers).json(), lambda b: b["status"] in ("completed", "failed")
    )
    assert backup["status"] == "completed", backup["error"]
    drill = httpx.post(f"{url}/drill", headers=headers, timeout=30)
    assert drill.status_code == 202, drill.text
    drills = _eventually(
        lambda: httpx.get(url, headers=headers).json()["drills"],
        lambda found: bool(found) and found[0]["status"] != "running",
    )
    assert drills[0]["status"] == "passed", drills[0]
