"""An exports stack of its own: the session's database and Temporal, settings with EUR books and the DATEV numbers
set (tests/exports/month.py), the project's workers for them on task queues of their own, and an app on them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from temporalio.client import Client

from activities.deps import ActivityDeps
from api.app import build_services, create_app
from core.engine import WorkflowEngine
from core.settings import ApprovalSettings, Settings, StorageSettings, TemporalSettings
from core.temporal import task_queues
from tests.approvals.conftest import settle_workflows, team  # noqa: F401 - team: a fixture, used by name
from tests.exports import month
from worker import build_deps, build_workers, worker_plan


@pytest.fixture(scope="session")
def exports_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings.model_copy(
        update={
            "temporal": TemporalSettings(task_queue_prefix=f"exp-{uuid.uuid4().hex[:8]}", rpc_timeout_seconds=5),
            "approvals": ApprovalSettings(base_currency=month.BASE),
            "storage": StorageSettings(bucket="", local_dir=tmp_path_factory.mktemp("exports-storage")),
            "exports": month.SETTINGS,
        }
    )


@pytest.fixture(scope="session")
def exports_deps(exports_settings: Settings) -> ActivityDeps:
    return build_deps(exports_settings)  # as worker.py builds them: a local folder and mail files here


@pytest.fixture(scope="session")
async def exports_worker(temporal_client: Client, exports_deps: ActivityDeps) -> AsyncIterator[None]:
    """The project's workers (worker_plan, so ExportWorkflow runs where worker.py registers it), handed the engine as
    worker.py hands it (an approved invoice starts its workflow through it)."""
    deps = replace(exports_deps, engine=WorkflowEngine(exports_deps.settings.temporal, temporal_client))
    workers = build_workers(temporal_client, worker_plan(deps))
    tasks = [asyncio.create_task(w.run()) for w in workers]
    yield
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="session")
async def exports_app(exports_settings: Settings, temporal_client: Client) -> AsyncIterator[object]:
    services = build_services(exports_settings, WorkflowEngine(exports_settings.temporal, temporal_client))
    application = create_app(services=services)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(
    exports_app: object, exports_worker: None, exports_settings: Settings, temporal_client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=exports_app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    # An invoice's workflow (`invoice-<id>`) sleeps on its reminders: ended here, or the next test's invoice of the
    # same id (ids restart with the tables, on the same engine) could not start its own.
    await settle_workflows(temporal_client, task_queues(exports_settings.temporal).approvals)
