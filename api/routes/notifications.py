"""In-app notifications: the caller's own list, unread count, marking read, and a live Server-Sent Events stream.

The stream is fed by PostgreSQL LISTEN/NOTIFY through ONE listening connection per API process (see
`domain.notifications.feed`), so a notification created by any process or worker reaches every open stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep
from api.listing import UPDATED_SINCE, listing_of
from core.db import Tx
from domain.audit.service import record
from domain.dates import AwareInstant
from domain.errors import ValidationFailed
from domain.models import Notification
from domain.notifications import service
from domain.notifications.feed import NotificationFeed, libpq_url
from domain.notifications.schemas import NotificationOut, NotificationPageOut, ReadAllOut, UnreadCountOut
from domain.pagination import Cursor
from domain.users.caller import load_user

router = APIRouter(prefix="/notifications", tags=["notifications"])
Reader = Annotated[Grant, Depends(Authorize("notification", "read"))]
Marker = Annotated[Grant, Depends(Authorize("notification", "update"))]

HEARTBEAT_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
RETRY_MILLISECONDS = 3000  # how long a browser's EventSource waits before reconnecting
REPLAY_LIMIT = 500  # at most this many missed notifications are replayed on reconnect; the list has the rest


@router.get("", response_model=NotificationPageOut, summary="Your notifications, newest first")
async def list_notifications(
    grant: Reader,
    tx: TxDep,
    cursor: Annotated[Cursor, Depends(listing_of(NotificationOut))],
    unread: Annotated[bool, Query(description="only the unread ones")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    updated_since: Annotated[AwareInstant | None, Query(description=UPDATED_SINCE)] = None,
) -> NotificationPageOut:
    """With `updated_since`: the notifications created or read since (none is ever deleted)."""
    page = await service.list_for_user(
        tx, grant.user.id, unread_only=unread, limit=limit, offset=offset, cursor=cursor, updated_since=updated_since
    )
    return NotificationPageOut(
        items=[NotificationOut.model_validate(item) for item in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_cursor=page.next_cursor,
        next_updated_since=page.next_updated_since,
    )


@router.get("/unread-count", response_model=UnreadCountOut, summary="How many of your notifications are unread")
async def unread_count(grant: Reader, tx: TxDep) -> UnreadCountOut:
    return UnreadCountOut(unread=await service.unread_count(tx, grant.user.id))


@router.post("/read-all", response_model=ReadAllOut, summary="Mark all your notifications read")
async def read_all(grant: Marker, tx: TxDep) -> ReadAllOut:
    count = await service.mark_all_read(tx, grant.user.id)
    if count:
        await record(tx.sql, grant.audit, "notification.read_all", "notification", None, {"marked_read": count})
    return ReadAllOut(marked_read=count)


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark one of your notifications read",
    responses={404: {"description": "no such notification among yours"}},
)
async def read_one(notification_id: RowId, grant: Marker, tx: TxDep) -> NotificationOut:
    notification, changed = await service.mark_read(tx, grant.user.id, notification_id)
    if changed:
        await record(
            tx.sql,
            grant.audit,
            "notification.read",
            "notification",
            notification.id,
            {"read_at": [None, notification.read_at.isoformat() if notification.read_at else None]},
        )
    return NotificationOut.model_validate(notification)


# --- the live stream --------------------------------------------------------------------------------


def notification_feed(request: Request, services: ServicesDep) -> NotificationFeed:
    """This process's feed (one LISTEN connection, opened while someone is subscribed)."""
    feed: NotificationFeed | None = getattr(request.app.state, "notification_feed", None)
    if feed is None:
        # LISTEN waits on one connection between transactions: DATABASE_DIRECT_URL, never a transaction pooler.
        feed = NotificationFeed(libpq_url(services.settings.db.session_async_url))
        request.app.state.notification_feed = feed
    return feed


def _frame(notification: Notification, cursor: int) -> bytes:
    payload = NotificationOut.model_validate(notification).model_dump(mode="json")
    # The id line carries the highest id sent so far, so a reconnect never replays what the client saw,
    # even when a slow transaction commits an older id after a newer one.
    return f"id: {cursor}\nevent: notification\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _ended(reason: str) -> bytes:
    return f"event: session_ended\ndata: {json.dumps({'reason': reason})}\n\n".encode()


async def _session_end(tx: Tx, user_id: int, token_version: int, role: str) -> str | None:
    """Why the stream's session no longer holds (what every request checks: active, the token's version, and here
    the role it was opened under), or None while it does."""
    user = await load_user(tx, user_id)
    if user is None or not user.is_active:
        return "your account was deactivated"
    if user.token_version != token_version:
        return "you signed out, or your password or role changed: sign in again"
    if user.role != role:
        return "your role changed: reconnect"
    return None


def _last_event_id(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit() or len(value.strip()) > 18:
        raise ValidationFailed("Last-Event-ID must be a notification id", last_event_id=value[:40])
    return int(value.strip())


@router.get(
    "/stream",
    response_class=StreamingResponse,
    summary="Live stream of your new notifications (Server-Sent Events)",
    description=(
        "Each new notification arrives as `event: notification` with the notification as JSON in `data` and its id "
        f"in `id`. A comment line every {HEARTBEAT_SECONDS:.0f} s keeps the connection open. Reconnect with the "
        "`Last-Event-ID` header (browsers' EventSource does this by itself) to receive what you missed; the first "
        "block (`retry:`) carries the `id` the stream starts from, so this holds before any notification too. "
        "The stream ends when your access token expires (`event: token_expired`): reconnect with a fresh token; "
        "and within moments of your session ending (`event: session_ended`): a logout, a password change, "
        "deactivation or a change of role."
    ),
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
)
async def stream(
    request: Request,
    grant: Reader,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(description="the last `id` you received")] = None,
) -> StreamingResponse:
    resume_after = _last_event_id(last_event_id)
    feed = notification_feed(request, services)
    user_id = grant.user.id
    claims = request.state.token_claims  # set by the authentication that Reader ran
    expires_at: datetime = claims.expires_at
    token_version, role = claims.token_version, grant.user.role
    db = services.db

    async def events() -> AsyncIterator[bytes]:
        async with feed.subscribe(user_id) as subscription:
            sent: set[int] = set()
            # Subscribed first, then read the backlog: whatever commits in between arrives twice at most
            # (`sent` drops the second copy), never zero times.
            # Reads only, each statement on its own: no transaction held open while the stream waits.
            async with db.transaction(autocommit=True) as tx:
                # Checked again now that the session's announcements reach us: a logout committed since the
                # request was authenticated was announced before we listened.
                ended = await _session_end(tx, user_id, token_version, role)
                if resume_after is None:
                    cursor = await service.newest_id(tx, user_id)
                    backlog: list[Notification] = []
                else:
                    cursor = resume_after
                    backlog = await service.after_id(tx, user_id, resume_after, REPLAY_LIMIT)
            # Once subscribed, the first block: the retry hint and where this stream starts. A client that reconnects
            # before any notice arrived then says where it was (Last-Event-ID) and gets what came meanwhile;
            # without the id it would resume from whatever is newest by then, and lose that.
            yield f"retry: {RETRY_MILLISECONDS}\nid: {cursor}\n\n".encode()
            if ended:
                yield _ended(ended)
                return
            for notification in backlog:
                sent.add(notification.id)
                cursor = max(cursor, notification.id)
                yield _frame(notification, cursor)
            while True:
                left = (expires_at - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    yield b'event: token_expired\ndata: {"reason":"access token expired; reconnect"}\n\n'
                    return
                signal = await subscription.next(min(HEARTBEAT_SECONDS, left))
                if signal is None:
                    yield b": heartbeat\n\n"
                    continue
                async with db.transaction(autocommit=True) as tx:
                    # After a lost listening connection (resync) an announcement may have been missed too.
                    if signal.session_changed or signal.resync:
                        ended = await _session_end(tx, user_id, token_version, role)
                    if not ended:
                        fresh = await service.after_id(tx, user_id, cursor, REPLAY_LIMIT) if signal.resync else []
                        fresh += await service.by_ids(tx, user_id, signal.ids - {n.id for n in fresh})
                if ended:
                    yield _ended(ended)
                    return
                for notification in sorted(fresh, key=lambda n: n.id):
                    if notification.id in sent:
                        continue
                    sent.add(notification.id)
                    cursor = max(cursor, notification.id)
                    yield _frame(notification, cursor)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )
