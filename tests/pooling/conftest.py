"""The app and the worker with DATABASE_URL through a private PgBouncer in transaction mode (DATABASE_POOLER=
transaction), the session's PostgreSQL at DATABASE_DIRECT_URL, on task queues of their own. Each URL carries an
application_name (`finance-pooled`, `finance-direct`), so pg_stat_activity tells which way a connection came."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from temporalio.client import Client

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from core.engine import WorkflowEngine
from core.settings import DatabasePooler, DatabaseSettings, Settings, TemporalSettings
from core.temporal import task_queues
from tests.approvals.conftest import settle_workflows
from tests.conftest import MakeUser, TestUser
from tests.pooling.pgbouncer import PgBouncer, direct_url, pgbouncer_binary, running_pgbouncer
from tests.services import free_port
from worker import build_deps, build_workers, worker_plan

POOLED_APP = "finance-pooled"
DIRECT_APP = "finance-direct"


@pytest.fixture(scope="session")
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed: `make pgbouncer` installs Debian's package (apt-get, as root)")
    with running_pgbouncer(binary, database_url) as bouncer:
        yield bouncer


def pooled(settings: Settings, database_url: str, bouncer: PgBouncer, **db: object) -> Settings:
    """`settings` with DATABASE_URL through `bouncer` in transaction mode, on task queues of their own."""
    return settings.model_copy(
        update={
            "db": DatabaseSettings(
                url=bouncer.url_for(database_url, POOLED_APP),
                direct_url=direct_url(database_url, DIRECT_APP),
                pooler=DatabasePooler.TRANSACTION,
                **db,
            ),
            "temporal": TemporalSettings(task_queue_prefix=f"pool-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
        }
    )


@pytest.fixture(scope="session")
def pooled_settings(settings: Settings, database_url: str, pgbouncer: PgBouncer) -> Settings:
    return pooled(settings, database_url, pgbouncer)


@contextlib.asynccontextmanager
async def worker_on(
    settings: Settings, temporal_client: Client, queues: tuple[str, ...]
) -> AsyncIterator[ActivityDeps]:
    """worker.py's Workers for `queues` in this process, on `settings` (its deps as worker.py builds them)."""
    deps = build_deps(settings)
    deps.engine = WorkflowEngine(settings.temporal, temporal_client)
    workers = build_workers(temporal_client, worker_plan(deps, queues))
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield deps
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*tasks, return_exceptions=True)
        await deps.db.dispose()
        await deps.reads.dispose()


@contextlib.asynccontextmanager
async def api_on(settings: Settings, temporal_client: Client) -> AsyncIterator[str]:
    """The API on `settings`, its lifespan running, served by uvicorn on a free port (the SSE stream needs a real
    socket): its base URL."""
    services = build_services(settings, WorkflowEngine(settings.temporal, temporal_client))
    application = create_app(services=services)
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    try:
        async with application.router.lifespan_context(application):
            task = asyncio.create_task(server.serve())
            async with asyncio.timeout(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                    await asyncio.sleep(0.02)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                async with asyncio.timeout(10):
                    await task
                feed = getattr(application.state, "notification_feed", None)
                if feed is not None:
                    await feed.close()
    finally:
        await services.db.dispose()
        await services.reads.dispose()


@pytest.fixture(scope="session")
async def pooled_deps(pooled_settings: Settings, temporal_client: Client) -> AsyncIterator[ActivityDeps]:
    """The worker's approvals and reports Workers, through PgBouncer."""
    async with worker_on(pooled_settings, temporal_client, ("approvals", "reports")) as deps:
        yield deps


@pytest.fixture(scope="session")
async def pooled_api(
    pooled_settings: Settings, temporal_client: Client, pooled_deps: ActivityDeps
) -> AsyncIterator[str]:
    async with api_on(pooled_settings, temporal_client) as url:
        yield url


@pytest.fixture(autouse=True)
async def _pooled_workflows_settled(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Before the tables are emptied: no activity of this test left mid-transaction (tests/approvals/conftest.py)."""
    yield
    if "pooled_deps" in request.fixturenames:
        settings: Settings = request.getfixturevalue("pooled_settings")
        client: Client = request.getfixturevalue("temporal_client")
        queues = task_queues(settings.temporal)
        for queue in (queues.approvals, queues.reports):
            await settle_workflows(client, queue)


@dataclass
class Team:
    admin: TestUser
    manager: TestUser
    employee: TestUser


@pytest.fixture
async def team(make_user: MakeUser) -> Team:
    admin = await make_user("admin")
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    return Team(admin, manager, employee)
