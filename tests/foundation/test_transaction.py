"""core.db.Database.transaction(): the one way a unit of work begins and ends (the API's requests, the activities,
the CLI). Plain statements (`tx.sql`) and the ORM (`tx.session`) share its transaction: it commits what the block
did, keeps nothing of a block that raised, and gives its connection back to the pool either way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest

from activities.deps import ActivityDeps
from core.db import Database
from core.settings import DatabaseSettings
from domain.models import SentEmail

_INSERT = "INSERT INTO sent_emails (message_id, recipients, subject, sent_at) VALUES (%s, %s, 'probe', %s)"
_COUNT = "SELECT count(*) FROM sent_emails WHERE message_id = %s"


async def _stored(deps: ActivityDeps, message_id: str) -> int:
    async with deps.db.transaction(autocommit=True) as tx:
        return int(await tx.sql.scalar(_COUNT, (message_id,)))


def _orm_row(message_id: str) -> SentEmail:
    return SentEmail(message_id=message_id, recipients="b@example.com", subject="probe", sent_at=datetime.now(UTC))


async def test_a_block_that_ends_commits_plain_and_orm_writes(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        await tx.sql.run(_INSERT, ("plain@probe", "a@example.com", datetime.now(UTC)))
        tx.session.add(_orm_row("orm@probe"))  # not flushed by hand: the end of the block flushes it
    assert await _stored(activity_deps, "plain@probe") == 1
    assert await _stored(activity_deps, "orm@probe") == 1


async def test_plain_statements_see_flushed_orm_writes_in_the_same_transaction(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        tx.session.add(_orm_row("seen@probe"))
        await tx.session.flush()
        assert await tx.sql.scalar(_COUNT, ("seen@probe",)) == 1


async def test_a_block_that_raises_leaves_nothing(activity_deps: ActivityDeps) -> None:
    with pytest.raises(RuntimeError):
        async with activity_deps.db.transaction() as tx:
            await tx.sql.run(_INSERT, ("dropped@probe", "a@example.com", datetime.now(UTC)))
            tx.session.add(_orm_row("dropped-orm@probe"))
            await tx.session.flush()
            raise RuntimeError("the work failed after its inserts")
    assert await _stored(activity_deps, "dropped@probe") == 0
    assert await _stored(activity_deps, "dropped-orm@probe") == 0


async def test_commit_makes_the_work_so_far_durable_and_the_block_goes_on(activity_deps: ActivityDeps) -> None:
    """What a route does before it starts a workflow: commit, then carry on (a failure after it keeps the first
    part). Committing the ORM session is the same commit."""
    with pytest.raises(RuntimeError):
        async with activity_deps.db.transaction() as tx:
            await tx.sql.run(_INSERT, ("first@probe", "a@example.com", datetime.now(UTC)))
            await tx.commit()
            tx.session.add(_orm_row("second@probe"))
            await tx.session.commit()
            await tx.sql.run(_INSERT, ("third@probe", "a@example.com", datetime.now(UTC)))
            raise RuntimeError("the workflow could not be started")
    assert await _stored(activity_deps, "first@probe") == 1
    assert await _stored(activity_deps, "second@probe") == 1
    assert await _stored(activity_deps, "third@probe") == 0


async def test_autocommit_keeps_each_statement_and_refuses_audit_rows(activity_deps: ActivityDeps) -> None:
    from domain.audit.service import SYSTEM, record

    with pytest.raises(RuntimeError, match="inside a transaction"):
        async with activity_deps.db.transaction(autocommit=True) as tx:
            await tx.sql.run(_INSERT, ("autocommitted@probe", "a@example.com", datetime.now(UTC)))
            await record(tx.sql, SYSTEM, "probe.autocommit", "probe")
    assert await _stored(activity_deps, "autocommitted@probe") == 1


async def test_every_connection_goes_back_to_the_pool(activity_deps: ActivityDeps) -> None:
    pool = activity_deps.db.engine.pool
    for attempt in range(3 * activity_deps.settings.db.pool_size):
        with pytest.raises(ZeroDivisionError):
            async with activity_deps.db.transaction() as tx:
                await tx.sql.scalar("SELECT %s", (attempt,))
                tx.session.add(_orm_row(f"pool-{attempt}@probe"))
                _ = 1 / 0
    async with activity_deps.db.transaction() as tx:
        assert await tx.sql.scalar("SELECT 1") == 1
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_after_the_database_drops_its_connections_one_failure_renews_the_pool(database_url: str) -> None:
    """As SQLAlchemy does for its own statements: the first transaction that meets a dropped connection fails (the
    caller retries), and the next one gets a live connection, not the next dead one of the pool."""
    db = Database.connect(DatabaseSettings(url=database_url, pool_size=5, max_overflow=0), pre_ping=False)
    try:
        pids: set[int] = set()
        gate = asyncio.Event()

        async def hold() -> None:  # five at once, so the pool holds five connections
            async with db.transaction() as tx:
                pids.add(int(await tx.sql.scalar("SELECT pg_backend_pid()")))
                await gate.wait()

        holders = [asyncio.create_task(hold()) for _ in range(5)]
        while len(pids) < 5:
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*holders)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (sorted(pids),))
        with pytest.raises(psycopg.OperationalError):
            async with db.transaction() as tx:
                await tx.sql.scalar("SELECT 1")
        async with db.transaction() as tx:
            assert await tx.sql.scalar("SELECT pg_backend_pid()") not in pids
    finally:
        await db.dispose()
