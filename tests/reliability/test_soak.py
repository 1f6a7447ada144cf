"""The 30-second variant of the Locust soak (the 5-minute one: `python -m tests.reliability.soak`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.soak import READ_P95_GOAL_MS, run_soak


@pytest.mark.slow
async def test_thirty_users_mixing_reads_creates_and_approvals_see_no_errors_and_fast_reads(tmp_path: Path) -> None:
    # Locust runs as a subprocess against the real stack; this thread only waits for it.
    report = await asyncio.to_thread(run_soak, users=30, seconds=30, spawn_rate=15, work=tmp_path)
    assert report.failures == 0, report.failure_samples
    assert report.reads.requests > 300 and report.writes.requests > 100, report
    assert report.approved_entries > 20, report  # approvals went through the workflow, not only reads
    assert report.reads.p95_ms < READ_P95_GOAL_MS, report.reads
