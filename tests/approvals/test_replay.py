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

RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path.stem: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    names = {path.stem for path in RECORDED}
    assert {"two_level_approval", "changes_resubmit_approve", "reminder_escalation_approve", "expiry"} <= names
    assert {"undone_before_first_activity", "undone_after_announce"} <= names  # recorded with the UNDONE_ENDS patch


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"approval-replay-{path.stem}", TEXTS[path.stem])
    replayer = Replayer(workflows=[EntryApprovalWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
