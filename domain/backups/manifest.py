"""The manifest of a backup: row counts and amount sums per table, and the audit chain's head, at dump time.

A restore drill computes the same manifest on the restored copy and compares; any difference is named.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import ApprovalRequest, AuditLog, Entry, User
from domain.models.entry import ENTRY_KINDS


def _money(value: Decimal | None) -> str:
    return str((value or Decimal("0")).quantize(Decimal("0.01")))


async def take_manifest(session: AsyncSession) -> dict[str, Any]:
    """{"tables": {name: {"rows": n[, "amount_sum": "12.34"]}}, "audit_head_hash": str | None}.

    Run it in the transaction whose snapshot the dump uses, so both see the same rows.
    """
    tables: dict[str, dict[str, Any]] = {}
    by_kind = {
        kind: (count, total)
        for kind, count, total in (
            await session.execute(select(Entry.kind, func.count(), func.sum(Entry.amount)).group_by(Entry.kind))
        ).all()
    }
    for kind in ENTRY_KINDS:
        count, total = by_kind.get(kind, (0, None))
        tables[f"entries.{kind}"] = {"rows": int(count), "amount_sum": _money(total)}
    count, total = (await session.execute(select(func.count(), func.sum(ApprovalRequest.amount)))).one()
    tables["approval_requests"] = {"rows": int(count), "amount_sum": _money(total)}
    tables["users"] = {"rows": int(await session.scalar(select(func.count()).select_from(User)) or 0)}
    tables["audit_log"] = {"rows": int(await session.scalar(select(func.count()).select_from(AuditLog)) or 0)}
    head = await session.scalar(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1))
    return {"tables": tables, "audit_head_hash": head}


def manifest_differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences (`entries.expense rows: backup 4, restored 3`); empty when they agree."""
    problems: list[str] = []
    want_tables: dict[str, dict[str, Any]] = expected.get("tables", {})
    got_tables: dict[str, dict[str, Any]] = actual.get("tables", {})
    for table in sorted(set(want_tables) | set(got_tables)):
        want, got = want_tables.get(table), got_tables.get(table)
        if want is None or got is None:
            problems.append(f"{table}: {'missing in the manifest' if want is None else 'missing in the restore'}")
            continue
        for field in sorted(set(want) | set(got)):
            if want.get(field) != got.get(field):
                problems.append(f"{table} {field}: backup {want.get(field)}, restored {got.get(field)}")
    if expected.get("audit_head_hash") != actual.get("audit_head_hash"):
        problems.append(
            f"audit head hash: backup {expected.get('audit_head_hash')}, restored {actual.get('audit_head_hash')}"
        )
    return problems
