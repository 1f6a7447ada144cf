"""Database engine and sessions (SQLAlchemy 2, async, psycopg 3)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.settings import DatabaseSettings

T = TypeVar("T")


def create_engine(settings: DatabaseSettings, *, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` tests each pooled connection before use (a round trip per checkout), so a request never fails on
    a connection the database dropped. Callers that retry anyway (the worker's activities) can go without it:
    the first statement on a dead connection fails, SQLAlchemy discards the whole pool, and the retry reconnects."""
    return create_async_engine(
        settings.async_url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=pre_ping,
        # psycopg: prepare at the first execution (0), or never (None).
        connect_args={"prepare_threshold": 0 if settings.prepared_statements else None},
        echo=settings.echo,
    )


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


def keep(session: AsyncSession, found: object | None) -> None:
    """Hold a loaded object for the session's life (see `get_kept`)."""
    if found is not None:
        session.info.setdefault("kept", []).append(found)


async def get_kept(session: AsyncSession, model: type[T], ident: Any) -> T | None:
    """`session.get`, keeping the object for the session's life. The identity map holds objects weakly: a row read
    for one field (a name, a role) would be gone by the next get of it, and read from the database again."""
    found = await session.get(model, ident)
    keep(session, found)
    return found


async def load_kept(session: AsyncSession, model: type[T], idents: Iterable[Any]) -> None:
    """Read the rows with these primary keys in one query and keep them (as `get_kept` does), so that the gets of
    them that follow are answered from the identity map. Rows the session holds already are left as they are."""
    wanted = sorted({ident for ident in idents if ident is not None})
    if not wanted:
        return
    primary_key = inspect(model).primary_key[0]
    found = await session.scalars(select(model).where(primary_key.in_(wanted)))
    session.info.setdefault("kept", []).extend(found.all())
