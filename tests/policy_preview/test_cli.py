"""`python cli.py policy diff`, as an operator runs it: text (or --json), and exit codes 0 (no change), 1 (changes),
2 (a broken or unreadable file, its line named)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from core.settings import PROJECT_ROOT
from tests.policy_preview.conftest import (
    Org,
    ask_approval,
    shipped_policy,
    with_line_inserted,
    with_manager_limit,
    without_budget_creation,
)


async def _policy_diff(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "cli.py", "policy", "diff", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev"},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_names_lost_routes_and_limits_and_exits_by_outcome(
    tmp_path: Path, database_url: str, client: httpx.AsyncClient, org: Org, worker: None
) -> None:
    climbs = await ask_approval(client, org.employee, "5000.00")
    proposed = tmp_path / "policy.csv"
    proposed.write_text(without_budget_creation().replace("approve, 10000.00", "approve, 1000.00"))

    text = await _policy_diff(database_url, str(proposed))
    assert text.returncode == 1, text.stderr
    assert "  accountant loses POST /api/v1/budgets (budget:create)" in text.stdout
    assert "  manager approve: 10000.00 -> 1000.00" in text.stdout
    assert "1 would route differently" in text.stdout
    assert f"request {climbs} (generic {climbs}, 'Purchase of 5000.00')" in text.stdout
    assert "climbs higher" in text.stdout

    answer = await _policy_diff(database_url, str(proposed), "--json")
    assert answer.returncode == 1, answer.stderr
    preview = json.loads(answer.stdout)
    assert [item["request_id"] for item in preview["replay"]["rerouted"]] == [climbs]
    assert [role["role"] for role in preview["roles"]] == ["superadmin", "admin", "accountant"]

    proposed.write_text(shipped_policy())
    same = await _policy_diff(database_url, str(proposed))
    assert same.returncode == 0, same.stderr
    assert "no role gains or loses a permission" in same.stdout and "no limit changes" in same.stdout


async def test_the_cli_refuses_a_broken_file_with_its_line(tmp_path: Path, database_url: str) -> None:
    proposed = tmp_path / "policy.csv"
    broken, line = with_line_inserted("manager, budget, create, *\n")
    proposed.write_text(broken)
    refused = await _policy_diff(database_url, str(proposed))
    assert refused.returncode == 2
    assert f"policy.csv line {line}: a line starts with p (a permission) or g (a role), not 'manager'" in refused.stderr

    proposed.write_text(with_manager_limit("1000.00"))
    missing = await _policy_diff(database_url, str(proposed), "--model", str(tmp_path / "nowhere.conf"))
    assert missing.returncode == 2 and "nowhere.conf: cannot be read" in missing.stderr
