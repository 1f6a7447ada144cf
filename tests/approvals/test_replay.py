"""Recorded histories replay against today's workflow code: a change that breaks determinism fails here,
not in production on the workflows in flight (guard such a change with `workflow.patched`).

Refresh the recordings with `RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/approvals`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.approvals.conftest import HISTORIES
from workflows.approval import EntryApprovalWorkflow

# histories/*.json: today's recordings; histories/before-one-data-layer/: recorded before the approval types were
# defined once in workflows/contracts.py (AuditInfo, without workflow_id; unknown fields were ignored);
# histories/before-inline-email/: recorded while every approval email was a
# local activity of its own (before transitions sent their emails themselves, DecisionOutcome.emailed);
# histories/before-local-activities/: recorded while transitions and emails were regular activities (before the
# LOCAL_ACTIVITIES patch). Workflows of every kind may be in flight.
RECORDED = sorted(HISTORIES.rglob("*.json"))
NAMES = {path: str(path.relative_to(HISTORIES).with_suffix("")) for path in RECORDED}
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    for generation in ("", "before-one-data-layer/", "before-inline-email/", "before-local-activities/"):
        names = {name for name in NAMES.values() if name.startswith(generation) and "/" not in name[len(generation) :]}
        expected = {"two_level_approval", "changes_resubmit_approve", "reminder_escalation_approve", "expiry"}
        assert {generation + name for name in expected} <= names, generation
        # recorded with the UNDONE_ENDS patch
        assert {generation + "undone_before_first_activity", generation + "undone_after_announce"} <= names


@pytest.mark.parametrize("path", RECORDED, ids=[NAMES[path] for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"approval-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[EntryApprovalWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
