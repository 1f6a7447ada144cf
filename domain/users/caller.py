"""The request's caller, read on every authenticated request.

`session.get(User, id)` costs about a millisecond of the API's CPU through the async ORM (docs/benchmarks.md), on
every call of every route. Here the row comes from one plain statement and becomes the session's persistent `User`
as if the ORM had loaded it (no pending changes, in the identity map), so routes that change the caller's account
change it as before.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.orm import make_transient_to_detached

from core.db import Tx
from domain.models import User

_ATTRIBUTES = [(attribute.key, attribute.columns[0].name) for attribute in inspect(User).column_attrs]
_SELECT = f"SELECT {', '.join(column for _, column in _ATTRIBUTES)} FROM users WHERE id = %s"


async def load_user(tx: Tx, user_id: int) -> User | None:
    """The user with this id, held by the transaction's session (None when there is none)."""
    row = await tx.sql.one(_SELECT, (user_id,))
    if row is None:
        return None
    user = User(**{key: value for (key, _), value in zip(_ATTRIBUTES, row, strict=True)})
    make_transient_to_detached(user)  # its attributes count as loaded, not as changes to flush
    tx.session.add(user)
    return user
