"""The live notification feed of one process: ONE PostgreSQL `LISTEN notifications` connection, fanned out to
every subscriber (an open stream) by user id.

The `notification_announce` trigger sends `{"id", "user_id"}` on the channel when a notification row is
inserted; PostgreSQL delivers it when the inserting transaction commits, so every API process sees every
notification whichever process (or worker) created it. Subscribers get ids only and load the rows themselves,
filtered by their own user id.

The same connection listens on `user_sessions`, where the `user_session_changed` trigger (migration 0009) sends a
user's id when their token version, active flag or role changes (logout, password change, deactivation, demotion),
or they are deleted: their streams are told (`FeedSignal.session_changed`), check the session and end.

If the listening connection drops, notifications sent meanwhile are lost to this process, so after each
(re)connection every subscriber is told to resynchronise from the database (`FeedSignal.resync`).
The connection is opened by the first subscriber and closed when the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "notifications"
SESSION_CHANNEL = "user_sessions"


def libpq_url(sqlalchemy_url: str) -> str:
    """A plain libpq URL (no `+driver`) for psycopg, keeping credentials and query options."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class FeedSignal:
    """What changed for one subscriber since it last looked."""

    ids: set[int] = field(default_factory=set)
    resync: bool = False  # news may have been missed: read the table, and check the session
    session_changed: bool = False  # the user's token version, active flag or role changed


class Subscription:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self._pending = FeedSignal()
        self._wake = asyncio.Event()

    def _push(self, notification_id: int | None) -> None:
        if notification_id is None:
            self._pending.resync = True
        else:
            self._pending.ids.add(notification_id)
        self._wake.set()

    def _session_changed(self) -> None:
        self._pending.session_changed = True
        self._wake.set()

    async def next(self, wait_seconds: float) -> FeedSignal | None:
        """The next batch of news, or None when `wait_seconds` pass quietly (time for a heartbeat)."""
        try:
            async with asyncio.timeout(wait_seconds):
                await self._wake.wait()
        except TimeoutError:
            return None
        self._wake.clear()
        signal, self._pending = self._pending, FeedSignal()
        return signal


class NotificationFeed:
    def __init__(self, conninfo: str, *, reconnect_delay: float = 1.0) -> None:
        self.conninfo = conninfo
        self.reconnect_delay = reconnect_delay
        self._subscribers: dict[int, set[Subscription]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: int, ready_timeout: float = 5.0) -> AsyncIterator[Subscription]:
        """Register for `user_id`'s notifications. On entry the LISTEN is in place (or `ready_timeout` passed:
        then a resync follows as soon as it is), so a replay read from the database afterwards misses nothing."""
        subscription = Subscription(user_id)
        self._subscribers.setdefault(user_id, set()).add(subscription)
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(), name="notification-feed")
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ready_timeout):
                    await self._listening.wait()
            yield subscription
        finally:
            subs = self._subscribers.get(user_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscribers[user_id]
            if not self._subscribers:
                await self.close()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def _dispatch(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            user_id, notification_id = int(message["user_id"]), int(message["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed notification announcement: %r", payload[:200])
            return
        for subscription in self._subscribers.get(user_id, ()):
            subscription._push(notification_id)

    def _end_sessions(self, payload: str) -> None:
        try:
            user_id = int(payload)
        except ValueError:
            log.warning("ignoring a malformed session announcement: %r", payload[:200])
            return
        for subscription in self._subscribers.get(user_id, ()):
            subscription._session_changed()

    def _resync_all(self) -> None:
        for subs in self._subscribers.values():
            for subscription in subs:
                subscription._push(None)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {SESSION_CHANNEL}")
                    self._listening.set()
                    # Anything announced while we were not listening is only in the tables now.
                    self._resync_all()
                    async for note in conn.notifies():
                        if note.channel == SESSION_CHANNEL:
                            self._end_sessions(note.payload)
                        else:
                            self._dispatch(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._listening.clear()
                log.warning("notification feed lost its database connection; reconnecting", exc_info=True)
                await asyncio.sleep(self.reconnect_delay)
