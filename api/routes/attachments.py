"""Receipts on expenses (`/expenses/{id}/attachments`): upload (the file itself, or a presigned upload to S3 and
its completion), list, download, delete.

Uploading and deleting are an `entry update` (the owner's, on a draft); listing and downloading an `entry read`
(whoever may see the entry). The upload route's body may be larger than MAX_BODY_BYTES: up to ATTACHMENT_MAX_BYTES
plus the multipart framing (api/app.py tells the body-size middleware so).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse

from api.deps import AppServices, Authorize, Grant, RowId, ServicesDep, TxDep, read_only
from api.file_responses import file_responses
from api.uploads import FRAMING_BYTES, received_file
from core.db import Tx
from core.storage import ObjectStorage
from domain.attachments import service
from domain.attachments.filetypes import RECEIPT_TYPES
from domain.attachments.repository import AttachmentRow
from domain.attachments.schemas import AttachmentList, AttachmentOut, UploadStart, UploadTicket
from domain.errors import NotFound

log = logging.getLogger(__name__)

router = APIRouter(prefix="/expenses", tags=["receipts"])

Read = Annotated[Grant, Depends(Authorize("entry", "read"))]
Update = Annotated[Grant, Depends(Authorize("entry", "update"))]

UPLOAD_PATH = re.compile(r"/api/v1/expenses/\d+/attachments/?")  # the route's path, as the middleware sees it


def upload_body_limit(max_bytes: int) -> tuple[str, re.Pattern[str], int]:
    """The body-size middleware's limit for the upload route: the file's cap and its multipart framing."""
    return "POST", UPLOAD_PATH, max_bytes + FRAMING_BYTES


def _base(entry_id: int) -> str:
    return f"/api/v1/expenses/{entry_id}/attachments"


def _out(row: AttachmentRow) -> AttachmentOut:
    out = AttachmentOut.model_validate(row)
    if row.status == "stored":
        out.download_url = f"{_base(row.entry_id)}/{row.id}"
    return out


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/{entry_id:int}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    summary="Attach a receipt (PDF, JPEG, PNG, WebP or HEIC) to a draft expense",
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "the file is larger than ATTACHMENT_MAX_BYTES (nothing is stored)"}},
)
async def upload(entry_id: RowId, request: Request, grant: Update, tx: TxDep, services: ServicesDep) -> AttachmentOut:
    """One part named `file`. Its type is read from its first bytes; its name's extension must agree. The owner
    only, while the expense is a draft or returned for changes (403, 409); at most ATTACHMENT_MAX_PER_ENTRY (409)."""
    settings = services.settings.attachments
    # Refused before a byte of the file is read: someone else's entry, a submitted one, a full one.
    await service.check_upload(tx, services.authorizer, settings, grant.user, entry_id)
    async with received_file(request, settings.max_bytes) as received:
        row = await service.add(
            tx, services.authorizer, services.storage, settings, grant.user, entry_id, received, grant.audit
        )
    await _commit_or_drop(tx, services.storage, row.storage_key)
    return _out(row)


async def _commit_or_drop(tx: Tx, storage: ObjectStorage, key: str) -> None:
    """Commit the row of an object already written; when the commit fails, the object goes too."""
    try:
        await tx.commit()
    except BaseException:
        await service.discard_files(storage, [key])
        raise


@router.post(
    "/{entry_id:int}/attachments/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadTicket,
    summary="Start a presigned upload of a receipt straight to S3",
    responses={
        409: {"description": "the storage is the local folder (presigned uploads need S3), or the entry is full"},
        413: {"description": "size_bytes is larger than ATTACHMENT_MAX_BYTES"},
    },
)
async def start_upload(
    entry_id: RowId, body: UploadStart, grant: Update, tx: TxDep, services: ServicesDep
) -> UploadTicket:
    """A pending attachment and an S3 presigned POST for its file (the store takes at most ATTACHMENT_MAX_BYTES
    under exactly its key). Upload, then POST `complete_url`: the API reads the file back and checks it."""
    settings = services.settings.attachments
    ticket = await service.start_upload(
        tx, services.authorizer, services.storage, settings, grant.user, entry_id, body, grant.audit
    )
    return UploadTicket(
        attachment=_out(ticket.row),
        url=ticket.url,
        fields=ticket.fields,
        max_bytes=settings.max_bytes,
        expires_at=ticket.expires_at,
        complete_url=f"{_base(entry_id)}/{ticket.row.id}/complete",
    )


@router.post(
    "/{entry_id:int}/attachments/{attachment_id:int}/complete",
    response_model=AttachmentOut,
    summary="Complete a presigned upload: the API checks the stored file's type and size and hashes it",
    responses={
        409: {"description": "the file has not been uploaded yet"},
        413: {"description": "the stored file is larger than ATTACHMENT_MAX_BYTES (it is deleted)"},
        422: {"description": "the stored file is not a receipt type, or its name disagrees (it is deleted)"},
    },
)
async def complete_upload(
    entry_id: RowId, attachment_id: RowId, grant: Update, tx: TxDep, services: ServicesDep
) -> AttachmentOut:
    completion = await service.complete_upload(
        tx, services.authorizer, services.storage, services.settings.attachments, grant.user, entry_id,
        attachment_id, grant.audit,
    )  # fmt: skip
    if completion.refusal is not None:
        await tx.commit()  # the refused upload's row is gone for good, then its object
        assert completion.doomed_key is not None
        await service.discard_files(services.storage, [completion.doomed_key])
        raise completion.refusal
    assert completion.row is not None
    return _out(completion.row)


@router.get("/{entry_id:int}/attachments", response_model=AttachmentList, summary="An expense's receipts")
@read_only
async def list_attachments(entry_id: RowId, grant: Read, tx: TxDep, services: ServicesDep) -> AttachmentList:
    """Whoever may see the expense (its owner, their managers, accountants, the approvers of its steps)."""
    rows = await service.list_of(tx, services.authorizer, grant.user, entry_id)
    return AttachmentList(items=[_out(row) for row in rows])


DOWNLOAD_LINK_SECONDS = 300


def _ascii_name(filename: str) -> str:
    """The filename as plain ASCII for a quoted header parameter (the exact one goes in filename*)."""
    text = filename.encode("ascii", "replace").decode().replace("?", "_")
    return re.sub(r'["\\\r\n]', "_", text)


def content_disposition(filename: str) -> str:
    return f"attachment; filename=\"{_ascii_name(filename)}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{entry_id:int}/attachments/{attachment_id:int}",
    summary="Download a receipt",
    response_class=Response,
    responses=file_responses(
        sorted(RECEIPT_TYPES),
        {
            307: "S3 storage: a short-lived presigned URL",
            409: "its upload has not been completed",
        },
    ),
)
@read_only
async def download(entry_id: RowId, attachment_id: RowId, grant: Read, tx: TxDep, services: ServicesDep) -> Response:
    row = await service.stored_one(tx, services.authorizer, grant.user, entry_id, attachment_id)
    return await _file_response(services, row)


def _chunks(handle: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    try:
        while chunk := handle.read(size):
            yield chunk
    finally:
        handle.close()


async def _file_response(services: AppServices, row: AttachmentRow) -> Response:
    storage = services.storage
    url = storage.presigned_url(row.storage_key, _ascii_name(row.filename), DOWNLOAD_LINK_SECONDS)
    if url is not None:
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    try:
        handle = await asyncio.to_thread(storage.open, row.storage_key)
    except FileNotFoundError as error:
        log.error("attachment %s: its file %s is missing from the storage", row.id, row.storage_key)
        raise NotFound("the receipt's file is missing from the storage", id=row.id) from error
    return StreamingResponse(
        _chunks(handle),
        media_type=row.content_type,
        headers={"Content-Disposition": content_disposition(row.filename), "Content-Length": str(row.size_bytes)},
    )


@router.delete(
    "/{entry_id:int}/attachments/{attachment_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a receipt from a draft expense",
)
async def delete(entry_id: RowId, attachment_id: RowId, grant: Update, tx: TxDep, services: ServicesDep) -> None:
    """The owner, while the expense is a draft (403, 409). The file is deleted once the removal has committed."""
    key = await service.delete(tx, services.authorizer, grant.user, entry_id, attachment_id, grant.audit)
    await tx.commit()
    await service.discard_files(services.storage, [key])
