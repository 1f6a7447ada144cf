"""Reading the audit log: filtered pages for the admin screen and a streamed export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select

from core.db import Tx
from core.sql import Sql
from domain.errors import ValidationFailed
from domain.models import AuditLog
from domain.pagination import Keyset, Pager


@dataclass(frozen=True)
class AuditFilter:
    actor_id: int | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def conditions(self) -> list[ColumnElement[bool]]:
        if self.since and self.until and self.since >= self.until:
            raise ValidationFailed("`since` must be before `until`", since=str(self.since), until=str(self.until))
        conditions: list[ColumnElement[bool]] = []
        if self.actor_id is not None:
            conditions.append(AuditLog.actor_id == self.actor_id)
        if self.action:
            # "entry.*" matches every entry action; anything else matches exactly.
            if self.action.endswith(".*"):
                prefix = self.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                conditions.append(AuditLog.action.like(prefix + "%", escape="\\"))
            else:
                conditions.append(AuditLog.action == self.action)
        if self.resource_type:
            conditions.append(AuditLog.resource_type == self.resource_type)
        if self.resource_id:
            conditions.append(AuditLog.resource_id == self.resource_id)
        if self.since:
            conditions.append(AuditLog.occurred_at >= self.since)
        if self.until:
            conditions.append(AuditLog.occurred_at < self.until)
        return conditions

    def select(self) -> Select[AuditLog]:
        return select(AuditLog).where(*self.conditions())


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditLog]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


# Newest first, by id (the chain's order): a cursor's `id < %s` is a range on the primary key, where an offset
# deep into millions of rows would scan them all.
KEYSET = Keyset("audit", ("id",), (int,))


async def search(tx: Tx, audit_filter: AuditFilter, pager: Pager) -> AuditPage:
    """Matching rows, newest first."""
    conditions = audit_filter.conditions()
    total = await tx.session.scalar(select(func.count()).select_from(AuditLog).where(*conditions))
    after = pager.key(KEYSET)
    if after is not None:
        conditions.append(KEYSET.after_clause([AuditLog.id], after))
    rows = await tx.session.scalars(
        select(AuditLog).where(*conditions).order_by(AuditLog.id.desc()).limit(pager.fetch).offset(pager.offset)
    )
    page, next_cursor = pager.cut(KEYSET, list(rows), lambda row: (row.id,))
    return AuditPage(page, int(total or 0), pager.limit, pager.page_offset, next_cursor)


async def stream_rows(tx: Tx, audit_filter: AuditFilter) -> AsyncIterator[AuditLog]:
    """Every matching row in chain order, from a server-side cursor (memory stays flat however many)."""
    result = await tx.session.stream_scalars(
        audit_filter.select().order_by(AuditLog.id).execution_options(yield_per=1000)
    )
    async for row in result:
        yield row


_DELETED_SINCE = (
    "SELECT resource_id FROM audit_log WHERE action = %(action)s AND occurred_at >= %(since)s "
    "AND (%(actors)s::bigint[] IS NULL OR actor_id = ANY(%(actors)s)) ORDER BY id LIMIT %(cap)s"
)


async def deleted_since(
    sql: Sql, action: str, since: datetime, actors: list[int] | None, cap: int = 10_000
) -> list[str]:
    """The ids of the resources deleted by `action` at or after `since` (by one of `actors`, when given): the
    tombstones of a delta sync. The rows are gone; the audit log is where their deletion is on record."""
    rows = await sql.all(_DELETED_SINCE, {"action": action, "since": since, "actors": actors, "cap": cap})
    return [row[0] for row in rows if row[0] is not None]
