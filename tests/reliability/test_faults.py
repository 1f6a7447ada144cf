"""The short variant of the fault-injection run (the full one: `python -m tests.reliability.faults`)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.reliability.faults import FaultReport, _doubles_explained_by_kills, run_faults
from tests.services import SmtpSink

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
    # Every mail once; a second copy only of one the server took as its sender was killed (same Message-ID).
    assert report.emails - report.duplicate_emails == 2 * APPROVALS
    assert report.duplicate_emails == report.duplicates_sent_as_a_worker_died <= report.worker_kills


def _sink_with(arrivals: list[tuple[str, float]]) -> SmtpSink:
    sink = SmtpSink("127.0.0.1", 0)
    for message_id, arrived in arrivals:
        message = EmailMessage()
        message["Message-ID"] = message_id
        sink.messages.append(message)
        sink.arrived.append(arrived)
    return sink


def test_only_a_double_sent_as_its_worker_died_is_excused() -> None:
    """A second copy is excused when the first reached the server just before a kill (the sender could not record
    it), one per kill; a double with no kill right after its first copy is ours, and so are three copies."""
    sink = _sink_with([("<a>", 10.0), ("<b>", 11.0), ("<a>", 15.0), ("<b>", 16.0), ("<c>", 20.0), ("<c>", 21.0)])
    sink.messages += [sink.messages[-1], sink.messages[-1]]
    sink.arrived += [22.0, 23.0]  # <c> four times
    assert _doubles_explained_by_kills(sink, kill_times=[10.002]) == 1  # <a>; <b> had no kill after it
    assert _doubles_explained_by_kills(sink, kill_times=[10.002, 11.1]) == 2
    assert _doubles_explained_by_kills(sink, kill_times=[10.9]) == 0  # too long after <a> to excuse it
    report = FaultReport(
        approvals=1, emails=8, expected_emails=3, duplicate_emails=5, duplicates_sent_as_a_worker_died=2
    )
    assert "3 duplicate emails reached the SMTP server" in "\n".join(report.problems())


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
