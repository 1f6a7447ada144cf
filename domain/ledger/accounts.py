"""The chart of accounts: each account's code (unique), name, type and tax code, and whether it is in use.

A code or name may change: the journals frozen at a close keep the code and name they were written with. A mapped
account keeps a type that fits its role and stays active (domain/ledger/mappings.py).
"""

from __future__ import annotations

from typing import Any

from core.db import Tx
from domain.audit.service import AuditContext, diff, record
from domain.errors import Conflict, NotFound
from domain.ledger import mappings
from domain.ledger import repository as ledger
from domain.ledger.repository import AccountRow
from domain.ledger.schemas import AccountCreate, AccountOut, AccountPage, AccountUpdate
from domain.pagination import Cursor, Pager

RESOURCE = "account"
_AUDITED = ("code", "name", "type", "tax_code", "active")


def account_out(row: AccountRow) -> AccountOut:
    return AccountOut.model_validate(row, from_attributes=True)


def _snapshot(row: AccountRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _AUDITED}


def _taken(code: str) -> Conflict:
    return Conflict(f"an account with code {code} exists already", field="code", account_code=code)


async def create(tx: Tx, body: AccountCreate, context: AuditContext) -> AccountOut:
    """A new account (409 when its code is taken)."""
    fields = body.model_dump()
    fields["tax_code"] = fields["tax_code"] or None
    row = await ledger.insert_account(tx.sql, fields)
    if row is None:
        raise _taken(body.code)
    await record(tx.sql, context, "account.created", RESOURCE, row.id, diff({}, _snapshot(row)))
    return account_out(row)


async def update(tx: Tx, account_id: int, body: AccountUpdate, context: AuditContext) -> AccountOut:
    """Change the fields sent, under the account's row lock (409: a code taken, or a change its mapping forbids)."""
    await ledger.lock_mappings(tx.sql)  # a mapped account's type and active flag are checked against the mapping
    before = await ledger.account(tx.sql, account_id, lock=True)
    if before is None:
        raise NotFound("account not found", id=account_id)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "tax_code" in changes:
        changes["tax_code"] = changes["tax_code"] or None
    changes = {name: value for name, value in changes.items() if getattr(before, name) != value}
    if not changes:
        return account_out(before)
    await mappings.check_change(tx, before, changes.get("type", before.type), changes.get("active", before.active))
    after = await ledger.update_account(tx.sql, before.id, changes)
    if after is None:
        raise _taken(changes["code"])
    await record(tx.sql, context, "account.updated", RESOURCE, before.id, diff(_snapshot(before), _snapshot(after)))
    return account_out(after)


async def page(
    tx: Tx, account_type: str | None, active: bool | None, limit: int, offset: int, cursor: Cursor | None = None
) -> AccountPage:
    pager = Pager(limit, offset, cursor)
    keyset = ledger.ACCOUNTS_KEYSET
    rows, total = await ledger.accounts_page(tx.sql, account_type, active, pager.fetch, offset, pager.key(keyset))
    page, next_cursor = pager.cut(keyset, rows, lambda row: (row.code,))
    return AccountPage(
        items=[account_out(row) for row in page],
        total=total,
        limit=limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


async def get(tx: Tx, account_id: int) -> AccountOut:
    row = await ledger.account(tx.sql, account_id)
    if row is None:
        raise NotFound("account not found", id=account_id)
    return account_out(row)
