"""Idempotency-Key on the HTTP edge: the header, and a repeat's first answer sent back as it was.

The claim, the replay and the remembering are the commands' (domain/idempotency/once.py); a repeat comes back
from them as `Replayed`, which goes out here with the status and body of the first answer.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Header
from fastapi.responses import JSONResponse

from domain.idempotency import service
from domain.idempotency.once import Replayed

HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        max_length=service.MAX_KEY_LENGTH,
        pattern=service.KEY_PATTERN.pattern,
        description="repeat the request with the same key to get the first answer again (never a second effect)",
    ),
]
A = TypeVar("A")


def replayed(answer: A | Replayed) -> A | JSONResponse:
    """The command's answer, or the first answer to this very request (marked `Idempotent-Replayed`)."""
    if isinstance(answer, Replayed):
        headers = {"Idempotent-Replayed": "true"}
        return JSONResponse(status_code=answer.status_code, content=answer.body, headers=headers)
    return answer
