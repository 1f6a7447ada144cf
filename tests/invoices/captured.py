"""What the invoice tests catch on its way out: mail, and the workflows' histories for the replay test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory

from core.mail import OutgoingMail

HISTORIES = Path(__file__).parent / "histories"


class CapturedMail:
    """A mail transport that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.mails: list[OutgoingMail] = []

    def send(self, mail: OutgoingMail) -> None:
        self.mails.append(mail)

    def subjects_to(self, address: str) -> list[str]:
        return [mail.subject for mail in self.mails if mail.to == [address]]


async def history_of(handle: WorkflowHandle[Any, Any], name: str) -> WorkflowHistory:
    """The workflow's history, also kept as histories/<name>.json when RECORD_HISTORIES is set (to refresh the
    recordings the replay test runs: `RECORD_HISTORIES=1 .venv/bin/pytest tests/invoices/test_reminders.py`)."""
    history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    return history
