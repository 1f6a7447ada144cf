"""Exchange-rate import fixtures: a local HTTP server that plays a script of answers per path (and counts the
requests), and a worker of the import workflow on a task queue of its own."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.deps import ActivityDeps
from activities.fx import FxActivities
from activities.notifications import NotificationActivities
from core.settings import PROJECT_ROOT, Settings, TemporalSettings
from core.temporal import task_queues
from workflows.fx import FxRatesImportWorkflow

SAMPLE = PROJECT_ROOT / "domain" / "fx" / "samples" / "eurofxref-hist-90d.xml"


@dataclass
class RateServer:
    """Serves, per path, its scripted answers in order (the last one again once they run out)."""

    base_url: str
    answers: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def serve(self, path: str, *answers: tuple[int, bytes]) -> str:
        self.answers[path] = list(answers)
        self.hits[path] = 0
        return self.base_url + path


@pytest.fixture
def rate_server() -> Iterator[RateServer]:
    state = RateServer(base_url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            with lock:
                script = state.answers.get(self.path)
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
                status, body = (script.pop(0) if len(script) > 1 else script[0]) if script else (404, b"not here")
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def fx_deps(activity_deps: ActivityDeps, rate_server: RateServer) -> ActivityDeps:
    """The session's deps on a task queue prefix of their own, the ECB URLs on the local server."""
    settings: Settings = activity_deps.settings
    fx = settings.fx.model_copy(
        update={"rates_url": rate_server.base_url + "/daily.xml", "history_url": rate_server.base_url + "/hist.xml"}
    )
    own = settings.model_copy(
        update={"fx": fx, "temporal": TemporalSettings(task_queue_prefix=f"fx-test-{uuid.uuid4().hex[:8]}")}
    )
    return ActivityDeps(
        settings=own,
        db=activity_deps.db,
        authorizer=activity_deps.authorizer,
        storage=activity_deps.storage,
        mail=activity_deps.mail,
    )


@pytest.fixture
async def fx_queue(temporal_client: Client, fx_deps: ActivityDeps) -> AsyncIterator[str]:
    """A worker of FxRatesImportWorkflow (and the email activity) for one test; its task queue."""
    task_queue = task_queues(fx_deps.settings.temporal).reports
    worker = Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[FxRatesImportWorkflow],
        activities=[*FxActivities(fx_deps).all(), NotificationActivities(fx_deps).send_email],
        graceful_shutdown_timeout=timedelta(0),
    )
    task = asyncio.create_task(worker.run())
    yield task_queue
    await worker.shutdown()
    await asyncio.gather(task, return_exceptions=True)


def sample_bytes() -> bytes:
    return Path(SAMPLE).read_bytes()
