"""Every statement on `attachments`, in plain SQL on the transaction's connection; rows come back as
`AttachmentRow`s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.sql import Sql, columns

STORED = "stored"
PENDING = "pending"


@dataclass(frozen=True)
class AttachmentRow:
    id: int
    entry_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str | None
    storage_key: str
    status: str
    uploaded_by_id: int
    stored_at: datetime | None
    created_at: datetime


_COLUMNS = columns(AttachmentRow)
_RETURNING = f"RETURNING {_COLUMNS}"


@dataclass(frozen=True)
class NewAttachment:
    entry_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str | None
    storage_key: str
    status: str
    uploaded_by_id: int


_INSERT = (
    "INSERT INTO attachments (entry_id, filename, content_type, size_bytes, sha256, storage_key, status, "
    "uploaded_by_id, stored_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
    f"{_RETURNING}"
)


async def insert(sql: Sql, new: NewAttachment) -> AttachmentRow:
    params = (new.entry_id, new.filename, new.content_type, new.size_bytes, new.sha256, new.storage_key, new.status,
              new.uploaded_by_id, new.status == STORED)  # fmt: skip
    return await sql.written(AttachmentRow, _INSERT, params)


async def get(sql: Sql, entry_id: int, attachment_id: int, *, lock: bool = False) -> AttachmentRow | None:
    """The attachment, when it belongs to this entry."""
    query = f"SELECT {_COLUMNS} FROM attachments WHERE id = %s AND entry_id = %s" + (" FOR UPDATE" if lock else "")
    return await sql.row(AttachmentRow, query, (attachment_id, entry_id))


async def of_entry(sql: Sql, entry_id: int) -> list[AttachmentRow]:
    rows = await sql.all(f"SELECT {_COLUMNS} FROM attachments WHERE entry_id = %s ORDER BY id", (entry_id,))
    return [AttachmentRow(*values) for values in rows]


async def storage_keys_of(sql: Sql, entry_id: int) -> list[str]:
    """The objects of an entry's attachments (to delete once the entry's deletion, which cascades, has committed)."""
    rows = await sql.all("SELECT storage_key FROM attachments WHERE entry_id = %s ORDER BY id", (entry_id,))
    return [str(row[0]) for row in rows]


async def count_of_entry(sql: Sql, entry_id: int) -> int:
    """Stored and pending alike: a presigned upload under way holds its place."""
    return int(await sql.scalar("SELECT count(*) FROM attachments WHERE entry_id = %s", (entry_id,)))


# The entry-id index answers it; stopping at the first stored row.
_HAS_STORED = "SELECT EXISTS (SELECT 1 FROM attachments WHERE entry_id = %s AND status = 'stored')"


async def has_stored(sql: Sql, entry_id: int) -> bool:
    return bool(await sql.scalar(_HAS_STORED, (entry_id,)))


_MARK_STORED = (
    "UPDATE attachments SET status = 'stored', content_type = %s, size_bytes = %s, sha256 = %s, stored_at = now() "
    f"WHERE id = %s {_RETURNING}"
)


async def mark_stored(sql: Sql, attachment_id: int, content_type: str, size_bytes: int, sha256: str) -> AttachmentRow:
    return await sql.written(AttachmentRow, _MARK_STORED, (content_type, size_bytes, sha256, attachment_id))


async def delete(sql: Sql, attachment_id: int) -> None:
    await sql.run("DELETE FROM attachments WHERE id = %s", (attachment_id,))


# Ages by the database's clock, the one that set created_at. No index serves `status = 'pending'`: the scan walks
# the primary key from `after_id`, which is cheap while receipts number in the hundreds of thousands.
_PENDING_SINCE = "status = 'pending' AND created_at < now() - make_interval(secs => %s)"
_ABANDONED = f"SELECT id FROM attachments WHERE {_PENDING_SINCE} AND id > %s ORDER BY id LIMIT %s"
# SKIP LOCKED: a row someone holds is being completed or removed right now (a completion, another upkeep run, the
# owner's delete); it is left to them, and a run that finds it still pending later takes it then.
_CLAIM_ABANDONED = f"SELECT {_COLUMNS} FROM attachments WHERE id = %s AND {_PENDING_SINCE} FOR UPDATE SKIP LOCKED"


async def abandoned_ids(sql: Sql, grace_seconds: int, after_id: int, limit: int) -> list[int]:
    """Ids of uploads still pending `grace_seconds` after their start, from `after_id` on (a page of the upkeep)."""
    return [int(row[0]) for row in await sql.all(_ABANDONED, (grace_seconds, after_id, limit))]


async def claim_abandoned(sql: Sql, attachment_id: int, grace_seconds: int) -> AttachmentRow | None:
    """The row, locked for this transaction, when it is (still) an upload pending `grace_seconds` after its start
    and nobody else holds it; None otherwise (completed, deleted, or busy)."""
    return await sql.row(AttachmentRow, _CLAIM_ABANDONED, (attachment_id, grace_seconds))


@dataclass(frozen=True)
class StoredFile:
    """What a backup keeps of a stored attachment: where its file is and what it must hash to."""

    storage_key: str
    sha256: str
    size_bytes: int


async def stored_files(sql: Sql) -> list[StoredFile]:
    """Every stored attachment's file (a backup lists them in the snapshot its dump is taken at)."""
    rows = await sql.all(
        "SELECT storage_key, sha256, size_bytes FROM attachments WHERE status = 'stored' ORDER BY id", prepare=False
    )
    return [StoredFile(str(key), str(digest), int(size)) for key, digest, size in rows]


async def totals(sql: Sql) -> tuple[int, int]:
    """How many attachments there are, and the bytes of the stored ones (a backup's manifest)."""
    values = await sql.one(
        "SELECT count(*), coalesce(sum(size_bytes) FILTER (WHERE status = 'stored'), 0) FROM attachments"
    )
    assert values is not None
    return int(values[0]), int(values[1])


async def table_exists(sql: Sql) -> bool:
    """Whether the database has the table (a restored copy of a backup from before migration 0014 has not)."""
    return await sql.scalar("SELECT to_regclass('attachments') IS NOT NULL") is True
