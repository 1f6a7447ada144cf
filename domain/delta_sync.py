"""Delta sync (`?updated_since=`): the time a client sends next, so that no change falls between two syncs.

A row's `updated_at` is the start of the transaction that changed it (`now()`, migration 0007), and that
transaction may commit after a sync has read: a sync at 10:00:05 does not see the edit a transaction begun at
10:00:04 commits at 10:00:06, and a next sync from 10:00:05 would skip it for good. So the time handed back is the
start of the oldest transaction still running when the sync began (or the sync's own start, when none is older):
every change a later commit makes carries that time or a later one. It is read BEFORE the rows are, in its own
statement, so a transaction that commits between the two is either seen by the read or still counted here.

pg_stat_activity shows a session's transaction start only to its own role (or to pg_read_all_stats): the API, the
worker and the scheduler write as one database role, as DATABASE_URL gives them. A second before it is taken off, for
the few times the application sets itself (a notification's `read_at`, an audit row's `occurred_at`) from its host's
clock rather than the database's.
"""

from __future__ import annotations

from datetime import datetime

from core.sql import Sql

_WATERMARK = (
    "SELECT least(now(), min(xact_start)) - interval '1 second' FROM pg_stat_activity "
    "WHERE datname = current_database() AND xact_start IS NOT NULL"
)


async def watermark(sql: Sql) -> datetime:
    """What a client sends as `updated_since` next time, to see every change committed after this read."""
    value: datetime = await sql.scalar(_WATERMARK)
    return value
