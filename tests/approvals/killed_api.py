"""An API process that dies (SIGKILL) at the worst moment of a submission: its transaction has committed the
pending entry, and the workflow's start has not reached Temporal yet (tests/approvals/test_lost_start.py).

    python -m tests.approvals.killed_api PORT
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import uvicorn

from core.engine import WorkflowEngine


async def _die_before_starting(self: WorkflowEngine, *args: Any, **kwargs: Any) -> bool:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    WorkflowEngine.start = _die_before_starting  # type: ignore[method-assign]
    uvicorn.run("api.app:app_factory", factory=True, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
