"""Recorded report histories replay against today's workflow code: a change that breaks determinism fails here,
not on the reports in flight (guard such a change with `workflow.patched`).

histories/before_progress_signal_*: recorded before the generate activity signalled its rows (the workflows
then had no signal handler); with_progress_signals_*: a render slow enough to send `report_rows_processed`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.report import ReportRetentionWorkflow, ReportWorkflow, ScheduledReportWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {path: path.read_text() for path in RECORDED}  # read at collection, not inside the event loop


def test_histories_were_recorded() -> None:
    names = {path.stem for path in RECORDED}
    assert {"before_progress_signal_pnl_csv", "before_progress_signal_scheduled_pnl_csv"} <= names
    assert any("report_rows_processed" in TEXTS[path] for path in RECORDED), "a history with a progress signal"


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"report-replay-{path.stem}", TEXTS[path])
    replayer = Replayer(workflows=[ReportWorkflow, ScheduledReportWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


RETENTION = sorted((HISTORIES / "retention").glob("*.json"))
RETENTION_TEXTS = {path: path.read_text() for path in RETENTION}


@pytest.mark.parametrize("path", RETENTION, ids=[path.stem for path in RETENTION])
async def test_recorded_retention_history_replays(path: Path) -> None:
    """histories/retention/: recorded while the workflow named its activity by method reference, activity stubbed."""
    history = WorkflowHistory.from_json(f"report-retention-replay-{path.stem}", RETENTION_TEXTS[path])
    replayer = Replayer(workflows=[ReportRetentionWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
