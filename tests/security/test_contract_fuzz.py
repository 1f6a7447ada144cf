"""schemathesis through every phase (examples, coverage, fuzzing, stateful) with every check, as every role and as
nobody: the API answers as its OpenAPI document says, or the run fails with schemathesis's own report.

The settings are tests/security/schemathesis.toml; the failures allowed, each with its reason, are in
tests/security/schemathesis_hooks.py. docs/development.md shows how to run it alone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from core.authz import KNOWN_ROLES
from core.settings import PROJECT_ROOT
from tests.conftest import MakeUser, TestUser

CONFIG = Path(__file__).parent / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# An endless Server-Sent Events stream: covered by its own tests, not by request/response fuzzing.
NOT_FUZZED = ("notifications-stream",)
# They end the caller's session (every token of theirs stops working): each runs last, alone, as a user of its own.
SESSION_ENDING = ("auth-logout", "auth-change-password", "users-update-me")
RUN_SECONDS = 600  # one role's run; the whole test aims at a few minutes


def schemathesis_run(base_url: str, headers: dict[str, str], operations: list[str], skip: list[str]) -> str:
    """One run of the CLI (as a user would run it); its report when it found anything."""
    command = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json", "--checks", "all"]
    command += ["--no-color", "--workers", "2"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    for operation in operations:
        command += ["--include-operation-id", operation]
    for operation in skip:
        command += ["--exclude-operation-id", operation]
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},  # the hooks module
    )
    return "" if result.returncode == 0 else result.stdout[-20000:] + result.stderr[-5000:]


async def team(make_user: MakeUser) -> dict[str, TestUser]:
    superadmin = await make_user("superadmin")
    users = {"superadmin": superadmin}
    for role in KNOWN_ROLES:
        if role != "superadmin":
            users[role] = await make_user(role, manager=superadmin)
    return users


async def test_every_role_meets_the_documented_contract(live_api: str, make_user: MakeUser, database_url: str) -> None:
    # Drawn ids are small numbers: our callers' ids are kept out of their way, so a drawn DELETE /users/{id} does
    # not deactivate a caller in the middle of its run.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER SEQUENCE users_id_seq RESTART WITH 1000000")
    callers = await team(make_user)
    reports: dict[str, str] = {}
    started = time.monotonic()
    for role, user in [*callers.items(), ("anonymous", None)]:
        headers = user.headers if user else {}
        reports[role] = await asyncio.to_thread(schemathesis_run, live_api, headers, [], [*NOT_FUZZED, *SESSION_ENDING])
    # The session-ending operations, last, as users of their own (the callers above are done with their tokens).
    for role, user in (await team(make_user)).items():
        reports[f"{role}, ending its session"] = await asyncio.to_thread(
            schemathesis_run, live_api, user.headers, list(SESSION_ENDING), []
        )
    print(f"schemathesis, every role: {time.monotonic() - started:.0f} s")
    failed = {role: report for role, report in reports.items() if report}
    assert not failed, "\n\n".join(f"=== as {role} ===\n{report}" for role, report in failed.items())
