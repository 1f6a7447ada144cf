"""Keyset (cursor) paging, shared by every list: the cursor a page hands out and the query condition it becomes.

An offset page costs a scan of every row before it, and shifts when a row is inserted ahead of it (a phone paging
an inbox while approvals arrive sees one twice or misses one). A cursor names the last row a page showed, by the
list's sort key and the row's id, and the next page starts strictly after it: `(sort, id) < (%s, %s)` for a list
in descending order, which the list's (sort, id) index answers as a range.

A cursor is opaque to clients: base64url of JSON `[scope, key]` and an HMAC of it, keyed from the server's secret.
The scope names the list and its order (`expense:entry_date:desc`), so a cursor from another list or another sort
is refused (422) instead of starting somewhere meaningless; a changed byte is refused by the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, tuple_
from sqlalchemy.sql.expression import ColumnOperators

from domain.errors import ValidationFailed

T = TypeVar("T")
_SIGNATURE_BYTES = 12  # 96 bits: guessing a valid cursor for a chosen key is out of reach
MAX_CURSOR_LENGTH = 1000  # a key is a few values: anything longer is not ours

_READERS: dict[type, Callable[[Any], Any]] = {
    int: int,
    str: str,
    Decimal: Decimal,
    date: date.fromisoformat,
    datetime: datetime.fromisoformat,
    uuid.UUID: uuid.UUID,
}


def _plain(value: Any) -> Any:
    """A key value as JSON holds it exactly (a Decimal as its string, a date or time in ISO 8601)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a sort key value: {value!r}")
    if isinstance(value, int | str):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    raise TypeError(f"not a sort key value: {value!r}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Writes and reads signed cursors. The key is derived from the server's secret, for this use only."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"list-cursor\x00" + secret.encode()).digest()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return _b64(digest[:_SIGNATURE_BYTES])

    def encode(self, scope: str, key: Sequence[Any]) -> str:
        payload = _b64(json.dumps([scope, [_plain(value) for value in key]], separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, token: str, scope: str) -> list[Any]:
        """The key values of a cursor this server wrote for `scope` (as JSON has them); else ValidationFailed."""
        payload, dot, signature = token.partition(".")
        if not dot or len(token) > MAX_CURSOR_LENGTH or not hmac.compare_digest(self._sign(payload), signature):
            raise ValidationFailed(
                "the cursor is not one this list handed out (changed, truncated or from another server): "
                "start again without it",
                field="cursor",
            )
        try:
            found_scope, key = json.loads(_unb64(payload))
        except (ValueError, TypeError, binascii.Error) as error:  # signed by us, so only after a format change
            raise ValidationFailed("the cursor cannot be read: start again without it", field="cursor") from error
        if found_scope != scope:
            raise ValidationFailed(
                f"the cursor belongs to another list or sort order ({found_scope}, not {scope}): start again "
                "without it, or keep the sort and filters it was given with",
                field="cursor",
            )
        if not isinstance(key, list):
            raise ValidationFailed("the cursor cannot be read: start again without it", field="cursor")
        return key


@dataclass(frozen=True)
class Cursor:
    """The `?cursor=` a client sent (None on a first page) and the codec that reads it and writes the next one."""

    token: str | None
    codec: CursorCodec


@dataclass(frozen=True)
class Keyset:
    """How a list is ordered for keyset paging: its key columns (the sort column(s), then a unique one), all in one
    direction, so one row comparison is the whole condition and a (sort, id) index serves it as a range."""

    scope: str  # the list and its order: a cursor is only valid for the same scope
    columns: tuple[str, ...]  # SQL of each key column, e.g. ("i.issue_date", "i.id")
    types: tuple[type, ...]  # the Python type of each, to read a cursor's values back
    descending: bool = True

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.types) or not self.columns:
            raise ValueError("a keyset needs one type per column")

    @property
    def direction(self) -> str:
        return "DESC" if self.descending else "ASC"

    @property
    def comparison(self) -> str:
        return "<" if self.descending else ">"

    def order_by(self) -> str:
        """`ORDER BY` terms: every key column in the keyset's direction."""
        return ", ".join(f"{column} {self.direction}" for column in self.columns)

    def after(self, key: Sequence[Any], name: str = "after") -> tuple[str, dict[str, Any]]:
        """`(c1, c2) < (%(after_0)s, %(after_1)s)` and its named parameters: the rows strictly past `key`."""
        names = [f"{name}_{index}" for index in range(len(self.columns))]
        condition = f"({', '.join(self.columns)}) {self.comparison} ({', '.join(f'%({n})s' for n in names)})"
        return condition, dict(zip(names, key, strict=True))

    def after_positional(self, key: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """As `after`, with `%s` placeholders, for a statement whose parameters are a sequence."""
        condition = f"({', '.join(self.columns)}) {self.comparison} ({', '.join(['%s'] * len(self.columns))})"
        return condition, tuple(key)

    def after_clause(self, columns: Sequence[ColumnOperators], key: Sequence[Any]) -> ColumnElement[bool]:
        """As `after`, for a SQLAlchemy select over `columns` (the key columns as mapped attributes)."""
        row, values = tuple_(*columns), tuple_(*key)
        return row < values if self.descending else row > values

    def read(self, values: list[Any]) -> tuple[Any, ...]:
        """A decoded cursor's values as the key columns' types (ValidationFailed when they are not)."""
        if len(values) != len(self.types):
            raise ValidationFailed("the cursor cannot be read: start again without it", field="cursor")
        try:
            return tuple(_READERS[kind](value) for kind, value in zip(self.types, values, strict=True))
        except (ValueError, TypeError, InvalidOperation) as error:
            raise ValidationFailed("the cursor cannot be read: start again without it", field="cursor") from error


@dataclass(frozen=True)
class Pager:
    """One page's request: `limit` rows, after the cursor (or `offset` rows in, for clients of the offset pages).

    A list reads `fetch` rows (one more than the page) to know whether a next page exists: the last page's
    `next_cursor` is null, never a cursor to an empty page. Without a `cursor` (a caller other than the API) no
    cursor is handed out."""

    limit: int
    offset: int = 0
    cursor: Cursor | None = None

    def __post_init__(self) -> None:
        if self.offset and self.cursor is not None and self.cursor.token is not None:
            raise ValidationFailed("send either cursor or offset, not both", field="offset")

    @property
    def fetch(self) -> int:
        return self.limit + 1

    @property
    def page_offset(self) -> int:
        """The offset a page reports (0 for a cursor's page: it starts after a row, not at a position)."""
        return 0 if self.cursor is not None and self.cursor.token is not None else self.offset

    def key(self, keyset: Keyset) -> tuple[Any, ...] | None:
        """The key of the row the cursor names, typed; None on a first page (or an offset page)."""
        if self.cursor is None or self.cursor.token is None:
            return None
        return keyset.read(self.cursor.codec.decode(self.cursor.token, keyset.scope))

    def cut(self, keyset: Keyset, rows: list[T], key_of: Callable[[T], Sequence[Any]]) -> tuple[list[T], str | None]:
        """The page's rows (at most `limit` of the `fetch` read) and the cursor to the next page, or None at the
        end."""
        if len(rows) <= self.limit:
            return rows, None
        page = rows[: self.limit]
        if self.cursor is None:
            return page, None
        return page, self.cursor.codec.encode(keyset.scope, key_of(page[-1]))


class PageInfo(BaseModel):
    """What every list page answers besides its items: the offset page's position, or the cursor to the next."""

    total: int = Field(description="rows matching the filters, on every page")
    limit: int
    offset: int = Field(description="0 on a page read with a cursor")
    next_cursor: str | None = Field(None, description="send it as `cursor` for the next page; null on the last page")
