"""The 30-second variant of the Locust soak (the 5-minute one: `python -m tests.reliability.soak`), and a short soak
against an already running system through its API only, as `--host` runs it against `make dev`."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.bench.approvals import _insert_user
from tests.bench.stack import running_stack, temporal_server
from tests.reliability.soak import READ_P95_GOAL_MS, SoakReport, run_soak, run_soak_against
from tests.services import admin_database_url, scratch_database

CREATE = "POST /api/v1/expenses/"
APPROVE = "POST /expenses/{id}/approve"


def _locust_saw_what_was_stored(report: SoakReport) -> None:
    # Locust's final statistics count every create and approval the system stored: none is lost at stop.
    assert report.endpoints[CREATE].requests == report.entries_created, report
    assert report.endpoints[APPROVE].requests == report.approved_entries, report


@pytest.mark.slow
async def test_thirty_users_mixing_reads_creates_and_approvals_see_no_errors_and_fast_reads(tmp_path: Path) -> None:
    # Locust runs as a subprocess against the real stack; this thread only waits for it.
    report = await asyncio.to_thread(run_soak, users=30, seconds=30, spawn_rate=15, work=tmp_path)
    assert report.failures == 0, report.failure_samples
    assert report.reads.requests > 300 and report.writes.requests > 100, report
    assert report.approved_entries > 20, report  # approvals went through the workflow, not only reads
    assert report.reads.p95_ms < READ_P95_GOAL_MS, report.reads
    _locust_saw_what_was_stored(report)


def _soak_a_running_system(work: Path) -> tuple[SoakReport, str]:
    """A stack started apart from the soak (as `make dev` is), with one superadmin; the soak gets only its URL and
    the superadmin's credentials. Returns the report and the URL."""
    with (
        scratch_database(admin_database_url(), "finance_soakhost") as database_url,
        temporal_server(work) as address,
        running_stack(database_url, address, work) as stack,
    ):
        with psycopg.connect(database_url, autocommit=True) as conn:
            _insert_user(conn, "superadmin", None, "root-soak")  # password "bench-password-1"
        report = run_soak_against(
            stack.api_url, "root-soak@bench.example", "bench-password-1", users=10, seconds=10, spawn_rate=10, work=work
        )
        # The soak's users were deactivated afterwards: they can no longer sign in.
        with httpx.Client(base_url=stack.api_url) as http:
            signed_in = http.post(
                "/api/v1/auth/login", json={"username": "root-soak@bench.example", "password": "bench-password-1"}
            ).json()
            listed = http.get(
                "/api/v1/users/",
                params={"q": "soak", "is_active": "true", "limit": 100},
                headers={"Authorization": f"Bearer {signed_in['access_token']}"},
            )
            assert listed.status_code == 200, listed.text
            assert [u["username"] for u in listed.json()["items"] if u["role"] != "superadmin"] == []
        return report, stack.api_url


@pytest.mark.slow
async def test_the_soak_runs_against_a_running_system_through_its_api_only() -> None:
    with tempfile.TemporaryDirectory(prefix="finance-soak-host-") as folder:
        report, url = await asyncio.to_thread(_soak_a_running_system, Path(folder))
    assert report.host == url and report.failures == 0, report.failure_samples
    assert report.entries_created > 0 and report.approved_entries > 0, report
    assert report.counts_exact
    _locust_saw_what_was_stored(report)
