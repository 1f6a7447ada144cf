"""One audit row per policy change, whichever process applied it first.

Every process (each API process, the worker) holds its own Casbin enforcer and reloads a changed file by itself, so
a change is applied several times, once in each. The database keeps the order of the versions applied
(`policy_versions`): a change is the next position after the version in force, and the position is unique, so the
first process to insert it records the change and writes its audit row; another finds the change recorded (or the
position taken) and writes nothing. A refused file is audited once the same way (`policy_refusals`, by its version).
Every statement on those two tables is here.
"""

from __future__ import annotations

import asyncio
import logging

from core.authz import Authorizer, ReloadResult
from core.db import Database
from core.sql import Sql
from domain.audit.service import SYSTEM, AuditContext, record

log = logging.getLogger(__name__)

APPLIED = "policy.changed"
REFUSED = "policy.reload_refused"

_HEAD = "SELECT position, version FROM policy_versions ORDER BY position DESC LIMIT 1"
_APPLY = (
    "INSERT INTO policy_versions (position, version, previous_version, applied_by) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (position) DO NOTHING RETURNING position"
)
_REFUSE = "INSERT INTO policy_refusals (version) VALUES (%s) ON CONFLICT (version) DO NOTHING RETURNING version"
_ATTEMPTS = 3  # a position taken by a concurrent writer is re-read; only a file changing again meanwhile needs more


async def version_in_force(sql: Sql) -> str | None:
    """The version the last recorded change applied (None before the first change was recorded)."""
    head = await sql.one(_HEAD)
    return str(head[1]) if head is not None else None


async def record_applied(sql: Sql, result: ReloadResult, context: AuditContext, applied_by: str) -> bool:
    """Record `result`'s version as the one in force, with one audit row naming the old and new versions, unless
    another process recorded it first. True when this call recorded it. The caller commits."""
    for _ in range(_ATTEMPTS):
        head = await sql.one(_HEAD)
        position, in_force = (int(head[0]), str(head[1])) if head is not None else (0, None)
        if in_force == result.version:
            return False  # recorded already, by whichever process applied it first
        previous = in_force if in_force is not None else result.previous
        if previous == result.version:
            return False  # nothing recorded yet, and nothing changed
        if await sql.one(_APPLY, (position + 1, result.version, previous, applied_by[:40])) is None:
            continue  # another process took this position meanwhile (it waited for their commit): read again
        changes = {"from_version": previous, "to_version": result.version, "applied_by": applied_by}
        await record(sql, context, APPLIED, "policy", result.version, changes)
        return True
    log.warning("policy version %s: the change could not be recorded after %d attempts", result.version, _ATTEMPTS)
    return False


async def record_at_start(db: Database, authorizer: Authorizer, applied_by: str) -> bool:
    """A process starting with files other than the version recorded in force (changed while it was down, as in a
    deploy) records that change like a reload would: once, by the first process to start with them."""
    result = ReloadResult(changed=False, version=authorizer.version, previous=authorizer.version)
    async with db.transaction() as tx:
        return await record_applied(tx.sql, result, SYSTEM, f"{applied_by} (at start)")


async def record_refused(sql: Sql, result: ReloadResult, context: AuditContext, applied_by: str) -> bool:
    """Audit a refused file once, whichever process refused it first (files that could not be read, each time)."""
    if result.refused_version is not None and await sql.one(_REFUSE, (result.refused_version,)) is None:
        return False
    changes = {
        "refused_version": result.refused_version,
        "version_in_force": result.version,
        "error": (result.error or "")[:1000],
        "refused_by": applied_by,
    }
    await record(sql, context, REFUSED, "policy", result.refused_version or result.version, changes)
    return True


async def record_reload(sql: Sql, result: ReloadResult, context: AuditContext, applied_by: str) -> bool:
    """The audit row of a reload, applied or refused, when this process is the first to record it."""
    if result.error:
        return await record_refused(sql, result, context, applied_by)
    return await record_applied(sql, result, context, applied_by)


async def watch_policy_files(
    authorizer: Authorizer, db: Database, applied_by: str, interval_seconds: float = 2.0
) -> None:
    """Reload the Casbin files when ops edit them, and audit each change (or refusal) once across the processes.
    Runs for the life of the process (the API's lifespan, the worker)."""
    while True:
        await asyncio.sleep(interval_seconds)
        result = authorizer.reload_if_changed()
        if result is None:
            continue
        try:
            async with db.transaction() as tx:
                await record_reload(tx.sql, result, SYSTEM, applied_by)
        except Exception:
            log.exception("could not audit the policy reload")
