"""The API as its clients meet it: the OpenAPI document the app serves, a Python client generated from it (once
per session, with openapi-python-client), and a small team to sign in as."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from core.settings import PROJECT_ROOT, Settings
from core.temporal import task_queues
from tests.approvals.conftest import settle_workflows
from tests.conftest import MakeUser, TestUser
from tests.services import BIN

GENERATOR_CONFIG = PROJECT_ROOT / "docs" / "openapi-python-client.yaml"
PACKAGE = "finance_ops_client"  # package_name_override in that file


@pytest.fixture(scope="session")
async def document(app: Any) -> dict[str, Any]:
    """The OpenAPI document, as GET /openapi.json serves it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@dataclass
class Generated:
    returncode: int
    output: str  # what the generator printed: its warnings, if any
    root: Path  # holds the package

    def module(self, name: str) -> ModuleType:
        """A module of the generated package, such as `api.expenses.expenses_create`."""
        return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(scope="session")
def generated(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """The client, generated from the app's document with the settings docs/api.md gives (no network)."""
    root = tmp_path_factory.mktemp("client")
    source = root / "openapi.json"
    source.write_text(json.dumps(document))
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(source),
            "--config",
            str(GENERATOR_CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--fail-on-warning",
        ],  # fmt: skip
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        # The generator formats its output with ruff (a post hook), found on PATH.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    sys.path.insert(0, str(root))
    yield Generated(result.returncode, result.stdout + result.stderr, root)
    sys.path.remove(str(root))
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


@dataclass
class Team:
    admin: TestUser
    manager: TestUser
    employee: TestUser


@pytest.fixture
async def team(make_user: MakeUser, worker: None, temporal_client: Client, settings: Settings) -> AsyncIterator[Team]:
    """superadmin > admin > manager > employee (registration opens once a superadmin exists), with the project's
    workers running; the workflows a test started are settled before the tables are emptied."""
    superadmin = await make_user("superadmin")
    admin = await make_user("admin", manager=superadmin)
    manager = await make_user("manager", manager=admin)
    employee = await make_user("employee", manager=manager)
    yield Team(admin, manager, employee)
    queues = task_queues(settings.temporal)
    await settle_workflows(temporal_client, queues.approvals)
    await settle_workflows(temporal_client, queues.reports)


@pytest.fixture
async def live(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the app served by uvicorn on a real socket; redirects are not followed, so they show."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30, follow_redirects=False) as http:
        yield http
