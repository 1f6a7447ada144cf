"""Integers as JSON has them, for request bodies (booleans are pydantic's `StrictBool`: `true` and `false` only).

Pydantic's lax `int` also takes `"12"` and `true`, and `StrictInt` refuses `12.0`, which JSON Schema counts as an
integer (a number with no fraction): what a client may send is what the OpenAPI document says, neither more nor less.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _json_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer (a JSON number with no fraction)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer (a JSON number with no fraction)")
        return int(value)
    return value


# After the bounds in the type's metadata (`Annotated[int, Field(ge=1), JSON_INTEGER]`): bounds after a validator come
# out of pydantic as `ge`/`le`, which are no JSON Schema words.
JSON_INTEGER = BeforeValidator(_json_integer)
# The largest id a body may carry: JSON numbers are doubles to most clients, exact up to 2**53 (a BIGINT id beyond
# that would arrive rounded, and a generator's 2**63 - 1 comes back as 2**63).
MAX_BODY_ID = 2**53 - 1
# Another row's id in a body (a manager, a delegate, an owner): 1 or more, and at most MAX_BODY_ID.
BodyId = Annotated[int, Field(ge=1, le=MAX_BODY_ID), JSON_INTEGER]
