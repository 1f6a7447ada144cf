"""schemathesis through every phase (examples, coverage, fuzzing, stateful) with every check, as every role and as
nobody: the API answers as its OpenAPI document says, or the run fails with schemathesis's own report.

One run per caller. Every phase runs in each, over every operation, but coverage and fuzzing (thousands of cases)
run for an operation only as the lowest role the policy lets call it (anonymous for the public ones): where its
rules bite, and once rather than five times; the other roles meet it in the examples and stateful phases (their
401s and 403s, and the chains the links make: create -> submit -> approve). Which role that is comes from the
policy itself (policies/policy.csv), as the app enforces it.

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
from typing import Any

import psycopg

from api.app import api_routes, dependency_calls
from api.deps import Public, declared_permission
from core.authz import KNOWN_ROLES, Authorizer
from core.settings import PROJECT_ROOT, Settings
from tests.conftest import MakeUser, TestUser

CONFIG = Path(__file__).parent / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Not fuzzed: the endless Server-Sent Events stream (covered by its own tests), and the policy preview, whose body is
# two files of up to 256 KiB each judged line by line as Casbin reads them: generated text says nothing about it (a
# fuzzed 256 KiB of astral characters is counted differently by the generator and the server). tests/policy_preview
# drives it with real and broken files.
NOT_FUZZED = ("notifications-stream", "admin-preview-policy")
# They end the caller's session (every token of theirs stops working): each runs last, alone, as a user of its own.
SESSION_ENDING = ("auth-logout", "auth-change-password", "users-update-me")
RUN_SECONDS = 600  # one role's run; the whole test aims at a few minutes


LOWEST_FIRST = ("anonymous", "employee", "accountant", "manager", "admin", "superadmin")


def owners(app: Any, policy_dir: Path) -> dict[str, str]:
    """Operation id -> the lowest caller the policy lets call it."""
    authorizer = Authorizer(policy_dir)
    owned = {}
    for route in api_routes(app):
        permission = declared_permission(list(dependency_calls(route.dependant)))
        if not route.include_in_schema or permission is None:
            continue
        for role in LOWEST_FIRST:
            if isinstance(permission, Public) or (
                role != "anonymous" and authorizer.enforce(role, permission.resource, permission.action).allowed
            ):
                owned[route.unique_id] = role
                break
    return owned


def config_for(role: str, owned: dict[str, str], tmp_path: Path) -> Path:
    """The settings, with coverage and fuzzing off for the operations another caller owns."""
    others = sorted(operation for operation, owner in owned.items() if owner != role)
    listed = ", ".join(f'"{operation}"' for operation in others)
    path = tmp_path / f"schemathesis-{role}.toml"
    path.write_text(
        CONFIG.read_text()
        + f"\n[[operations]]\ninclude-operation-id = [{listed}]\n"
        + "phases.coverage.enabled = false\nphases.fuzzing.enabled = false\n"
    )
    return path


def schemathesis_run(
    base_url: str, config: Path, headers: dict[str, str], operations: list[str], skip: list[str], phases: str = ""
) -> str:
    """One run of the CLI (as a user would run it); its report when it found anything."""
    command = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{base_url}/openapi.json", "--checks", "all"]
    # One worker: the API process is the bottleneck, and schemathesis's threads can trip CPython 3.11's `ast.parse`
    # ("AST constructor recursion depth mismatch") through Hypothesis describing a filter.
    command += ["--no-color", "--workers", "1", *(["--phases", phases] if phases else [])]
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


async def test_every_role_meets_the_documented_contract(
    live_api: str, make_user: MakeUser, database_url: str, app: Any, settings: Settings, tmp_path: Path
) -> None:
    # Drawn ids are small numbers: our callers' ids are kept out of their way, so a drawn DELETE /users/{id} does
    # not deactivate a caller in the middle of its run.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER SEQUENCE users_id_seq RESTART WITH 1000000")
    callers = await team(make_user)
    owned = owners(app, settings.policy_dir)
    assert set(LOWEST_FIRST) <= set(owned.values())  # every caller fuzzes something through every phase
    reports: dict[str, str] = {}
    started = time.monotonic()
    for role, user in [("anonymous", None), *callers.items()]:
        headers = user.headers if user else {}
        config = config_for(role, owned, tmp_path)
        skip = [*NOT_FUZZED, *SESSION_ENDING]
        reports[role] = await asyncio.to_thread(schemathesis_run, live_api, config, headers, [], skip)
    # The session-ending operations, last, as users of their own (the callers above are done with their tokens):
    # every phase but stateful, which has no links among them to follow.
    for role, user in (await team(make_user)).items():
        reports[f"{role}, ending its session"] = await asyncio.to_thread(
            schemathesis_run, live_api, CONFIG, user.headers, list(SESSION_ENDING), [], "examples,coverage,fuzzing"
        )
    print(f"schemathesis, every role: {time.monotonic() - started:.0f} s")
    failed = {role: report for role, report in reports.items() if report}
    assert not failed, "\n\n".join(f"=== as {role} ===\n{report}" for role, report in failed.items())
