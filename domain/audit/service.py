"""The audit trail: one append-only, hash-chained row per state-changing action.

Writers serialise on a transaction-scoped advisory lock, so the chain never forks: each row's `prev_hash`
is the hash of the row committed before it. The lock is held only until the writer's commit.

Each hash is an HMAC under the audit key (AUDIT_HMAC_KEY, core.settings.audit_key), which the database never
sees: write access to the database is not enough to re-forge the chain after editing a row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from psycopg.types.json import Jsonb
from sqlalchemy import Table, func, select

from core.db import Tx
from core.settings import audit_key
from core.sql import Sql
from domain.models import AuditLog
from workflows.contracts import AuditContext

GENESIS_HASH = "0" * 64


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


def keyed_hash(row: AuditLog, key: bytes) -> str:
    """HMAC-SHA-256 under the audit key of the previous row's hash and this row's content: how every row is
    chained since migration 0009."""
    return hmac.new(key, row.prev_hash.encode() + _canonical(row), hashlib.sha256).hexdigest()


def plain_hash(row: AuditLog) -> str:
    """SHA-256 of the same, without a key: how rows were chained before migration 0009 (anyone could recompute it)."""
    return hashlib.sha256(row.prev_hash.encode() + _canonical(row)).hexdigest()


def _clip(value: object | None, length: int) -> str | None:
    """Fit a value to its column (an over-long user agent must not make the audited action fail)."""
    if value is None or value == "":
        return None
    return str(value)[:length]


def chained_row(
    row_id: int,
    prev_hash: str,
    context: AuditContext,
    action: str,
    resource_type: str,
    resource_id: object | None,
    changes: dict[str, Any] | None,
    key: bytes,
) -> AuditLog:
    """The row with id `row_id` after `prev_hash`, its content fitted to the columns and its keyed hash set."""
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
        prev_hash=prev_hash,
    )
    row.hash = keyed_hash(row, key)
    return row


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
    claimed = await sql.one(CLAIM, (CHAIN_LOCK_KEY,))
    assert claimed is not None
    isolation, row_id, head = claimed
    if isolation != "read committed":
        # A snapshot taken before the lock was granted cannot see the row committed just before ours: the
        # chain would fork. Audited work must run at READ COMMITTED (the default).
        raise RuntimeError(f"audit rows must be written at READ COMMITTED, not {isolation}")
    # The hash is computed here, not in SQL: the key never reaches the database server (where a bind parameter can
    # end up in its logs), and the embedded PostgreSQL has no pgcrypto. Same two round trips as before.
    row = chained_row(row_id, head, context, action, resource_type, resource_id, changes, audit_key())
    values = [getattr(row, name) for name in _COLUMNS]
    values[_COLUMNS.index("changes")] = Jsonb(row.changes)
    await sql.run(_INSERT, values)
    return row


CHAIN_LOCK_KEY = 0x4155444954  # "AUDIT"
# audit_chain_claim (migration 0009) takes the chain's lock, draws the row's id and reads the chain's head, each
# after the lock is granted: a statement inside a plpgsql function takes its own snapshot at READ COMMITTED, so it
# sees the row committed just before ours (one statement would read the head in a snapshot taken before the
# lock). One round trip, and ids follow the chain's order.
CLAIM = "SELECT isolation, row_id, head FROM audit_chain_claim(%s)"
_COLUMNS = [column.key for column in cast(Table, AuditLog.__table__).columns]
_INSERT = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    rows_checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    legacy_rows: int = 0  # rows chained with plain SHA-256 before the chain was keyed (migration 0009)


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


async def verify_chain(tx: Tx, key: bytes | None = None) -> ChainVerdict:
    """Walk the chain in id order; name the first row whose hash or link does not hold.

    Every row is keyed (HMAC under `key`, by default this process's audit key), except the rows written before
    migration 0009, which keep their plain SHA-256: they may only come first, and a keyed row must follow them (the
    migration writes one). So a row edited and rehashed without the key fails where it stands, and so does a
    tail rewritten from there on with plain hashes."""
    key = audit_key() if key is None else key
    expected_prev = GENESIS_HASH
    checked = legacy = 0
    keyed_from: int | None = None
    async for row in _rows(tx):
        checked += 1
        if row.prev_hash != expected_prev:
            return ChainVerdict(False, checked, row.id, "prev_hash does not match the previous row's hash", legacy)
        if keyed_hash(row, key) == row.hash:
            keyed_from = row.id if keyed_from is None else keyed_from
        elif plain_hash(row) != row.hash:
            reason = "content does not match its hash"
            if keyed_from is None:  # no row has verified under this key yet: perhaps it is the wrong one
                reason += " (or AUDIT_HMAC_KEY is not the key the chain was written with)"
            return ChainVerdict(False, checked, row.id, reason, legacy)
        elif keyed_from is not None:
            return ChainVerdict(
                False,
                checked,
                row.id,
                f"hashed without the key (plain SHA-256) though the chain is keyed from row {keyed_from}: "
                "rewritten by someone without the key",
                legacy,
            )
        else:
            legacy += 1
        expected_prev = row.hash
    if legacy and keyed_from is None:
        first = await tx.session.scalar(select(func.min(AuditLog.id)))
        return ChainVerdict(
            False,
            checked,
            first,
            "every row is hashed without the key, and no keyed row follows them (migration 0009 seals the rows "
            "written before it with a keyed one): rewritten by someone without the key, or checked with the wrong key",
            legacy,
        )
    return ChainVerdict(True, checked, legacy_rows=legacy)
