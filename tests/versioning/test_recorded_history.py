"""The recorded approval of a versioned start is what it claims to be, and the replay tests replay it.

tests/approvals/histories/versioned_pinned_approve.json was recorded by test_rolling_deploy.py: an approval started
and decided on build N's pinned workers (today's EntryApprovalWorkflow and activities). tests/approvals/test_replay.py
replays it with every other recording against today's workflow code, so a change that would break an approval in
flight on a versioned deployment fails there. Re-record it with
`RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/versioning`.
"""

from __future__ import annotations

import json

from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.client import WorkflowHistory

from tests.approvals.conftest import HISTORIES
from tests.approvals.test_replay import RECORDED

VERSIONED = HISTORIES / "versioned_pinned_approve.json"


def test_the_versioned_recording_ran_pinned_on_one_build_to_its_approval() -> None:
    history = WorkflowHistory.from_json("approval-versioned", VERSIONED.read_text())
    tasks = [
        event.workflow_task_completed_event_attributes
        for event in history.events
        if event.HasField("workflow_task_completed_event_attributes")
    ]
    assert tasks, "no workflow task in the recording"
    versions = {(task.versioning_behavior, task.deployment_version.build_id) for task in tasks}
    assert versions == {(VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "n")}
    (completed,) = [
        event for event in history.events if event.HasField("workflow_execution_completed_event_attributes")
    ]
    (result,) = completed.workflow_execution_completed_event_attributes.result.payloads
    assert json.loads(result.data)["status"] == "approved"
    assert VERSIONED in RECORDED  # replayed by tests/approvals/test_replay.py
