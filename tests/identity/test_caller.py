"""The caller as the API loads it on every request (domain/users/caller.py): the same user the ORM would load,
held by the session, so a route that changes the caller's account saves the change."""

from __future__ import annotations

from sqlalchemy import inspect

from activities.deps import ActivityDeps
from domain.models import User
from domain.users.caller import load_user
from tests.conftest import MakeUser


async def test_the_caller_reads_as_the_orm_reads_it(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    boss = await make_user("manager")
    made = await make_user("employee", manager=boss)
    async with activity_deps.db.transaction() as tx:
        caller = await load_user(tx, made.id)
        assert caller is not None
        assert not tx.session.dirty and not tx.session.new  # nothing to write back just for reading it
        assert await tx.session.get(User, made.id) is caller  # the session's own copy of the row
    async with activity_deps.db.transaction() as tx:
        orm = await tx.session.get(User, made.id)
        assert orm is not None
        columns = [attribute.key for attribute in inspect(User).column_attrs]
        assert {key: getattr(caller, key) for key in columns} == {key: getattr(orm, key) for key in columns}


async def test_a_change_to_the_caller_is_saved(activity_deps: ActivityDeps, make_user: MakeUser) -> None:
    made = await make_user("manager")
    async with activity_deps.db.transaction() as tx:
        caller = await load_user(tx, made.id)
        assert caller is not None
        caller.full_name = "Renamed Caller"  # saved when the transaction ends, as a route's change is
    async with activity_deps.db.transaction() as tx:
        stored = await tx.session.get(User, made.id)
        assert stored is not None and stored.full_name == "Renamed Caller"


async def test_no_such_caller(activity_deps: ActivityDeps) -> None:
    async with activity_deps.db.transaction() as tx:
        assert await load_user(tx, 987_654_321) is None
