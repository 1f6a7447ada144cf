"""A live API process for the schema-driven fuzz tests (schemathesis speaks real HTTP to it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from tests.bench.stack import start_api
from tests.services import free_port


@pytest.fixture
def live_api(settings: Settings, temporal_env: WorkflowEnvironment, worker: None, tmp_path: Path) -> Iterator[str]:
    """uvicorn on a free port, on the session's database and Temporal server; the in-process worker serves it."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.db.url,
        "SECRET_KEY": settings.auth.secret_key,
        "BCRYPT_ROUNDS": "4",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE_PREFIX": settings.temporal.task_queue_prefix,
        "TEMPORAL_RPC_TIMEOUT_SECONDS": "5",
        "STORAGE_DIR": str(settings.storage.local_dir),
        "MAIL_DIR": str(settings.smtp.mail_dir),
        "LOG_LEVEL": "WARNING",
    }
    for key in ("SMTP_HOST", "AWS_BUCKET_NAME", "S3_BUCKET"):
        env.pop(key, None)
    process = start_api(env, tmp_path, port, log_name="api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a busy machine imports the app slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError((tmp_path / "api.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
