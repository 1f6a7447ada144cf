"""`?fields=` on lists: sparse fieldsets, so a phone downloads only the item fields it shows.

The route declares which item model its list holds (`fields_of(EntryOut)`); the dependency checks the names
against it (an unknown one is 422, naming it) and marks the request; api/etags.py's middleware then keeps only those
fields of each item, before the ETag is computed and the body compressed. The item's identity field(s) are always
kept, so a client can match a sparse item to the one it holds.
"""

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel

from domain.errors import ValidationFailed

SCOPE_KEY = "finance.sparse_fields"  # where the chosen names wait for the middleware (the request's ASGI scope)
MAX_LENGTH = 2000


def item_fields(item: type[BaseModel]) -> tuple[str, ...]:
    """The names an item shows in JSON (its serialization aliases where it has them)."""
    return tuple(field.serialization_alias or field.alias or name for name, field in item.model_fields.items())


def fields_of(
    item: type[BaseModel], identity: Iterable[str] = ("id",)
) -> Callable[[Request, str | None], Awaitable[frozenset[str] | None]]:
    """The `fields` dependency of a list whose items are `item`s; `identity` names the fields always sent."""
    names = item_fields(item)
    always = frozenset(identity)
    if not always <= set(names):
        raise ValueError(f"{item.__name__} has no field(s) {sorted(always - set(names))}")
    # The names, comma-separated: in the document as a pattern, so a client (and a generator) sends only those. The
    # check below says which name is unknown, in words.
    name = " *(?:" + "|".join(re.escape(name) for name in names) + ") *"
    pattern = f"^{name}(?:,{name})*$"
    description = (
        "comma-separated item fields to return (the others are left out of each item; "
        f"{', '.join(sorted(always))} always come): {', '.join(names)}"
    )

    async def chosen_fields(
        request: Request,
        fields: Annotated[
            str | None,
            Query(max_length=MAX_LENGTH, description=description, json_schema_extra={"pattern": pattern}),
        ] = None,
    ) -> frozenset[str] | None:
        if fields is None:
            return None
        asked = [name.strip() for name in fields.split(",") if name.strip()]
        if not asked:
            raise ValidationFailed("fields names no field: list some, comma-separated, or leave it out", field="fields")
        unknown = sorted({name for name in asked if name not in names})
        if unknown:
            raise ValidationFailed(
                f"unknown field{'s' if len(unknown) > 1 else ''} in fields: {', '.join(unknown)}",
                field="fields",
                unknown=unknown,
                allowed=list(names),
            )
        chosen = frozenset(asked) | always
        request.scope[SCOPE_KEY] = chosen
        return chosen

    return chosen_fields


def keep_fields(document: Any, fields: frozenset[str]) -> Any:
    """A list's JSON with only `fields` in each of its `items` (anything else passes unchanged)."""
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        document["items"] = [
            {name: value for name, value in item.items() if name in fields} if isinstance(item, dict) else item
            for item in document["items"]
        ]
    return document
