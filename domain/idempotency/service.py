"""Idempotency-Key: a repeated request gets the first answer; the same key on a different request is refused.

A key belongs to a user. `claim` runs in the request's transaction:
- no row: insert one (a concurrent twin waits on our uncommitted row, then finds it) and go ahead;
- a row with a stored answer: replay it if the request is the same, else refuse (422);
- a row without an answer (the first attempt died, or its action failed): go ahead again. The actions behind
  keys are themselves idempotent (workflow ids are business keys, update ids are the key), so a second run
  finishes the first one's work instead of doubling it.
Only successful answers are stored: a failed request may be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from core.db import Tx
from domain.errors import ValidationFailed
from domain.models import IdempotencyKey

MAX_KEY_LENGTH = 200
# Printable ASCII without blanks at either end (a UUID, a ULID, any client's counter): a header carries ASCII, and a
# key must read the same to the client that made it and to us.
KEY_PATTERN = re.compile(r"^[!-~](?:[ -~]*[!-~])?$")


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: Any


def request_hash(scope: str, body: Any) -> str:
    canonical = json.dumps({"scope": scope, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.match(key):
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, without blanks at either end"
        )
    return key


async def claim(tx: Tx, user_id: int, key: str, scope: str, fingerprint: str) -> StoredAnswer | None:
    """The stored answer to replay, or None when the caller should perform the request (and `remember` it)."""
    session = tx.session
    await session.execute(
        insert(IdempotencyKey)
        .values(user_id=user_id, key=key, scope=scope[:200], request_hash=fingerprint)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
    )
    row = await session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if row.scope != scope[:200] or row.request_hash != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used for a different request; use a new key",
            reason="idempotency_key_reused",
        )
    if row.status_code is not None:
        return StoredAnswer(row.status_code, row.response)
    return None


async def remember(tx: Tx, user_id: int, key: str, status_code: int, body: Any) -> None:
    session = tx.session
    row = await session.get(IdempotencyKey, (user_id, key))
    if row is None:  # pragma: no cover - claim inserted it in this or an earlier transaction
        return
    row.status_code = status_code
    row.response = body
    await session.flush()


async def forget(tx: Tx, user_id: int, key: str) -> None:
    """Drop a remembered answer whose effect failed after it was committed (a workflow the engine never started):
    the request failed, so, as for any failure, it may be repeated with the same key."""
    row = await tx.session.get(IdempotencyKey, (user_id, check_key(key)))
    if row is not None:
        await tx.session.delete(row)
        await tx.session.flush()
