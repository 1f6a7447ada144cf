"""The audit log for administrators: search, CSV export, and verification of the hash chain."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from api.deps import Authorize, Grant, ServicesDep, TxDep
from api.listing import listing_of
from domain.audit.queries import AuditFilter, search, stream_rows
from domain.audit.schemas import CSV_COLUMNS, AuditEntryOut, AuditPageOut, ChainVerdictOut
from domain.audit.service import verify_chain
from domain.dates import Instant
from domain.pagination import Cursor, Pager
from domain.reports.renderers import spreadsheet_text

router = APIRouter(prefix="/admin/audit", tags=["audit"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return spreadsheet_text(str(value))  # user agents, resource ids and the like are attacker-chosen


def _csv_line(values: list[object]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


@router.get(
    "",
    response_model=AuditPageOut,
    summary="Search the audit log (newest first), or export it as CSV",
    description=(
        "Filters combine with AND. `action` matches exactly, or by prefix when it ends in `.*` (`entry.*`). "
        "`since` is inclusive and `until` exclusive; times without a zone are UTC. With `format=csv` every "
        "matching row is streamed in chain order (oldest first) and `limit`/`offset` are ignored; cells that a "
        "spreadsheet would run as a formula are prefixed with `'`."
    ),
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_audit(
    grant: Annotated[Grant, Depends(Authorize("audit", "read"))],
    tx: TxDep,
    services: ServicesDep,
    cursor: Annotated[Cursor, Depends(listing_of(AuditEntryOut))],
    actor_id: Annotated[int | None, Query(ge=1)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    resource_type: Annotated[str | None, Query(max_length=40)] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> AuditPageOut | StreamingResponse:
    audit_filter = AuditFilter(actor_id, action, resource_type, resource_id, _utc(since), _utc(until))
    audit_filter.conditions()  # refuse a bad filter now, as a 422, rather than halfway through a download
    if output == "csv":
        db = services.db

        async def rows() -> AsyncIterator[bytes]:
            yield _csv_line(list(CSV_COLUMNS))
            # The request's transaction ends once the response starts: the export reads in its own (a transaction,
            # not autocommit: the rows stream from a server-side cursor, which lives in one).
            async with db.transaction() as export:
                async for row in stream_rows(export, audit_filter):
                    yield _csv_line([_cell(getattr(row, column)) for column in CSV_COLUMNS])

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
        )
    page = await search(tx, audit_filter, Pager(limit, offset, cursor))
    return AuditPageOut(
        items=[AuditEntryOut.model_validate(row) for row in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/verify",
    response_model=ChainVerdictOut,
    summary="Walk the audit hash chain and name the first broken row",
    description="`ok` is false when a row was changed, removed or inserted out of band; `first_broken_id` says where.",
)
async def verify(grant: Annotated[Grant, Depends(Authorize("audit", "verify"))], tx: TxDep) -> ChainVerdictOut:
    verdict = await verify_chain(tx)
    return ChainVerdictOut(
        ok=verdict.ok,
        rows_checked=verdict.rows_checked,
        first_broken_id=verdict.first_broken_id,
        reason=verdict.reason,
    )
