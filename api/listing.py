"""What every list takes besides its own filters: `?cursor=` (keyset paging), `?fields=` (sparse items) and
`If-None-Match` (an ETag per page). One dependency, so a list route adds one parameter:

    cursor: Annotated[Cursor, Depends(listing_of(EntryOut))]

and hands `cursor` to its service, which answers the page with its `next_cursor`.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel

from api.cursors import PageCursor
from api.etags import ConditionalGet
from api.fieldsets import fields_of
from domain.pagination import Cursor


def listing_of(item: type[BaseModel], identity: Iterable[str] = ("id",)) -> Callable[..., Awaitable[Cursor]]:
    """The dependency of a list of `item`s: its cursor, its fields (checked against `item`), its ETag."""
    chosen_fields = fields_of(item, identity)

    async def listing(
        cursor: PageCursor,
        _fields: Annotated[frozenset[str] | None, Depends(chosen_fields)],
        _etag: ConditionalGet,
    ) -> Cursor:
        return cursor

    return listing


UPDATED_SINCE = (
    "delta sync: only the rows changed at or after this time (ISO 8601 with a timezone), status changes included; "
    "send the previous answer's `next_updated_since`"
)
