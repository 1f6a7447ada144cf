"""Dashboard aggregates, maintained in the same transaction that changes an entry's status.

The entries service calls `entry_status_changed` after every status change (submit, decision, withdraw,
expiry, delete of a draft), so the dashboard never shows stale numbers.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import Entry


async def entry_status_changed(session: AsyncSession, entry: Entry, old_status: str | None) -> None:
    """Move the entry's amount from its old status bucket to its new one (`old_status` None: a new entry)."""
    # Filled in by the dashboard feature; until then the dashboard reads the entries table directly.
    return None
