"""Several processes, one truth: the short variant of the multi-process fault run (the full one:
`python -m tests.reliability.faults --approvals 300 --apis 2 --workers 2 --api-kills 1 --kills 1`).

Two API processes and two workers against one Temporal dev server and one database; the entries are created and
decided through both APIs while one worker and one API process (the one holding the notification stream) are
SIGKILLed and restarted and the database drops every connection. No Temporal restart here: the single-process run
(test_faults.py) covers it, and it would add its seconds to this one's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.approvals import Actor
from tests.reliability.cross_process import MailCheck, PolicyCheck, StreamCheck, ThrottleCheck, stream_check
from tests.reliability.faults import FaultReport, run_faults
from tests.reliability.fleet import LOGIN_LIMIT_PER_MINUTE

APPROVALS = 30
PROCESSES = ["api1", "api2", "worker1", "worker2"]


async def test_two_apis_and_two_workers_keep_one_truth_through_a_kill_of_each(tmp_path: Path) -> None:
    # Its own thread and event loop: the run drives real processes and must not share the suite's loop.
    report = await asyncio.to_thread(
        lambda: asyncio.run(
            run_faults(approvals=APPROVALS, kills=1, work=tmp_path, apis=2, workers=2, api_kills=1, temporal_restarts=0)
        )
    )
    summary = report.summary()
    assert report.worker_kills == 1 and report.api_kills == 1 and report.database_drops == 1, summary
    assert report.problems() == [], summary
    # Spelled out, though problems() covers them. Nothing lost or doubled, whichever process did the work:
    assert summary["workflows"] == {"COMPLETED": APPROVALS}
    assert summary["entries_by_approve_transitions"] == {"1": APPROVALS}
    assert summary["entries_by_approved_audit_rows"] == {"1": APPROVALS}
    assert report.decisions_by_api.get("api1") and report.decisions_by_api.get("api2"), summary  # both APIs decided
    assert not any(statuses.get(500) for statuses in report.answers_by_api.values()), summary
    # The owner's stream, held on API 1, got every notice once, those of decisions made through API 2 included,
    # and reconnected after API 1's kill saying where it was.
    stream = report.stream
    assert stream is not None and stream.missing == [] and stream.doubled == [], summary
    assert stream.stored == APPROVALS and stream.delivered_by_decision_api.get("api2"), summary
    assert stream.resumed_with and None not in stream.resumed_with, summary
    # One policy edit, in force in all four processes, refused by both APIs, audited once.
    policy = report.policy
    assert policy is not None and sorted(policy.seconds_until_in_force) == PROCESSES, summary
    assert None not in policy.seconds_until_in_force.values(), summary
    assert policy.probe_after == {"api1": 403, "api2": 403} and policy.audit_rows == 1, summary
    # The sign-in throttle: its limit in total across both APIs, each of which answered some of the burst.
    throttle = report.throttle
    assert throttle is not None and throttle.let_through == LOGIN_LIMIT_PER_MINUTE, summary
    assert sorted(throttle.answers_by_api) == ["api1", "api2"], summary
    # Every approver and owner mailed once per entry.
    mail = report.mail
    assert mail is not None and mail.expected == 2 * APPROVALS == mail.delivered and not mail.doubled, summary


def test_each_cross_process_check_names_what_went_wrong() -> None:
    """The checks can fail: a lost or doubled notice, a reconnect without an id, a process the policy never
    reached, a throttle counted per process, a doubled or missing mail, a 500."""
    stream = StreamCheck(api="api1", user_id=1, stored=3, missing=[7], doubled=[5], resumed_with=[None])
    problems = "\n".join(stream.problems())
    assert "never delivered notifications [7]" in problems and "twice: [5]" in problems
    assert "had no Last-Event-ID" in problems
    policy = PolicyCheck(
        version_before="a",
        version_after="b",
        reload_status=200,
        seconds_until_in_force={"api1": 0.1, "worker2": None},
        probe_after={"api1": 200},
        audit_rows=2,
    )
    problems = "\n".join(policy.problems())
    assert "never took effect in ['worker2']" in problems and "still answered in {'api1': 200}" in problems
    assert "2 policy.changed audit rows" in problems
    per_process = ThrottleCheck(limit=10, attempts=30, let_through=20, throttled=10)
    assert "let 20 of 30 attempts through" in "\n".join(per_process.problems())
    mail = MailCheck(expected=2, delivered=1, missing=["owner #3"], doubled={"boss #3": 2})
    problems = "\n".join(mail.problems())
    assert "owner #3" in problems and "boss #3" in problems
    report = FaultReport(approvals=0, answers_by_api={"api1": {200: 5, 500: 1}, "api2": {200: 4}})
    assert "requests answered 500" in "\n".join(report.problems())


async def test_a_stream_check_counts_what_arrived_while_the_stream_was_away(database_url: str) -> None:
    """A notice created while the stream was cut off, and delivered when it came back, is counted as replayed."""
    import psycopg

    from tests.reliability.cross_process import StreamWatcher

    with psycopg.connect(database_url, autocommit=True) as conn:
        user = conn.execute(
            "INSERT INTO users (email, username, full_name, password_hash, role, is_active, is_verified, "
            "token_version) VALUES ('w@example.com', 'w', 'W', 'x', 'employee', true, true, 0) RETURNING id"
        ).fetchone()
        assert user is not None
        lost, back = datetime.now(UTC), None
        created = conn.execute(
            "INSERT INTO notifications (user_id, event_type, title, body, data) "
            "VALUES (%s, 'entry_approved', 't', '', '{\"entry_id\": 5}') RETURNING id, created_at",
            (user[0],),
        ).fetchone()
        assert created is not None
        back = datetime.now(UTC)
    watcher = StreamWatcher("http://unused", Actor(int(user[0]), {}))
    watcher.received = [(int(created[0]), {"created_at": created[1].isoformat()})]
    watcher.outages = [(lost, back)]
    watcher.resumed_with = ["0"]
    check = await stream_check(watcher, database_url, {5: "api2"}, "api1", wait_seconds=0)
    assert check.problems() == []
    assert check.created_while_disconnected == 1 and check.delivered_by_decision_api == {"api2": 1}
