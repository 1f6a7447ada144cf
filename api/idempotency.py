"""Idempotency-Key on the HTTP edge: replay the first answer, refuse a reused key (422), remember success."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from domain.idempotency import service

HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        max_length=service.MAX_KEY_LENGTH,
        description="repeat the request with the same key to get the first answer again (never a second effect)",
    ),
]


@dataclass
class Idempotent:
    session: AsyncSession
    user_id: int
    key: str | None
    replay: JSONResponse | None = None

    async def remember(self, status_code: int, answer: BaseModel) -> None:
        if self.key is not None:
            await service.remember(self.session, self.user_id, self.key, status_code, answer.model_dump(mode="json"))


async def begin(session: AsyncSession, user_id: int, key: str | None, scope: str, body: Any = None) -> Idempotent:
    """Claim the key for this request (in the request's transaction); `.replay` is set for a repeat."""
    if key is None:
        return Idempotent(session, user_id, None)
    key = service.check_key(key)
    stored = await service.claim(session, user_id, key, scope, service.request_hash(scope, body))
    if stored is None:
        return Idempotent(session, user_id, key)
    replay = JSONResponse(status_code=stored.status_code, content=stored.body, headers={"Idempotent-Replayed": "true"})
    return Idempotent(session, user_id, key, replay)
