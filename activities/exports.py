"""Export activities: make a batch's file from its closing's journals, store it, record it; or record why not.

The render reads the journals in one transaction (holding the period's row, so the month is not reopened under it)
into a temporary file, stores the file (core/storage.py) and completes the batch in a second transaction. A retry
after a crash renders the same bytes again (the rendering depends on the closing only) and overwrites a stored
half; a batch no longer pending is returned as it is, never rendered again. Journals a format cannot hold
(`ExportRefused`) fail the batch at once with the reason; anything else is retried by the workflow.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.errors import NotFound
from domain.exports import service
from domain.exports.formats import renderer_for
from domain.exports.rendering import ExportRefused
from domain.exports.schemas import ExportStatus
from domain.ledger import repository as ledger
from workflows.contracts import EXPORT_REFUSED, ExportActivity, ExportFailure, ExportJob, ExportResult


def _audit() -> AuditContext:
    return AuditContext(workflow_id=activity.info().workflow_id if activity.in_activity() else None)


class ExportActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name=ExportActivity.RENDER)
    async def render(self, job: ExportJob) -> ExportResult:
        settings = self.deps.settings
        with tempfile.TemporaryDirectory(prefix="export-") as folder:
            async with self.deps.db.transaction() as tx:
                try:
                    batch = await service.get_batch(tx.sql, job.batch_id)
                except NotFound as error:
                    raise ApplicationError(error.message, type="NotFound", non_retryable=True) from error
                if batch.status != ExportStatus.PENDING.value:
                    return service.result_of(batch)
                try:
                    context = await service.context_for(tx.sql, settings, batch)
                    path = Path(folder) / "export"
                    with path.open("wb") as out:
                        renderer = renderer_for(batch.format, context, out)
                        written = 0
                        async for chunk in ledger.closing_journals(tx.sql, batch.month, batch.closing):
                            await asyncio.to_thread(renderer.write, chunk)
                            written += len(chunk)
                            activity.heartbeat(written)
                        renderer.finish()
                except ExportRefused as refused:
                    raise ApplicationError(refused.message, type=EXPORT_REFUSED, non_retryable=True) from refused
            filename = renderer.filename(batch.number)
            key = service.storage_key(batch, filename)
            stored = await asyncio.to_thread(self.deps.storage.put_file, key, path, renderer.content_type)
            digest = await asyncio.to_thread(service.sha256_of, path)
        record = service.StoredFile(key, filename, renderer.content_type, stored.size, digest, written)
        async with self.deps.db.transaction() as tx:
            return service.result_of(await service.complete(tx.sql, batch, record, _audit()))

    @activity.defn(name=ExportActivity.FAIL)
    async def fail(self, failure: ExportFailure) -> ExportResult:
        try:
            async with self.deps.db.transaction() as tx:
                return service.result_of(await service.fail(tx.sql, failure.batch_id, failure.error, _audit()))
        except NotFound as error:
            raise ApplicationError(error.message, type="NotFound", non_retryable=True) from error

    def all(self) -> list[Callable[..., Any]]:
        return [self.render, self.fail]
