"""Receipts on expenses: add one (the file in the request, or a presigned upload to S3 and its completion), list,
fetch and delete them, within the entry's rules.

Who: the entry's owner adds and removes receipts, while the entry is a draft (or, to add, returned for changes);
everyone who may see the entry (domain/entries/service.visible_entry) may list and fetch them, nobody else (404).
What: the type comes from the file's first bytes (filetypes.py), the size is capped as the bytes arrive
(probe.py), and the entry holds at most ATTACHMENT_MAX_PER_ENTRY. A refused file leaves nothing behind: no row,
no object. Objects are written before their row commits (the caller deletes the object when the commit fails)
and deleted after their row's deletion commits, so a committed row always has its file.
A presigned upload never completed is removed, row and object, by the upkeep (upkeep.py) once
ATTACHMENT_PENDING_GRACE_SECONDS have passed; its completion then answers 404.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.authz import Authorizer
from core.db import Tx
from core.settings import AttachmentSettings
from core.storage import ObjectStorage
from domain.attachments import repository as attachments
from domain.attachments import trail
from domain.attachments.filetypes import check_extension, clean_filename, receipt_type
from domain.attachments.probe import Probe, probe_stream, too_large
from domain.attachments.repository import PENDING, STORED, AttachmentRow, NewAttachment
from domain.attachments.schemas import UploadStart
from domain.audit.service import AuditContext
from domain.entries import service as entries
from domain.errors import Conflict, DomainError, InvalidState, NotFound, ValidationFailed
from domain.models import EntryKind, EntryStatus, User
from domain.models.rows import EntryRow

log = logging.getLogger(__name__)

# Whatever the store is asked to keep before the API has looked at the bytes.
UNCHECKED_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Received:
    """A file read from a request to a temporary file, through a probe (its size, SHA-256 and first bytes)."""

    path: Path
    filename: str
    probe: Probe


def storage_key_for(entry_id: int) -> str:
    """`attachments/entry-42/<random>`: grouped by entry, unguessable, and free of the client's filename (which may
    carry anything); the filename lives in the row."""
    return f"attachments/entry-{entry_id}/{uuid.uuid4().hex}"


# --- who may do what ------------------------------------------------------------------------------------------


async def _editable_entry(tx: Tx, authorizer: Authorizer, user: User, entry_id: int, *, lock: bool = False) -> EntryRow:
    """The expense, when the caller may add a receipt to it now: 404 unseen, 403 not theirs, 409 not editable."""
    entry = await entries.visible_entry(tx, authorizer, user, EntryKind.EXPENSE, entry_id, lock=lock)
    entries.owned(entry, user, "attach a receipt to")
    if entry.status not in entries.EDITABLE:
        raise InvalidState(
            f"receipts can be added to a draft or an expense returned for changes; this one is {entry.status}",
            status=entry.status,
        )
    return entry


async def _room_for_one(tx: Tx, settings: AttachmentSettings, entry_id: int) -> None:
    held = await attachments.count_of_entry(tx.sql, entry_id)
    if held >= settings.max_per_entry:
        raise Conflict(
            f"this expense already has {held} attachments, the most one may have (ATTACHMENT_MAX_PER_ENTRY = "
            f"{settings.max_per_entry}); delete one first",
            maximum=settings.max_per_entry,
        )


async def check_upload(tx: Tx, authorizer: Authorizer, settings: AttachmentSettings, user: User, entry_id: int) -> None:
    """The early answer before a byte of the file is read (checked again, under the entry's lock, when it is kept)."""
    entry = await _editable_entry(tx, authorizer, user, entry_id)
    await _room_for_one(tx, settings, entry.id)


async def discard_files(storage: ObjectStorage, keys: list[str]) -> None:
    """Delete objects whose rows are gone (committed) or never were; one the store fails to delete is logged and
    left (an orphan costs space, not correctness: no row points at it)."""
    for key in keys:
        try:
            await asyncio.to_thread(storage.delete, key)
        except Exception:
            log.exception("could not delete the object %s of a removed attachment", key)


# --- the file in the request ----------------------------------------------------------------------------------


async def add(
    tx: Tx,
    authorizer: Authorizer,
    storage: ObjectStorage,
    settings: AttachmentSettings,
    user: User,
    entry_id: int,
    received: Received,
    context: AuditContext,
) -> AttachmentRow:
    """Keep a received file as a receipt: its type checked, the object written, then (under the entry's lock, the
    rules checked again) its row and audit row. The caller commits, and deletes the object if that fails."""
    filename = clean_filename(received.filename)
    if received.probe.size == 0:
        raise ValidationFailed("the file is empty", field="file")
    kind = receipt_type(received.probe.head, filename)
    key = storage_key_for(entry_id)
    await asyncio.to_thread(storage.put_file, key, received.path, kind.content_type)
    try:
        entry = await _editable_entry(tx, authorizer, user, entry_id, lock=True)
        await _room_for_one(tx, settings, entry.id)
        new = NewAttachment(entry.id, filename, kind.content_type, received.probe.size, received.probe.sha256, key,
                            STORED, user.id)  # fmt: skip
        row = await attachments.insert(tx.sql, new)
        await trail.audit(tx.sql, context, "attachment.added", row)
    except BaseException:
        await asyncio.to_thread(storage.delete, key)
        raise
    return row


# --- presigned uploads (S3) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    row: AttachmentRow
    url: str
    fields: dict[str, str]
    expires_at: datetime


async def start_upload(
    tx: Tx,
    authorizer: Authorizer,
    storage: ObjectStorage,
    settings: AttachmentSettings,
    user: User,
    entry_id: int,
    body: UploadStart,
    context: AuditContext,
) -> Ticket:
    """A pending attachment and the presigned POST that uploads its file: the store takes 1 to
    ATTACHMENT_MAX_BYTES bytes under exactly this key, until the link expires."""
    key = storage_key_for(entry_id)
    post = storage.presigned_post(key, settings.max_bytes, settings.upload_link_seconds)  # signed here, no request
    if post is None:
        raise Conflict(
            "presigned uploads need S3 object storage (AWS_BUCKET_NAME); with the local folder storage send the file "
            f"itself: POST /api/v1/expenses/{entry_id}/attachments (multipart, one part named file)",
            reason="needs_s3",
        )
    filename = clean_filename(body.filename)
    check_extension(filename)
    if body.size_bytes > settings.max_bytes:
        raise too_large(settings.max_bytes)
    entry = await _editable_entry(tx, authorizer, user, entry_id, lock=True)
    await _room_for_one(tx, settings, entry.id)
    new = NewAttachment(entry.id, filename, UNCHECKED_TYPE, body.size_bytes, None, key, PENDING, user.id)
    row = await attachments.insert(tx.sql, new)
    await trail.audit(tx.sql, context, "attachment.upload_started", row)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_link_seconds)
    return Ticket(row, post.url, post.fields, expires_at)


def _duration(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


@dataclass(frozen=True)
class Completion:
    """A completed upload's stored row; or, when its file was refused, why (the row is deleted in this transaction:
    the caller commits, deletes `doomed_key`, then answers with `refusal`)."""

    row: AttachmentRow | None
    refusal: DomainError | None = None
    doomed_key: str | None = None


def _inspect(storage: ObjectStorage, key: str, max_bytes: int) -> Probe | None:
    """The uploaded object read through a probe (up to the cap); None when there is no such object (yet)."""
    try:
        handle = storage.open(key)
    except FileNotFoundError:
        return None
    return probe_stream(handle, max_bytes)


async def complete_upload(
    tx: Tx,
    authorizer: Authorizer,
    storage: ObjectStorage,
    settings: AttachmentSettings,
    user: User,
    entry_id: int,
    attachment_id: int,
    context: AuditContext,
) -> Completion:
    """Read the uploaded object back from the store, decide its type, hash it and mark it stored; a file that is
    refused (type, name, size: the store's policy holds the size, this checks it again) is dropped with its row.
    Completing a stored one again answers it as it is. (With the local folder storage no upload is ever pending.)
    The row's lock makes this and the upkeep's removal exclusive: whichever comes second finds the other's result
    (stored: the upkeep leaves it; gone: this answers 404)."""
    entry = await _editable_entry(tx, authorizer, user, entry_id, lock=True)
    row = await attachments.get(tx.sql, entry.id, attachment_id, lock=True)
    if row is None:
        raise NotFound(
            f"no upload {attachment_id} on this expense: it was removed, or abandoned (an upload not completed within "
            f"{_duration(settings.grace_seconds)} of its start is discarded with its file); start a new upload",
            id=attachment_id,
        )
    if row.status == STORED:
        return Completion(row)
    try:
        probe = await asyncio.to_thread(_inspect, storage, row.storage_key, settings.max_bytes)
        if probe is None:
            raise InvalidState("the file has not been uploaded yet: POST it to the presigned URL first")
        if probe.size == 0:
            raise ValidationFailed("the file is empty", field="file")
        kind = receipt_type(probe.head, row.filename)
    except InvalidState:
        raise
    except DomainError as refusal:
        await attachments.delete(tx.sql, row.id)
        await trail.audit(tx.sql, context, "attachment.refused", row, reason=refusal.message)
        return Completion(None, refusal, row.storage_key)
    stored = await attachments.mark_stored(tx.sql, row.id, kind.content_type, probe.size, probe.sha256)
    await trail.audit(tx.sql, context, "attachment.added", stored)
    return Completion(stored)


# --- reading and deleting -------------------------------------------------------------------------------------


async def list_of(tx: Tx, authorizer: Authorizer, user: User, entry_id: int) -> list[AttachmentRow]:
    entry = await entries.visible_entry(tx, authorizer, user, EntryKind.EXPENSE, entry_id)
    return await attachments.of_entry(tx.sql, entry.id)


async def stored_one(tx: Tx, authorizer: Authorizer, user: User, entry_id: int, attachment_id: int) -> AttachmentRow:
    """A stored attachment of an expense the caller may see (404 otherwise; 409 while its upload is pending)."""
    entry = await entries.visible_entry(tx, authorizer, user, EntryKind.EXPENSE, entry_id)
    row = await attachments.get(tx.sql, entry.id, attachment_id)
    if row is None:
        raise NotFound("attachment not found", id=attachment_id)
    if row.status != STORED:
        raise InvalidState("the attachment's upload has not been completed", status=row.status)
    return row


async def delete(
    tx: Tx, authorizer: Authorizer, user: User, entry_id: int, attachment_id: int, context: AuditContext
) -> str:
    """Delete the row (owner, draft only) and answer its storage key: the caller deletes the object once the
    deletion has committed."""
    entry = await entries.visible_entry(tx, authorizer, user, EntryKind.EXPENSE, entry_id, lock=True)
    entries.owned(entry, user, "remove a receipt from")
    if entry.status != EntryStatus.DRAFT:
        raise InvalidState(
            f"receipts can be removed from a draft only; this expense is {entry.status}", status=entry.status
        )
    row = await attachments.get(tx.sql, entry.id, attachment_id, lock=True)
    if row is None:
        raise NotFound("attachment not found", id=attachment_id)
    await attachments.delete(tx.sql, row.id)
    await trail.audit(tx.sql, context, "attachment.deleted", row)
    return row.storage_key
