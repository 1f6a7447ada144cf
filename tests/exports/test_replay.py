"""Recorded ExportWorkflow histories replay against today's workflow code: a change that breaks determinism fails
here, not on the exports in flight (guard such a change with `workflow.patched`).

histories/completed_datev.json: a DATEV batch rendered and stored; refused_datev.json: a month DATEV cannot hold
(an account that is not digits), the render refused at once and the batch marked failed by the second activity.
Recorded from the stack in tests/exports/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.exports import ExportWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_both_outcomes_were_recorded() -> None:
    assert {path.stem for path in RECORDED} == {"completed_datev", "refused_datev"}
    assert "ACTIVITY_TASK_FAILED" in TEXTS[HISTORIES / "refused_datev.json"]


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"export-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[ExportWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
