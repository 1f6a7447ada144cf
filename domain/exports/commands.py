"""Asking for an export: record the batch, commit, start its workflow (`export-<number>`, on the reports queue).

With an Idempotency-Key, a repeat gets the first answer and never a second batch; a repeat of a batch still
pending starts its workflow again (a start under the batch's workflow id is harmless when it runs or ran), which
finishes what a request that died between its commit and the start left undone. When the engine cannot be reached,
the batch (already numbered: numbers are gap-free) is marked failed with the reason, the key forgotten, and the
caller told to try again (503).
"""

from __future__ import annotations

from core.db import Tx
from core.engine import EngineUnavailable, UserMetadata, WorkflowEngine
from core.settings import Settings
from domain.approvals.commands import Caller
from domain.errors import ServiceUnavailable
from domain.exports import service
from domain.exports.schemas import ExportOut, ExportRequest, ExportStatus
from domain.idempotency import service as idempotency
from domain.idempotency.once import Replayed, once
from workflows.contracts import EXPORT_WORKFLOW, ExportJob

SCOPE = "POST /exports"
ENGINE_AWAY = "the workflow engine was unreachable; request the export again"


class ExportCommands:
    def __init__(self, settings: Settings, engine: WorkflowEngine) -> None:
        self.settings = settings
        self.engine = engine

    async def create(self, tx: Tx, caller: Caller, request: ExportRequest) -> ExportOut | Replayed:
        """202 with the pending batch; 409 for a month not closed, 422 for DATEV without its numbers, 503 when the
        engine is away."""
        body = request.model_dump(mode="json")
        answer = await once(tx, caller.user.id, caller.key, SCOPE, body, 202, self._record, tx, caller, request)
        if isinstance(answer, Replayed):
            batch = await service.get_batch(tx.sql, int(answer.body["id"]))
            if batch.status == ExportStatus.PENDING.value:
                shown = _metadata(batch.number, batch.month.strftime("%Y-%m"), batch.format, batch.closing, caller)
                await self._start(batch.id, batch.workflow_id, shown)
            return answer
        await tx.commit()  # the batch and the key's answer are durable before the workflow starts
        try:
            shown = _metadata(answer.number, answer.month, answer.format, answer.closing, caller)
            await self._start(answer.id, answer.workflow_id, shown)
        except ServiceUnavailable:
            await service.fail(tx.sql, answer.id, ENGINE_AWAY, caller.audit)
            if caller.key is not None:
                await idempotency.forget(tx, caller.user.id, caller.key)
            await tx.commit()
            raise
        return answer

    async def _record(self, tx: Tx, caller: Caller, request: ExportRequest) -> ExportOut:
        batch = await service.request_export(tx.sql, self.settings, caller.user, request, caller.audit)
        return service.to_out(batch)

    async def _start(self, batch_id: int, workflow_id: str, metadata: UserMetadata) -> None:
        try:
            await self.engine.start(
                EXPORT_WORKFLOW,
                ExportJob(batch_id=batch_id),
                workflow_id=workflow_id,
                task_queue=self.engine.queues.reports,
                metadata=metadata,
            )
        except EngineUnavailable as error:
            raise ServiceUnavailable("the workflow engine is unreachable; try again shortly") from error


def _metadata(number: int, month: str, export_format: str, closing: int, caller: Caller) -> UserMetadata:
    """What the Temporal UI shows of an export's workflow."""
    return UserMetadata(
        summary=f"Export #{number}: {month} journals as {export_format}, requested by {caller.user.full_name}",
        details=f"Closing {closing} of {month}. In the app: /api/v1/exports (batch {number})",
    )
