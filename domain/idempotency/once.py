"""A command run once per Idempotency-Key: a repeat of the same request gets the first answer, never a second
effect; the same key on a different request is refused (422). The claim is made in the command's transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from core.db import Tx
from domain.idempotency import service

Answer = TypeVar("Answer", bound=BaseModel)


@dataclass(frozen=True)
class Replayed:
    """A repeated request's first answer."""

    status_code: int
    body: Any


async def once(
    tx: Tx,
    actor_id: int,
    key: str | None,
    scope: str,
    body: object,
    status_code: int,
    command: Callable[..., Awaitable[Answer]],
    *arguments: object,
) -> Answer | Replayed:
    """`command(*arguments)`, unless `key` was used for this very request before (then its first answer). A success
    is remembered under the key; a failure is not, so the request may be retried with the same key."""
    if key is None:
        return await command(*arguments)
    key = service.check_key(key)
    stored = await service.claim(tx, actor_id, key, scope, service.request_hash(scope, body))
    if stored is not None:
        return Replayed(stored.status_code, stored.body)
    answer = await command(*arguments)
    await service.remember(tx, actor_id, key, status_code, answer.model_dump(mode="json"))
    return answer
