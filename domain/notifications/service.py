"""In-app notifications. A new row is announced by a database trigger (LISTEN/NOTIFY) to live streams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from core.db import Tx
from core.sql import Sql
from domain import delta_sync
from domain.errors import NotFound, ValidationFailed
from domain.models import Notification, NotificationPreference
from domain.notifications.events import ALWAYS_EMAILED, CONFIGURABLE_EVENTS, EVENT_TYPES
from domain.pagination import Cursor, Keyset, Pager
from domain.users.directory import active_ids_in_roles


async def notify(
    sql: Sql,
    *,
    user_id: int,
    event_type: str,
    title: str,
    body: str = "",
    link: str | None = None,
    data: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> int:
    """Create a notification once per `dedup_key` (a retried activity does not notify twice); its id."""
    params = (user_id, event_type, title[:200], body, link, Jsonb(data or {}), dedup_key)
    created = await sql.scalar(_INSERT, params)
    if created is not None:
        return int(created)
    # Already created under this key (a retried activity): the existing row.
    found = await sql.scalar("SELECT id FROM notifications WHERE dedup_key = %s", (dedup_key,))
    assert found is not None
    return int(found)


async def notify_operators(
    sql: Sql,
    roles: tuple[str, ...],
    *,
    event_type: str,
    title: str,
    body: str = "",
    link: str | None = None,
    data: dict[str, Any] | None = None,
    dedup_key: str,
) -> list[int]:
    """Notify every active user holding one of `roles` (an operational alert), once per key and user; their ids."""
    user_ids = await active_ids_in_roles(sql, roles)
    for user_id in user_ids:
        await notify(sql, user_id=user_id, event_type=event_type, title=title, body=body, link=link, data=data,
                     dedup_key=f"{dedup_key}:{user_id}")  # fmt: skip
    return user_ids


_INSERT = (
    "INSERT INTO notifications (user_id, event_type, title, body, link, data, dedup_key) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)


# --- reading and marking (a user only ever sees their own) ------------------------------------------


@dataclass(frozen=True)
class NotificationPage:
    items: list[Notification]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None
    next_updated_since: datetime | None = None  # with updated_since: what to send next time (domain/delta_sync.py)


def _own(user_id: int, unread_only: bool = False) -> list[ColumnElement[bool]]:
    conditions = [Notification.user_id == user_id]
    if unread_only:
        conditions.append(Notification.read_at.is_(None))
    return conditions


# Newest first, by id: ix_notifications_user_id_id serves both the order and a cursor's `id < %s` as a range.
KEYSET = Keyset("notifications", ("id",), (int,))


async def list_for_user(
    tx: Tx,
    user_id: int,
    *,
    unread_only: bool = False,
    limit: int = 20,
    offset: int = 0,
    cursor: Cursor | None = None,
    updated_since: datetime | None = None,
) -> NotificationPage:
    """The user's notifications, newest first: by offset or after a cursor. With `updated_since`, only those
    created or read at or after it (a notification is never deleted, and reading it is its only change)."""
    pager = Pager(limit, offset, cursor)
    conditions = _own(user_id, unread_only)
    synced = None
    if updated_since is not None:
        synced = await delta_sync.watermark(tx.sql)  # before the rows are read: see domain/delta_sync.py
        conditions.append(or_(Notification.created_at >= updated_since, Notification.read_at >= updated_since))
    total = await tx.session.scalar(select(func.count()).select_from(Notification).where(*conditions))
    after = pager.key(KEYSET)
    if after is not None:
        conditions.append(KEYSET.after_clause([Notification.id], after))
    rows = await tx.session.scalars(
        select(Notification).where(*conditions).order_by(Notification.id.desc()).limit(pager.fetch).offset(offset)
    )
    items, next_cursor = pager.cut(KEYSET, list(rows), lambda row: (row.id,))
    return NotificationPage(items, int(total or 0), limit, pager.page_offset, next_cursor, synced)


async def unread_count(tx: Tx, user_id: int) -> int:
    count = await tx.session.scalar(select(func.count()).select_from(Notification).where(*_own(user_id, True)))
    return int(count or 0)


async def get_for_user(tx: Tx, user_id: int, notification_id: int) -> Notification:
    """One of the user's notifications; another user's is indistinguishable from a missing one."""
    found = await tx.session.scalar(
        select(Notification).where(Notification.id == notification_id, Notification.user_id == user_id)
    )
    if found is None:
        raise NotFound("notification not found", id=notification_id)
    return found


async def mark_read(tx: Tx, user_id: int, notification_id: int) -> tuple[Notification, bool]:
    """Mark one notification read. Returns it and whether it changed (marking twice is harmless)."""
    found = await get_for_user(tx, user_id, notification_id)
    if found.read_at is not None:
        return found, False
    found.read_at = datetime.now(UTC)
    await tx.session.flush()
    return found, True


async def mark_all_read(tx: Tx, user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = await tx.session.execute(
        update(Notification).where(*_own(user_id, True)).values(read_at=func.now()).returning(Notification.id)
    )
    return len(result.all())


async def after_id(tx: Tx, user_id: int, last_id: int, limit: int = 100) -> list[Notification]:
    """The user's notifications newer than `last_id`, oldest first (what a reconnecting stream missed)."""
    rows = await tx.session.scalars(
        select(Notification)
        .where(Notification.user_id == user_id, Notification.id > last_id)
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(rows)


async def by_ids(tx: Tx, user_id: int, ids: set[int]) -> list[Notification]:
    """The user's notifications among `ids`, oldest first (ids of other users are ignored)."""
    if not ids:
        return []
    rows = await tx.session.scalars(
        select(Notification).where(Notification.user_id == user_id, Notification.id.in_(ids)).order_by(Notification.id)
    )
    return list(rows)


async def newest_id(tx: Tx, user_id: int) -> int:
    newest = await tx.session.scalar(select(func.max(Notification.id)).where(Notification.user_id == user_id))
    return int(newest or 0)


# --- email preferences ------------------------------------------------------------------------------


async def email_preferences(tx: Tx, user_id: int) -> dict[str, bool]:
    """Whether the user gets email, per configurable event type (on unless turned off)."""
    stored = {
        row.event_type: row.email
        for row in await tx.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user_id)
        )
    }
    return {event: stored.get(event, True) for event in CONFIGURABLE_EVENTS}


async def set_email_preferences(
    tx: Tx, user_id: int, changes: dict[str, bool]
) -> tuple[dict[str, bool], dict[str, bool]]:
    """Set the listed event types (others keep their setting). Returns (before, after)."""
    unknown = sorted(set(changes) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed("unknown event types", unknown=unknown, known=list(CONFIGURABLE_EVENTS))
    fixed = sorted(set(changes) & ALWAYS_EMAILED)
    if fixed:
        raise ValidationFailed("these emails cannot be turned off", event_types=fixed)
    before = await email_preferences(tx, user_id)
    for event_type, wanted in changes.items():
        statement = (
            insert(NotificationPreference)
            .values(user_id=user_id, event_type=event_type, email=wanted)
            .on_conflict_do_update(index_elements=["user_id", "event_type"], set_={"email": wanted})
        )
        await tx.session.execute(statement)
    return before, {**before, **changes}


@dataclass(frozen=True)
class EmailUser:
    id: int
    email: str
    full_name: str
    is_active: bool
    wants_email: bool  # False when they turned email off for the event type asked about


_EMAIL_USERS = (
    "SELECT u.id, u.email, u.full_name, u.is_active, NOT EXISTS (SELECT 1 FROM notification_preferences p"
    " WHERE p.user_id = u.id AND p.event_type = %s AND NOT p.email) FROM users u WHERE u.id = ANY(%s)"
)


async def email_users(sql: Sql, user_ids: list[int], event_type: str | None) -> dict[int, EmailUser]:
    """The users among `user_ids` that exist, by id, with whether they want email for `event_type` (one query)."""
    if not user_ids:
        return {}
    asked = None if event_type in ALWAYS_EMAILED else event_type  # NULL matches no preference: everyone wants it
    rows = await sql.all(_EMAIL_USERS, (asked, sorted(set(user_ids))))
    return {row[0]: EmailUser(*row) for row in rows}
