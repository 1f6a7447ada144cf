"""Export batches: requested for a closed month and a format (numbered, `pending`, audited), then made once by their
workflow from the closing's journals (`completed` with the file's size and SHA-256, or `failed` with the reason).
Services flush, never commit.

Numbers are gap-free: the next value of the series `EXPORT` (year 0, one series that never restarts) is taken in
the request's transaction through `domain.invoices.numbering` (an upsert that locks the series' row until the
commit), so two batches never share a number and a request that rolls back gives its number back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core.settings import Settings
from core.sql import Sql
from domain.audit.service import AuditContext, record
from domain.errors import InvalidState, NotFound, ValidationFailed
from domain.exports import repository
from domain.exports.rendering import ExportContext, ExportRefused
from domain.exports.repository import BatchRow
from domain.exports.schemas import ExportFormat, ExportOut, ExportPage, ExportRequest, ExportStatus
from domain.invoices.numbering import next_in_series
from domain.ledger import repository as ledger
from domain.models import User
from domain.pagination import Pager
from workflows.contracts import ExportResult, export_workflow_id

SERIES = "EXPORT"
SERIES_YEAR = 0  # one series for every export, never restarted
RESOURCE = "export_batch"


async def request_export(
    sql: Sql, settings: Settings, user: User, request: ExportRequest, audit: AuditContext
) -> BatchRow:
    """Record a batch of the month's latest closing, `pending` (the caller starts its workflow after the commit).
    409 unless the month is closed; 422 for a DATEV export before the DATEV numbers are set."""
    month = request.first_day
    # FOR SHARE: the month cannot be reopened until this batch (and the closing it names) is committed.
    closed = await ledger.closed_period(sql, month, hold=True)
    if closed is None:
        raise InvalidState(f"{request.month} is not closed: only a closed month is exported", month=request.month)
    if request.format == ExportFormat.DATEV and not settings.exports.datev_ready:
        raise ValidationFailed(
            "a DATEV export needs DATEV_CONSULTANT_NUMBER and DATEV_CLIENT_NUMBER to be set", field="format"
        )
    number = await next_in_series(sql, SERIES, SERIES_YEAR)
    batch = await repository.insert(
        sql, number, month, closed.closings, request.format.value, export_workflow_id(number), user.id
    )
    await record(sql, audit, "export.created", RESOURCE, batch.id, {
        "number": number, "month": request.month, "closing": closed.closings, "format": batch.format,
        "workflow_id": batch.workflow_id,
    })  # fmt: skip
    return batch


def month_label(month: date) -> str:
    return month.strftime("%Y-%m")


def to_out(batch: BatchRow) -> ExportOut:
    done = batch.status == ExportStatus.COMPLETED.value
    return ExportOut(
        id=batch.id,
        number=batch.number,
        month=month_label(batch.month),
        closing=batch.closing,
        format=ExportFormat(batch.format),
        status=ExportStatus(batch.status),
        workflow_id=batch.workflow_id,
        filename=batch.filename,
        content_type=batch.content_type,
        size_bytes=batch.size_bytes,
        sha256=batch.sha256,
        journals=batch.journals,
        error=batch.error,
        created_by_id=batch.created_by_id,
        created_at=batch.created_at,
        completed_at=batch.completed_at,
        download_url=f"/api/v1/exports/{batch.id}/download" if done else None,
    )


async def get_batch(sql: Sql, batch_id: int) -> BatchRow:
    batch = await repository.get(sql, batch_id)
    if batch is None:
        raise NotFound("no such export", id=batch_id)
    return batch


@dataclass(frozen=True)
class Filters:
    month: date | None = None
    format: ExportFormat | None = None
    status: ExportStatus | None = None


async def list_batches(sql: Sql, filters: Filters, pager: Pager) -> ExportPage:
    rows, total = await repository.page(
        sql,
        pager.fetch,
        pager.offset,
        pager.key(repository.KEYSET),
        month=filters.month,
        format=filters.format.value if filters.format else None,
        status=filters.status.value if filters.status else None,
    )
    page, next_cursor = pager.cut(repository.KEYSET, rows, lambda row: (row.number,))
    return ExportPage(
        items=[to_out(row) for row in page],
        total=total,
        limit=pager.limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


# --- made by the workflow's activity ----------------------------------------------------------------------


async def context_for(sql: Sql, settings: Settings, batch: BatchRow) -> ExportContext:
    """What the batch's file is made from. The month must still be closed at the batch's closing: reopened (or
    closed again) since the request, its journals are no longer the ones the batch was asked for, and the batch
    fails (ask for a new one). Holds the period's row FOR SHARE, so a reopening waits until the journals are read."""
    closed = await ledger.closed_period(sql, batch.month, hold=True)
    if closed is None or closed.closings != batch.closing:
        raise ExportRefused(
            f"{month_label(batch.month)} was reopened since this export was requested (closing {batch.closing}); "
            "request a new export once it is closed",
            month=month_label(batch.month),
        )
    assert closed.closed_at is not None  # a closed month's row says when
    count, lines = await ledger.closing_size(sql, batch.month, batch.closing)
    return ExportContext(
        month=batch.month,
        closing=batch.closing,
        closed_at=closed.closed_at,
        base_currency=settings.approvals.base_currency,
        settings=settings.exports,
        journals=count,
        lines=lines,
    )


def storage_key(batch: BatchRow, filename: str) -> str:
    return f"exports/{batch.number}/{filename}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredFile:
    storage_key: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    journals: int


async def complete(sql: Sql, batch: BatchRow, stored: StoredFile, audit: AuditContext) -> BatchRow:
    """The batch, completed with its file (audited); as it is when it was no longer pending (nothing changes)."""
    done = await repository.complete(
        sql,
        batch.id,
        storage_key=stored.storage_key,
        filename=stored.filename,
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        journals=stored.journals,
    )
    if done is None:
        return await get_batch(sql, batch.id)
    await record(sql, audit, "export.completed", RESOURCE, batch.id, {
        "number": batch.number, "filename": stored.filename, "size_bytes": stored.size_bytes,
        "sha256": stored.sha256, "journals": stored.journals, "storage_key": stored.storage_key,
    })  # fmt: skip
    return done


async def fail(sql: Sql, batch_id: int, error: str, audit: AuditContext) -> BatchRow:
    """The batch, failed with `error` (audited); as it is when it was no longer pending."""
    failed = await repository.fail(sql, batch_id, error)
    if failed is None:
        return await get_batch(sql, batch_id)
    await record(sql, audit, "export.failed", RESOURCE, batch_id, {"number": failed.number, "error": failed.error})
    return failed


def result_of(batch: BatchRow) -> ExportResult:
    return ExportResult(
        batch_id=batch.id,
        number=batch.number,
        status=batch.status,
        filename=batch.filename,
        size_bytes=batch.size_bytes,
        sha256=batch.sha256,
        journals=batch.journals,
        error=batch.error,
    )
