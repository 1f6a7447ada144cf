"""`/exports`: numbered, immutable export batches of a closed month's journals, made by a workflow and downloaded
like a report. Accountants and up (policy `export create|read`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.file_responses import file_responses
from api.idempotency import IdempotencyKey, replayed
from api.listing import listing_of
from domain.approvals.commands import Caller
from domain.errors import InvalidState, NotFound
from domain.exports import service
from domain.exports.commands import ExportCommands
from domain.exports.schemas import ExportFormat, ExportOut, ExportPage, ExportRequest, ExportStatus, Month, first_day
from domain.pagination import Cursor, Pager

router = APIRouter(prefix="/exports", tags=["exports"])

Create = Annotated[Grant, Depends(Authorize("export", "create"))]
Read = Annotated[Grant, Depends(Authorize("export", "read"))]
ExportId = RowId
DOWNLOAD_LINK_SECONDS = 300


@router.post(
    "",
    status_code=202,
    response_model=ExportOut,
    summary="Export a closed month's journals; a workflow makes the file",
    responses={409: {"description": "the month is not closed"}, 503: {"description": "the engine is away"}},
)
async def create_export(
    body: ExportRequest, tx: TxDep, services: ServicesDep, grant: Create, key: IdempotencyKey = None
) -> Any:
    """A new batch, numbered without gaps, of the journals the month's latest closing froze, in `format`:
    `journal_csv` (our balanced journal CSV), `xero` (Xero's manual journal import), `quickbooks` (QuickBooks
    Online's journal entry import) or `datev` (DATEV's EXTF booking batch). `pending` until its workflow
    (`export-<number>`) has stored the file; then `completed` with the file's size and SHA-256, or `failed` with the
    reason. Another batch of the same closing and format has the same bytes."""
    commands = ExportCommands(services.settings, services.engine)
    return replayed(await commands.create(tx, Caller(grant.user, grant.audit, key), body))


@router.get("", response_model=ExportPage, summary="Export batches, the newest first")
@read_only
async def list_exports(
    tx: TxDep,
    grant: Read,
    cursor: Annotated[Cursor, Depends(listing_of(ExportOut))],
    month: Annotated[Month | None, Query()] = None,
    format: Annotated[ExportFormat | None, Query()] = None,
    status: Annotated[ExportStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ExportPage:
    filters = service.Filters(first_day(month) if month else None, format, status)
    return await service.list_batches(tx.sql, filters, Pager(limit, offset, cursor))


@router.get("/{export_id}", response_model=ExportOut, summary="One export batch")
@read_only
async def get_export(export_id: ExportId, tx: TxDep, grant: Read) -> ExportOut:
    return service.to_out(await service.get_batch(tx.sql, export_id))


def _chunks(handle: Any, size: int = 1 << 16) -> Iterator[bytes]:
    try:
        while chunk := handle.read(size):
            yield chunk
    finally:
        handle.close()


@router.get(
    "/{export_id}/download",
    summary="Download an export batch's file",
    response_class=Response,
    responses=file_responses(
        ("text/csv", "application/zip"),
        {
            307: "S3 storage: a short-lived presigned URL",
            404: "no such export, or its file is no longer stored",
            409: "the export is not completed",
        },
    ),
)
@read_only
async def download_export(export_id: ExportId, tx: TxDep, services: ServicesDep, grant: Read) -> Response:
    batch = await service.get_batch(tx.sql, export_id)
    if batch.status != ExportStatus.COMPLETED.value or not batch.storage_key or not batch.filename:
        raise InvalidState(f"the export is {batch.status}, not ready to download", status=batch.status)
    url = services.storage.presigned_url(batch.storage_key, batch.filename, DOWNLOAD_LINK_SECONDS)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    try:
        handle = services.storage.open(batch.storage_key)
    except FileNotFoundError as error:
        raise NotFound("the export's file is no longer stored", id=batch.id) from error
    return StreamingResponse(
        _chunks(handle),
        media_type=batch.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{batch.filename}"',
            **({"Content-Length": str(batch.size_bytes)} if batch.size_bytes is not None else {}),
        },
    )
