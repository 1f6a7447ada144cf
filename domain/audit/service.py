"""The audit trail: one append-only, hash-chained row per state-changing action.

Writers serialise on a transaction-scoped advisory lock, so the chain never forks: each row's `prev_hash`
is the hash of the row committed before it. The lock is held only until the writer's commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from psycopg.types.json import Jsonb
from sqlalchemy import Table, select

from core.db import Tx
from core.sql import Sql
from domain.models import AuditLog
from workflows.contracts import AuditContext

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x4155444954  # "AUDIT"


SYSTEM = AuditContext()  # a change nobody asked for by hand (a reload, a schedule)


def jsonable(value: Any) -> Any:
    """Plain JSON (Decimal, dates and floats as strings), so the stored JSONB reads back exactly as hashed.

    Floats become strings because JSONB would not give them back as written (`1e20` reads back as
    `100000000000000000000`) and refuses NaN outright; either would break the row's hash or the write.
    """
    return json.loads(json.dumps(value, default=str), parse_float=str, parse_constant=str)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The changed fields as {field: [old, new]}."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changed[key] = [old, new]
    return jsonable(changed)


def _canonical(row: AuditLog) -> bytes:
    occurred = row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    content = {
        "id": row.id,
        "occurred_at": occurred,
        "actor_id": row.actor_id,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "changes": row.changes,
        "request_id": row.request_id,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "workflow_id": row.workflow_id,
        "policy_rule": row.policy_rule,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: AuditLog) -> str:
    return hashlib.sha256(row.prev_hash.encode() + _canonical(row)).hexdigest()


def _clip(value: object | None, length: int) -> str | None:
    """Fit a value to its column (an over-long user agent must not make the audited action fail)."""
    if value is None or value == "":
        return None
    return str(value)[:length]


async def record(
    sql: Sql,
    context: AuditContext,
    action: str,
    resource_type: str,
    resource_id: object | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row in the caller's transaction (`tx.sql`; it becomes visible when the caller commits)."""
    if sql.connection.autocommit:
        # The chain's lock would end with this statement and the row's insert would take its own: the chain could
        # fork. Audited work runs in a transaction (never in a read_only route's autocommit session).
        raise RuntimeError("audit rows must be written inside a transaction")
    # The row's id is drawn under the lock (the function in FROM runs before the select list), so ids follow the
    # chain's order.
    locked = await sql.one(_LOCK, (_CHAIN_LOCK_KEY,))
    assert locked is not None
    isolation, row_id = locked
    if isolation != "read committed":
        # A snapshot taken before the lock was granted cannot see the row committed just before ours: the
        # chain would fork. Audited work must run at READ COMMITTED (the default).
        raise RuntimeError(f"audit rows must be written at READ COMMITTED, not {isolation}")
    row = AuditLog(
        id=row_id,
        occurred_at=datetime.now(UTC),
        actor_id=context.actor_id,
        action=action[:60],
        resource_type=resource_type[:40],
        resource_id=_clip(resource_id, 64),
        changes=jsonable(changes or {}),
        request_id=_clip(context.request_id, 64),
        client_ip=_clip(context.client_ip, 64),
        user_agent=_clip(context.user_agent, 300),
        workflow_id=_clip(context.workflow_id, 100),
        policy_rule=_clip(context.policy_rule, 200),
    )
    # A statement of its own, after the lock: its snapshot sees the row committed just before ours. It reads that
    # row's hash and chains to it in the database (the same SHA-256 as `row_hash`), which spares a round trip.
    values = [getattr(row, name) for name in _CONTENT]
    values[_CONTENT.index("changes")] = Jsonb(row.changes)
    linked = await sql.one(_LINKED_INSERT, (*values, _canonical(row)))
    assert linked is not None
    row.prev_hash, row.hash = linked
    return row


_LOCK = (
    "SELECT current_setting('transaction_isolation'), nextval(pg_get_serial_sequence('audit_log', 'id')) "
    "FROM pg_advisory_xact_lock(%s)"
)
_CONTENT = [column.key for column in cast(Table, AuditLog.__table__).columns if column.key not in ("prev_hash", "hash")]
# INSERT ... SELECT of a row's content with prev_hash = the newest row's hash and hash = sha256(prev_hash ||
# canonical), the same digest as `row_hash` computes.
_LINKED_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_CONTENT)}, prev_hash, hash) "
    f"SELECT {', '.join(['%s'] * len(_CONTENT))}, previous.hash, "
    "encode(sha256(convert_to(previous.hash, 'UTF8') || %s::bytea), 'hex') "
    f"FROM (SELECT coalesce((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), '{GENESIS_HASH}') AS hash) previous "
    "RETURNING prev_hash, hash"
)


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    rows_checked: int
    first_broken_id: int | None = None
    reason: str | None = None


async def _rows(tx: Tx, batch: int = 5000) -> AsyncIterator[AuditLog]:
    last_id = 0
    while True:
        rows = (
            await tx.session.scalars(select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch))
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id
        tx.session.expunge_all()


async def verify_chain(tx: Tx) -> ChainVerdict:
    """Walk the chain in id order; name the first row whose hash or link does not hold."""
    expected_prev = GENESIS_HASH
    checked = 0
    async for row in _rows(tx):
        checked += 1
        if row.prev_hash != expected_prev:
            return ChainVerdict(False, checked, row.id, "prev_hash does not match the previous row's hash")
        if row_hash(row) != row.hash:
            return ChainVerdict(False, checked, row.id, "content does not match its hash")
        expected_prev = row.hash
    return ChainVerdict(True, checked)
