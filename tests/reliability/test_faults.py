"""The short variant of the fault-injection run (the full one: `python -m tests.reliability.faults`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.faults import FaultReport, run_faults

APPROVALS = 20


@pytest.mark.slow
async def test_approvals_survive_worker_kills_a_temporal_restart_and_dropped_connections(tmp_path: Path) -> None:
    # Its own thread and event loop: the run drives real processes and must not share the suite's loop.
    report = await asyncio.to_thread(lambda: asyncio.run(run_faults(approvals=APPROVALS, kills=3, work=tmp_path)))
    assert report.worker_kills == 3 and report.temporal_restarts == 1 and report.database_drops == 1, report.summary()
    assert report.problems() == [], report.summary()
    # Spelled out, though problems() covers them: what "nothing lost or doubled" means to a user of the system.
    summary = report.summary()
    assert summary["workflows"] == {"COMPLETED": APPROVALS}
    assert summary["entries_by_approve_transitions"] == {"1": APPROVALS}
    assert summary["entries_by_approved_audit_rows"] == {"1": APPROVALS}
    assert (report.emails, report.duplicate_emails) == (2 * APPROVALS, 0)


def test_the_report_names_each_kind_of_loss() -> None:
    """The checks themselves can fail: a lost workflow, a doubled audit row, a wait that gave up, a broken chain."""
    report = FaultReport(
        approvals=2,
        approved=2,
        unsettled_after_wait=1,
        during_outage={"read_status": 200, "action_status": 503},
        expected_emails=4,
        emails=4,
        audit_chain_ok=False,
        audit_verifier="audit chain BROKEN at row 7: content does not match its hash",
        transitions_per_entry={1: 1, 2: 1},
        approved_audit_rows_per_entry={1: 1, 2: 2},
        workflow_status_per_entry={1: "COMPLETED", 2: "RUNNING"},
    )
    problems = "\n".join(report.problems())
    assert "1 approval requests were still not approved" in problems
    assert "one approval.approved audit row: {2: 2}" in problems
    assert "did not complete: {2: 'RUNNING'}" in problems
    assert "BROKEN at row 7" in problems
    assert report.summary()["entries_by_approved_audit_rows"] == {"1": 1, "2": 1}
