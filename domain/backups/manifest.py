"""The manifest of a backup: row counts and amount sums per table, and the audit chain's head, at dump time.

A restore drill computes the same manifest on the restored copy and compares; any difference is named.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from core.db import Tx
from domain.attachments import repository as attachments
from domain.models import ApprovalRequest, AuditLog, Entry, User
from domain.models.entry import ENTRY_KINDS


def _money(value: Decimal | None) -> str:
    return str((value or Decimal("0")).quantize(Decimal("0.01")))


async def take_manifest(tx: Tx) -> dict[str, Any]:
    """{"tables": {name: {"rows": n[, "amount_sum": "12.34"]}}, "audit_head_id": int | None,
    "audit_head_hash": str | None}: the head is the audit log's last row, the anchor of its chain.

    Run it in the transaction whose snapshot the dump uses, so both see the same rows.
    """
    tables: dict[str, dict[str, Any]] = {}
    by_kind = {
        kind: (count, total)
        for kind, count, total in (
            await tx.session.execute(select(Entry.kind, func.count(), func.sum(Entry.amount)).group_by(Entry.kind))
        ).all()
    }
    for kind in ENTRY_KINDS:
        count, total = by_kind.get(kind, (0, None))
        tables[f"entries.{kind}"] = {"rows": int(count), "amount_sum": _money(total)}
    count, total = (await tx.session.execute(select(func.count(), func.sum(ApprovalRequest.amount)))).one()
    tables["approval_requests"] = {"rows": int(count), "amount_sum": _money(total)}
    tables["users"] = {"rows": int(await tx.session.scalar(select(func.count()).select_from(User)) or 0)}
    tables["audit_log"] = {"rows": int(await tx.session.scalar(select(func.count()).select_from(AuditLog)) or 0)}
    if await attachments.table_exists(tx.sql):
        count, stored_bytes = await attachments.totals(tx.sql)
        # Only when there are any: a backup from before receipts existed has none, and its drill still passes.
        if count:
            tables["attachments"] = {"rows": count, "stored_bytes": stored_bytes}
    head = (await tx.session.execute(select(AuditLog.id, AuditLog.hash).order_by(AuditLog.id.desc()).limit(1))).first()
    return {
        "tables": tables,
        "audit_head_id": int(head.id) if head else None,
        "audit_head_hash": head.hash if head else None,
    }


def table_differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
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
    return problems


def audit_head_problem(expected: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """Whether the restored audit chain ends exactly at the head the backup recorded, or how it does not.

    The chain's verifier proves every link from the first row to the last one present; it cannot tell that rows
    are missing after the last. Anchoring the last row (id and hash) to the backup's head at dump time can: a
    verified chain whose last row is the head holds every row up to it, and nothing after it."""
    if "audit_head_hash" not in expected:
        return None  # a manifest from before heads were recorded: nothing to anchor to
    want_id, want_hash = expected.get("audit_head_id"), expected["audit_head_hash"]
    got_id, got_hash = actual.get("audit_head_id"), actual.get("audit_head_hash")
    if want_hash is None:
        if got_hash is None:
            return None
        return f"audit chain in the restored copy has rows (up to row {got_id}), the backup's was empty"
    if want_id is None:  # only the head's hash is known (a manifest the migration could not complete)
        if got_hash == want_hash:
            return None
        return f"audit chain in the restored copy ends at hash {got_hash}, the backup's head is {want_hash}"
    if got_id is None or got_id < want_id:
        ends = "is empty" if got_id is None else f"ends at row {got_id}"
        return f"audit chain tail missing in the restored copy: it {ends}, the backup's head is row {want_id}"
    if got_id > want_id:
        return f"audit chain in the restored copy runs past the backup's head (row {want_id}) to row {got_id}"
    if got_hash != want_hash:
        return f"audit chain head row {want_id} in the restored copy hashes {got_hash}, the backup has {want_hash}"
    return None


def manifest_differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Everything in which a restored copy differs from the backup's manifest: tables, then the audit head."""
    head = audit_head_problem(expected, actual)
    return table_differences(expected, actual) + ([head] if head else [])
