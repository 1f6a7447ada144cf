"""Fixtures on real services: PostgreSQL built by Alembic, the Temporal dev server, moto's S3, aiosmtpd.

One database and one Temporal dev server per test session; every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from api.deps import AppServices
from core.authz import Authorizer
from core.db import Database
from core.engine import WorkflowEngine
from core.mail import FileTransport
from core.security import hash_password, issue_token
from core.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    Settings,
    SmtpSettings,
    StorageSettings,
    TemporalSettings,
)
from core.storage import LocalStorage
from domain.models import User
from tests.services import (
    SmtpSink,
    admin_database_url,
    free_port,
    migrate,
    scratch_database,
    smtp_server,
    start_temporal_dev_server,
    truncate_all,
)
from worker import build_workers, worker_plan

PASSWORD = "correct-horse-battery-staple"

# No process a test starts fetches exchange rates from the internet (the workers some tests run start the rate
# backfill): the ECB URLs point at the shipped sample unless a test serves its own.
SAMPLE_RATES = (Path(__file__).parent.parent / "domain" / "fx" / "samples" / "eurofxref-hist-90d.xml").as_uri()
for _name in ("FX_RATES_URL", "FX_RATES_HISTORY_URL"):
    os.environ.setdefault(_name, SAMPLE_RATES)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database(admin_database_url()) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root: Path = tmp_path_factory.mktemp("var")
    return Settings(
        environment=Environment.TEST,
        db=DatabaseSettings(url=database_url, pool_size=5),
        temporal=TemporalSettings(task_queue_prefix=f"test-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48), bcrypt_rounds=4, allow_registration=True),
        storage=StorageSettings(bucket="", local_dir=root / "storage"),
        smtp=SmtpSettings(host="", mail_dir=root / "mail"),
    )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_temporal_dev_server() as env:
        yield env


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def activity_deps(settings: Settings) -> ActivityDeps:
    return ActivityDeps(
        settings=settings,
        db=Database.connect(settings.db),
        authorizer=Authorizer(settings.policy_dir),
        storage=LocalStorage(settings.storage.local_dir),
        mail=FileTransport(settings.smtp.mail_dir, settings.smtp.sender),
    )


@pytest.fixture(scope="session")
async def worker(temporal_client: Client, activity_deps: ActivityDeps) -> AsyncIterator[None]:
    """The project's workers, in this process, for the whole session (with the engine, as worker.py hands it)."""
    deps = replace(activity_deps, engine=WorkflowEngine(activity_deps.settings.temporal, temporal_client))
    workers = build_workers(temporal_client, worker_plan(deps))
    tasks = [asyncio.create_task(w.run()) for w in workers]
    yield
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
async def app_services(settings: Settings, temporal_client: Client) -> AppServices:
    return build_services(settings, WorkflowEngine(settings.temporal, temporal_client))


@pytest.fixture(scope="session")
async def app(app_services: AppServices) -> AsyncIterator[object]:
    application = create_app(services=app_services)
    async with application.router.lifespan_context(application):
        yield application


@contextlib.asynccontextmanager
async def own_api(
    settings: Settings, temporal_client: Client, client_address: tuple[str, int] = ("203.0.113.9", 50000)
) -> AsyncIterator[httpx.AsyncClient]:
    """An API of its own (its own engine and pool, as another API process would have) on these settings, its
    lifespan running, reached through an ASGI client from `client_address`."""
    services = build_services(settings, WorkflowEngine(settings.temporal, temporal_client))
    application = create_app(services=services)
    transport = httpx.ASGITransport(app=application, client=client_address)  # type: ignore[arg-type]
    try:
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        ):
            yield http
    finally:
        await services.db.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def api_url(app: object) -> AsyncIterator[str]:
    """The session's app (lifespan already running) served over real HTTP."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.force_exit = True
    async with asyncio.timeout(10):
        await task


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "database_url" in request.fixturenames:
        # In a thread: the in-process workers share this event loop and must be free to finish their work.
        await asyncio.to_thread(truncate_all, request.getfixturevalue("database_url"))


@dataclass
class TestUser:
    __test__ = False  # not a test class, despite its name
    id: int
    email: str
    username: str
    role: str
    manager_id: int | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[..., Awaitable[TestUser]]
_counter = itertools.count(1)


@pytest.fixture
def make_user(settings: Settings, activity_deps: ActivityDeps) -> MakeUser:
    """Create a user directly in the database and mint an access token for them."""

    async def make(role: str = "employee", manager: TestUser | None = None, **fields: object) -> TestUser:
        n = next(_counter)
        async with activity_deps.db.transaction() as tx:
            user = User(
                email=str(fields.pop("email", f"{role}{n}@example.com")),
                username=str(fields.pop("username", f"{role}{n}")),
                full_name=str(fields.pop("full_name", f"{role.title()} {n}")),
                password_hash=hash_password(str(fields.pop("password", PASSWORD)), settings.auth.bcrypt_rounds),
                role=role,
                manager_id=manager.id if manager else None,
                is_active=True,
                is_verified=True,
                **fields,
            )
            tx.session.add(user)
            await tx.commit()
            token, _ = issue_token(
                settings.auth,
                user_id=user.id,
                token_type="access",
                token_version=user.token_version,
                lifetime=timedelta(minutes=15),
            )
            return TestUser(user.id, user.email, user.username, role, user.manager_id, token)

    return make
