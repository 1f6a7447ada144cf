"""The database: an engine, and the one way to work with it, a transaction (`Database.transaction()` -> `Tx`).

The API (one per request), the activities, the CLI and the tests all go through it. A `Tx` owns one pooled
connection and the transaction on it; on that same transaction it offers

- `tx.sql`: plain statements on the psycopg connection (core/sql.py). The approval path, entries and the users
  directory read and write this way: through the async ORM each statement cost about five times what bare psycopg
  does (docs/benchmarks.md), and that path runs tens of statements per approval;
- `tx.session`: an ORM session bound to the same connection, made on first use, for the features that keep their
  models (accounts, reports, backups, notifications). It never commits by itself: the Tx does, after flushing it.

So plain and ORM statements mix in one transaction, and nothing but `Tx` begins or ends one.

Reads that tolerate a replica's lag (reports' datasets, the dashboard and analytics) go through `ReadDatabase`:
DATABASE_READ_URL when set and reachable, else the primary (core/settings.py `DatabaseSettings`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from core.settings import DatabaseSettings
from core.sql import Sql, configure_plain_statements

log = logging.getLogger(__name__)


def create_engine(
    settings: DatabaseSettings, *, pre_ping: bool = True, connect_timeout: int | None = None
) -> AsyncEngine:
    """`pre_ping` tests each pooled connection before use (a round trip per checkout), so a request never fails on
    a connection the database dropped. Callers that retry anyway (the worker's activities) can go without it:
    the first statement on a dead connection fails, the whole pool is renewed, and the retry reconnects."""
    # psycopg: prepare at the first execution (0), or never (None: behind a transaction-mode pooler).
    connect_args: dict[str, Any] = {"prepare_threshold": 0 if settings.prepares_statements else None}
    if connect_timeout is not None:
        connect_args["connect_timeout"] = connect_timeout
    engine = create_async_engine(
        settings.async_url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
        echo=settings.echo,
    )
    event.listen(engine.sync_engine, "connect", _configure_connection)
    return engine


def _configure_connection(dbapi_connection: Any, _record: object) -> None:
    configure_plain_statements(dbapi_connection.driver_connection)


class Tx:
    """One transaction on one pooled connection: `sql` for plain statements, `session` for the ORM, both in it.

    In autocommit mode (`Database.transaction(autocommit=True)`, for work that only reads) each statement commits
    on its own: no BEGIN and COMMIT round trips. Never for writes that belong together (an audit row needs its
    transaction's lock)."""

    def __init__(self, connection: AsyncConnection, driver: psycopg.AsyncConnection[Any], autocommit: bool) -> None:
        self.connection = connection
        self.sql = Sql(driver)
        self.autocommit = autocommit
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            # Joined to the transaction this Tx began; it never ends it ("rollback_only": its commit does not commit
            # the connection's transaction), so only the Tx commits, after flushing it.
            self._session = _TxSession(self, bind=self.connection, expire_on_commit=False)
        return self._session

    async def commit(self) -> None:
        """Make what was done so far durable (before a workflow is started or told of it, say); the work goes on in
        a new transaction on the same connection, with the same session."""
        if self._session is not None:
            await self._session.flush()
        if not self.autocommit:
            await self.connection.commit()
            await self.connection.begin()

    async def _finish(self) -> None:
        if self._session is not None:
            await self._session.flush()
        if not self.autocommit:
            await self.connection.commit()
        await self._close_session()

    async def _abandon(self) -> None:
        try:
            await self._close_session()
            if self.connection.in_transaction():
                await self.connection.rollback()
        except Exception:
            if not self.sql.connection.broken:
                raise  # a broken connection cannot roll back; the pool discards it, and the work is lost anyway

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _TxSession(AsyncSession):
    """The Tx's ORM session: committing it commits the Tx (the one way a transaction ends)."""

    def __init__(self, tx: Tx, **kwargs: Any) -> None:
        super().__init__(join_transaction_mode="rollback_only", **kwargs)
        self.tx = tx

    async def commit(self) -> None:
        await self.tx.commit()


class Database:
    """The engine and its transactions. One per process (the API's lifespan, the worker, the CLI)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def connect(cls, settings: DatabaseSettings, *, pre_ping: bool = True) -> Database:
        return cls(create_engine(settings, pre_ping=pre_ping))

    @asynccontextmanager
    async def transaction(self, *, autocommit: bool = False, read_only: bool = False) -> AsyncIterator[Tx]:
        """One unit of work: committed when the block ends, rolled back when it raises; the connection goes back to
        the pool either way. `read_only`: BEGIN READ ONLY, so PostgreSQL refuses any write in it."""
        connection = await self.engine.connect()
        try:
            if autocommit:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                if read_only:  # reset when the connection goes back to the pool
                    await connection.execution_options(postgresql_readonly=True)
                await connection.begin()
            # The pooled connection is in hand already: no awaited (greenlet) call to fetch its driver connection.
            sync = connection.sync_connection
            assert sync is not None  # connected: engine.connect() returned it
            driver = sync.connection.driver_connection
            tx = Tx(connection, driver, autocommit)  # type: ignore[arg-type]
            try:
                yield tx
                await tx._finish()
            except BaseException as error:
                await tx._abandon()
                if isinstance(error, psycopg.Error) and tx.sql.connection.broken:
                    await self._renew_pool(connection)
                raise
        finally:
            await connection.close()

    async def _renew_pool(self, connection: AsyncConnection) -> None:
        """The database dropped this connection, and most likely every idle one with it (a restart, a failover).
        SQLAlchemy discards its whole pool when one of its own statements meets a dropped connection; plain
        statements do the same here, or each retry would draw the next dead connection from the pool."""
        await connection.invalidate()
        await self.engine.dispose()

    async def dispose(self) -> None:
        await self.engine.dispose()


class ReadDatabase:
    """Where reads that tolerate replication lag go: the replica (DATABASE_READ_URL) when one is configured and
    answers, else the primary. The transactions it opens are READ ONLY on either, so a write that strays here fails
    loudly on the primary too, not only on a real replica (a request's own transaction, handed in as `on_primary`,
    stays what it is: a `read_only` route's, in autocommit).

    The replica is given DATABASE_READ_CONNECT_TIMEOUT_SECONDS to accept a connection; when it does not, the read
    runs on the primary (a warning says so) and the replica is left alone for DATABASE_READ_RETRY_SECONDS, so an
    outage costs one timeout, not one per request. Only reaching it falls back: a statement that fails on the
    replica fails the read, as it would on the primary."""

    def __init__(self, primary: Database, replica: Database | None = None, *, retry_seconds: float = 30.0) -> None:
        self.primary = primary
        self.replica = replica
        self.retry_seconds = retry_seconds
        self._replica_down_until = 0.0

    @classmethod
    def connect(cls, settings: DatabaseSettings, primary: Database, *, pre_ping: bool = True) -> ReadDatabase:
        replica_settings = settings.replica()
        if replica_settings is None:
            return cls(primary)
        engine = create_engine(
            replica_settings, pre_ping=pre_ping, connect_timeout=settings.read_connect_timeout_seconds
        )
        return cls(primary, Database(engine), retry_seconds=settings.read_retry_seconds)

    @property
    def replica_in_use(self) -> bool:
        return self.replica is not None and time.monotonic() >= self._replica_down_until

    @asynccontextmanager
    async def transaction(self, *, on_primary: Tx | None = None) -> AsyncIterator[Tx]:
        """A READ ONLY transaction on the replica, else on the primary: `on_primary` when given (a request's own
        transaction, so a read without a replica takes no second connection), else a new one."""
        async with AsyncExitStack() as stack:
            tx: Tx | None = None
            if self.replica is not None and self.replica_in_use:
                try:
                    tx = await stack.enter_async_context(self.replica.transaction(read_only=True))
                except (OperationalError, psycopg.OperationalError) as error:
                    self._replica_down_until = time.monotonic() + self.retry_seconds
                    log.warning(
                        "read replica unreachable (%s): reading from the primary for the next %.0f s",
                        str(error.orig if isinstance(error, OperationalError) else error).strip(),
                        self.retry_seconds,
                    )
            if tx is None:
                tx = on_primary
            if tx is None:
                tx = await stack.enter_async_context(self.primary.transaction(read_only=True))
            yield tx

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.dispose()
