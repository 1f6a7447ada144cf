"""The short variant of the fault-injection run (the full one: `python -m tests.reliability.faults`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.faults import run_faults


@pytest.mark.slow
async def test_approvals_survive_worker_kills_a_temporal_restart_and_dropped_connections(tmp_path: Path) -> None:
    # Its own thread and event loop: the run drives real processes and must not share the suite's loop.
    report = await asyncio.to_thread(lambda: asyncio.run(run_faults(approvals=20, kills=3, work=tmp_path)))
    assert report.worker_kills == 3 and report.temporal_restarts == 1 and report.database_drops == 1
    assert report.problems() == [], report
