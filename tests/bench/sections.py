"""The `make bench` sections beyond approvals: reads on a million entries, reports, backups."""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx

from core.security import issue_token
from core.settings import PROJECT_ROOT, AuthSettings
from tests.bench.approvals import percentile
from tests.bench.generate import bench_viewers
from tests.bench.stack import Stack
from tests.services import admin_database_url, migrate, s3_server, scratch_database

LIST_QUERIES = (
    "/api/v1/expenses/?status=approved&category=software&sort=date&order=desc&limit=20",
    "/api/v1/expenses/?amount_min=100&amount_max=500&sort=amount&order=desc&limit=50",
    "/api/v1/revenue/?date_from=2025-01-01&date_to=2025-03-31&sort=date&limit=20",
)


def list_latency(stack: Stack, samples: int) -> dict[str, float]:
    """Filtered, sorted lists over HTTP, serially, for a viewer who sees everything and one who sees a team."""
    auth = AuthSettings(secret_key=stack.env["SECRET_KEY"])
    viewers = bench_viewers(stack.database_url)
    figures: dict[str, float] = {}
    everyone: list[float] = []
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        for label, user_id in viewers.items():
            token, _ = issue_token(
                auth, user_id=user_id, token_type="access", token_version=0, lifetime=timedelta(hours=1)
            )
            headers = {"Authorization": f"Bearer {token}"}
            for query in LIST_QUERIES:  # warm-up
                http.get(query, headers=headers).raise_for_status()
            timings = []
            for n in range(samples):
                query = LIST_QUERIES[n % len(LIST_QUERIES)]
                started = time.perf_counter()
                http.get(query, headers=headers).raise_for_status()
                timings.append(time.perf_counter() - started)
            figures[f"{label} p95_ms"] = round(percentile(timings, 0.95) * 1000, 1)
            everyone += timings
    figures["p50_ms"] = round(statistics.median(everyone) * 1000, 1)
    figures["p95_ms"] = round(percentile(everyone, 0.95) * 1000, 1)
    return figures


def report_timings(work: Path, rows: int, pdf_rows: int) -> dict[str, Any]:
    """The real generate activity in its own process (so its peak RSS is the worker's), on a scratch database."""
    with scratch_database(admin_database_url(), "finance_bench_reports") as url:
        migrate(url)
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.reports",
                "--rows",
                str(rows),
                "--pdf-rows",
                str(pdf_rows),
                "--database-url",
                url,
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
    return json.loads(output)  # type: ignore[no-any-return]


def backup_timings(database_url: str, work: Path) -> dict[str, Any]:
    """Our backup activity (pg_dump -Fc, SHA-256, multipart upload to moto's S3) against a bare pg_dump -Fc."""
    return asyncio.run(_backup_timings(database_url, work))


async def _backup_timings(database_url: str, work: Path) -> dict[str, Any]:
    from temporalio.testing import ActivityEnvironment

    from activities.backups import BackupActivities
    from activities.deps import ActivityDeps
    from core.authz import Authorizer
    from core.db import Database
    from core.mail import FileTransport
    from core.settings import DatabaseSettings, Settings, StorageSettings
    from core.storage import S3Storage
    from domain.backups import pg_tools as pg
    from workflows.contracts import BackupJob

    server = pg.connection_for(database_url)
    tools = pg.find_pg_tools(await pg.server_major_of(server), "")
    bare = work / "bare.dump"
    started = time.perf_counter()
    await pg.pg_dump(tools, server, bare)
    bare_seconds = time.perf_counter() - started
    bare_size = bare.stat().st_size
    bare.unlink()

    with s3_server() as endpoint:
        bucket = f"bench-{secrets.token_hex(4)}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=bucket)
        storage_settings = StorageSettings(
            bucket=bucket, endpoint_url=endpoint, access_key_id="bench", secret_access_key="bench"
        )
        settings = Settings(db=DatabaseSettings(url=database_url), storage=storage_settings)
        deps = ActivityDeps(
            settings=settings,
            db=Database.connect(settings.db),
            authorizer=Authorizer(settings.policy_dir),
            storage=S3Storage(storage_settings),
            mail=FileTransport(work / "mail", "bench@localhost"),
        )
        activities = BackupActivities(deps, work_dir=work / "backups")
        job = BackupJob(workflow_id=f"backup-bench-{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        artifact = await ActivityEnvironment().run(activities.create_backup, job)
        ours_seconds = time.perf_counter() - started
        await deps.db.dispose()
    return {
        "bare_seconds": round(bare_seconds, 2),
        "bare_bytes": bare_size,
        "ours_seconds": round(ours_seconds, 2),
        "ours_bytes": artifact.size_bytes,
        "parts": artifact.parts,
        "ratio": round(bare_seconds / ours_seconds, 2),
    }
