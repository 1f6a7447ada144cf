"""Recorded backup and restore drill histories replay against today's workflow code: a change that breaks determinism
fails here, not on the backups in flight (guard such a change with `workflow.patched`).

histories/*: recorded while the workflows named their activities by method reference (before workflows/contracts.py
named them), with the activities stubbed: a backup that completes, one whose dump fails (superadmins alerted), and a
restore drill that fails (alerted).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.backup import BackupWorkflow, RestoreDrillWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    assert {path.stem for path in RECORDED} >= {"backup_completed", "backup_failed_alerted", "drill_failed_alerted"}


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"backup-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[BackupWorkflow, RestoreDrillWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
