"""core.db.plain_transaction: plain SQL on a pooled connection without an ORM session (the worker's transitions
and email ledger): it commits what the block did, keeps nothing of a block that raised, and gives its connection
back to the pool either way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest

from activities.deps import ActivityDeps
from core.db import create_engine, plain_transaction, session_factory
from core.settings import DatabaseSettings
from core.sql import sql_of

_INSERT = "INSERT INTO sent_emails (message_id, recipients, subject, sent_at) VALUES (%s, %s, 'probe', %s)"
_COUNT = "SELECT count(*) FROM sent_emails WHERE message_id = %s"


async def _stored(deps: ActivityDeps, message_id: str) -> int:
    async with deps.sessions() as session:
        return int(await (await sql_of(session)).scalar(_COUNT, (message_id,)))


async def test_a_block_that_ends_commits(activity_deps: ActivityDeps) -> None:
    async with plain_transaction(activity_deps.sessions) as sql:
        await sql.run(_INSERT, ("kept@probe", "a@example.com", datetime.now(UTC)))
    assert await _stored(activity_deps, "kept@probe") == 1


async def test_a_block_that_raises_leaves_nothing(activity_deps: ActivityDeps) -> None:
    with pytest.raises(RuntimeError):
        async with plain_transaction(activity_deps.sessions) as sql:
            await sql.run(_INSERT, ("dropped@probe", "a@example.com", datetime.now(UTC)))
            raise RuntimeError("the work failed after its insert")
    assert await _stored(activity_deps, "dropped@probe") == 0


async def test_every_connection_goes_back_to_the_pool(activity_deps: ActivityDeps) -> None:
    pool = activity_deps.sessions.kw["bind"].pool
    for attempt in range(3 * activity_deps.settings.db.pool_size):
        with pytest.raises(ZeroDivisionError):
            async with plain_transaction(activity_deps.sessions) as sql:
                await sql.scalar("SELECT %s", (attempt,))
                _ = 1 / 0
    async with plain_transaction(activity_deps.sessions) as sql:
        assert await sql.scalar("SELECT 1") == 1
    assert pool.checkedout() == 0


async def test_after_the_database_drops_its_connections_one_failure_renews_the_pool(database_url: str) -> None:
    """As SQLAlchemy does for its own statements: the first transaction that meets a dropped connection fails (the
    caller retries), and the next one gets a live connection, not the next dead one of the pool."""
    engine = create_engine(DatabaseSettings(url=database_url, pool_size=5, max_overflow=0), pre_ping=False)
    sessions = session_factory(engine)
    try:
        pids: set[int] = set()
        gate = asyncio.Event()

        async def hold() -> None:  # five at once, so the pool holds five connections
            async with plain_transaction(sessions) as sql:
                pids.add(int(await sql.scalar("SELECT pg_backend_pid()")))
                await gate.wait()

        holders = [asyncio.create_task(hold()) for _ in range(5)]
        while len(pids) < 5:
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*holders)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (sorted(pids),))
        with pytest.raises(psycopg.OperationalError):
            async with plain_transaction(sessions) as sql:
                await sql.scalar("SELECT 1")
        async with plain_transaction(sessions) as sql:
            assert await sql.scalar("SELECT pg_backend_pid()") not in pids
    finally:
        await engine.dispose()
