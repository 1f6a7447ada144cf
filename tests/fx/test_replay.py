"""Recorded exchange-rate import histories replay against today's workflow code: a change that breaks determinism
fails here, not on an import in flight (guard such a change with `workflow.patched`).

histories/*: recorded by tests/fx/test_import.py with RECORD_HISTORIES=1: an import that completes, one that refuses a
day and alerts the admins, and one whose every fetch fails (admins alerted, the workflow failed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.fx import FxRatesImportWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    assert {path.stem for path in RECORDED} >= {
        "import_completed",
        "import_refused_day_alerted",
        "import_failed_alerted",
    }


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"fx-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[FxRatesImportWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
