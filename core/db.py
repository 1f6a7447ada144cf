"""Database engine and sessions (SQLAlchemy 2, async, psycopg 3)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

from core.settings import DatabaseSettings
from core.sql import Sql, configure_plain_statements


def create_engine(settings: DatabaseSettings, *, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` tests each pooled connection before use (a round trip per checkout), so a request never fails on
    a connection the database dropped. Callers that retry anyway (the worker's activities) can go without it:
    the first statement on a dead connection fails, SQLAlchemy discards the whole pool, and the retry reconnects."""
    engine = create_async_engine(
        settings.async_url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_pre_ping=pre_ping,
        # psycopg: prepare at the first execution (0), or never (None).
        connect_args={"prepare_threshold": 0 if settings.prepared_statements else None},
        echo=settings.echo,
    )
    event.listen(engine.sync_engine, "connect", _configure_connection)
    return engine


def _configure_connection(dbapi_connection: Any, _record: object) -> None:
    configure_plain_statements(dbapi_connection.driver_connection)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_AUTOCOMMIT: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]] = (
    weakref.WeakKeyDictionary()
)


def autocommit_sessions(factory: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions on `factory`'s pool whose statements each commit on their own: no BEGIN and COMMIT round trips, for
    work that only reads. Never for writes that belong together (an audit row needs its transaction's lock).
    Built once per factory; like any session, one connects at its first statement."""
    found = _AUTOCOMMIT.get(factory)
    if found is None:
        engine: AsyncEngine = factory.kw["bind"]
        found = async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
        _AUTOCOMMIT[factory] = found
    return found


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def plain_transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[Sql]:
    """One transaction of plain SQL on a connection from the sessions' pool, without an ORM session: it commits
    when the block ends and rolls back when it raises. An ORM session's own lifecycle (its transaction, the
    connection checkout, commit and close, each a greenlet hand-off) cost twice the CPU of a short transaction's
    statements; the worker runs its approval transitions and its email ledger this way."""
    engine: AsyncEngine = factory.kw["bind"]
    pooled = await engine.raw_connection()
    connection: psycopg.AsyncConnection[Any] = pooled.driver_connection  # type: ignore[assignment]
    try:
        async with connection.transaction():
            yield Sql(connection)
    except psycopg.Error:
        if connection.broken:
            # The database dropped it, and most likely every idle one with it (a restart, a failover). SQLAlchemy
            # discards its whole pool when one of its own statements meets a dropped connection; so does this, or
            # each retry would draw the next dead connection from the pool.
            await greenlet_spawn(pooled.invalidate)
            await engine.dispose()
        raise
    finally:
        await greenlet_spawn(pooled.close)  # back to the pool (its reset-on-return runs in a greenlet)
