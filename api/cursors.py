"""`?cursor=` on every list: the keyset cursor a client sends back (domain/pagination.py reads and writes it)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import Depends, Query, Request

from api.deps import services
from domain.errors import ValidationFailed
from domain.pagination import MAX_CURSOR_LENGTH, Cursor, CursorCodec

DESCRIPTION = (
    "the `next_cursor` of the previous page, to read the page after it (keyset paging: rows inserted meanwhile "
    "shift nothing). Leave it out for the first page; do not combine it with `offset`. Opaque and signed: a changed "
    "one, or one from another list or sort order, is refused (422)."
)


@functools.cache
def _codec(secret: str) -> CursorCodec:
    return CursorCodec(secret)


async def page_cursor(
    request: Request,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description=DESCRIPTION)] = None,
) -> Cursor:
    """The client's cursor (None on a first page) with this server's codec, which also writes the next one."""
    if cursor is not None:
        if not cursor.strip():
            raise ValidationFailed("cursor is empty: leave it out to start at the first page", field="cursor")
        if "offset" in request.query_params:
            raise ValidationFailed("send either cursor or offset, not both", field="offset")
    return Cursor(cursor, _codec(services(request).settings.auth.secret_key))


PageCursor = Annotated[Cursor, Depends(page_cursor)]
