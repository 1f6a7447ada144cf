"""In-app notifications. A new row is announced by a database trigger (LISTEN/NOTIFY) to live streams."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import Notification


async def notify(
    session: AsyncSession,
    *,
    user_id: int,
    event_type: str,
    title: str,
    body: str = "",
    link: str | None = None,
    data: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> Notification:
    """Create a notification once per `dedup_key` (a retried activity does not notify twice)."""
    values = {
        "user_id": user_id,
        "event_type": event_type,
        "title": title[:200],
        "body": body,
        "link": link,
        "data": data or {},
        "dedup_key": dedup_key,
    }
    statement = insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
    await session.execute(statement)
    if dedup_key is None:
        # Without a key there is nothing to deduplicate on: return the newest row for this user.
        found = await session.scalar(
            select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc()).limit(1)
        )
    else:
        found = await session.scalar(select(Notification).where(Notification.dedup_key == dedup_key))
    assert found is not None
    return found
