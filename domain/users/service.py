"""Users in a manager tree: create, change, deactivate, list, and read within one's visibility.

Rules: a role is granted (and a user managed) only strictly below one's own rank; every user but a superadmin
reports to an active manager, admin or superadmin; the manager tree has no cycles; nobody deactivates themselves.
A user who still has active reports is neither deactivated nor demoted below manager: their reports are moved
first (409 says how many), so nobody is left under an inactive manager or one without a team. Role changes and
deactivation bump the token version, so they take effect on the user's next request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import IntegrityError

from core.authz import Authorizer
from core.db import Tx
from core.settings import Settings
from domain.approvals.rerouting import reroute_for_user
from domain.audit.service import AuditContext, diff, record
from domain.auth import passwords, sessions
from domain.auth.schemas import RegisterRequest
from domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from domain.models import Role, User
from domain.pagination import Cursor, Keyset, Pager
from domain.users.directory import subtree_ids
from domain.users.roles import MANAGER_ROLES, may_have_reports, outranks
from domain.users.schemas import MeUpdate, UserCreate, UserFilters, UserOut, UserPage, UserUpdate
from domain.users.visibility import visibility_for

_TREE_LOCK_KEY = 0x5553455254524545  # "USERTREE": manager changes serialise, so two cannot close a cycle together
_AUDITED_FIELDS = ("email", "username", "full_name", "role", "manager_id", "is_active")


def _snapshot(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in _AUDITED_FIELDS}


async def find_by_login(tx: Tx, identifier: str) -> User | None:
    """The user whose email or username this is (both are stored in lower case)."""
    ident = identifier.strip().lower()
    column = User.email if "@" in ident else User.username
    return await tx.session.scalar(select(User).where(column == ident))


async def _ensure_unique(tx: Tx, email: str | None, username: str | None, except_id: int = 0) -> None:
    clauses = []
    if email is not None:
        clauses.append(User.email == email)
    if username is not None:
        clauses.append(User.username == username)
    if not clauses:
        return
    taken = await tx.session.scalar(select(func.count()).select_from(User).where(or_(*clauses), User.id != except_id))
    if taken:
        raise Conflict("a user with this email or username already exists")


async def _flush_unique(tx: Tx) -> None:
    """Flush; a concurrent insert of the same email or username becomes a 409, not a 500."""
    try:
        async with tx.session.begin_nested():
            await tx.session.flush()
    except IntegrityError as exc:
        raise Conflict("a user with this email or username already exists") from exc


async def _active_manager(tx: Tx, manager_id: int) -> User:
    """The one check on who may be named someone's manager: an active manager, admin or superadmin."""
    manager = await tx.session.get(User, manager_id)
    if manager is None or not manager.is_active:
        raise ValidationFailed("manager_id: no active user with this id", field="manager_id")
    if not may_have_reports(manager.role):
        allowed = ", ".join(sorted(MANAGER_ROLES))
        raise ValidationFailed(
            f"manager_id: user {manager.id} is an {manager.role}; a manager must be one of: {allowed}",
            field="manager_id",
        )
    return manager


async def _active_reports(tx: Tx, user: User) -> int:
    return int(
        await tx.session.scalar(
            select(func.count()).select_from(User).where(User.manager_id == user.id, User.is_active.is_(True))
        )
        or 0
    )


async def _refuse_while_managing(tx: Tx, user: User, change: str) -> None:
    """A user with active reports keeps a manager's role and stays active until their reports are moved."""
    reports = await _active_reports(tx, user)
    if reports:
        noun = "person reports" if reports == 1 else "people report"
        raise Conflict(
            f"{reports} active {noun} to user {user.id}; move them to another manager before {change}",
            active_reports=reports,
        )


async def _lock_tree(tx: Tx) -> None:
    await tx.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TREE_LOCK_KEY})


async def create_user(tx: Tx, settings: Settings, granter: User, data: UserCreate, context: AuditContext) -> User:
    if not outranks(granter.role, data.role):
        raise Forbidden(f"a {granter.role} may only grant roles below their own, not {data.role.value}")
    await _lock_tree(tx)  # the manager cannot be deactivated or demoted meanwhile
    await _active_manager(tx, data.manager_id)
    return await _add_user(
        tx,
        settings,
        data,
        role=data.role.value,
        manager_id=data.manager_id,
        action="user.created",
        context=context,
    )


async def register(tx: Tx, settings: Settings, data: RegisterRequest, context: AuditContext) -> User:
    """Self-registration: an employee reporting to the organisation's first superadmin, until an admin moves them."""
    if not settings.registration_open:
        raise Forbidden("self-registration is closed; ask an administrator for an account")
    root = await tx.session.scalar(
        select(User).where(User.role == Role.SUPERADMIN, User.is_active.is_(True)).order_by(User.id).limit(1)
    )
    if root is None:
        raise Conflict("registration opens once a superadmin exists (python cli.py create-superadmin)")
    return await _add_user(
        tx, settings, data, role=Role.EMPLOYEE.value, manager_id=root.id, action="user.registered", context=context
    )


async def _add_user(
    tx: Tx,
    settings: Settings,
    data: UserCreate | RegisterRequest,
    *,
    role: str,
    manager_id: int | None,
    action: str,
    context: AuditContext,
) -> User:
    """The one place a user row is made: unique email and username, hashed password, audited."""
    email = str(data.email).lower()
    await _ensure_unique(tx, email, data.username)
    user = User(
        email=email,
        username=data.username,
        full_name=data.full_name,
        password_hash=await passwords.hash_password(data.password, settings.auth.bcrypt_rounds),
        role=role,
        manager_id=manager_id,
        is_active=True,
        is_verified=False,
    )
    tx.session.add(user)
    await _flush_unique(tx)
    await record(tx.sql, context, action, "user", user.id, diff({}, _snapshot(user)))
    return user


async def get_visible(tx: Tx, authorizer: Authorizer, viewer: User, user_id: int) -> User:
    """The user, if the viewer may see them; otherwise 404 (existence does not leak)."""
    visibility = await visibility_for(tx.sql, authorizer, viewer, resource="user")
    user = await tx.session.get(User, user_id) if visibility.can_see(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def _deactivate(tx: Tx, user: User) -> int:
    await _lock_tree(tx)  # nobody is put under this user while we count their reports
    await _refuse_while_managing(tx, user, "deactivating them")
    user.is_active = False
    return await sessions.revoke_all(tx, user)  # bumps the token version too


async def _reactivate(tx: Tx, user: User) -> None:
    """Back to work under an active manager: their old one may have left meanwhile."""
    if user.role != Role.SUPERADMIN:
        if user.manager_id is None:
            raise ValidationFailed("manager_id: every user but a superadmin needs a manager", field="manager_id")
        await _lock_tree(tx)
        await _active_manager(tx, user.manager_id)
    user.is_active = True


async def update_user(
    tx: Tx,
    settings: Settings,
    authorizer: Authorizer,
    actor: User,
    user_id: int,
    data: UserUpdate,
    context: AuditContext,
) -> User:
    target = await get_visible(tx, authorizer, actor, user_id)
    if target.id == actor.id:
        raise Forbidden("change your own profile through /users/me")
    if not outranks(actor.role, target.role):
        raise Forbidden(f"a {actor.role} may only manage users below their own role")
    fields = data.model_dump(exclude_unset=True)
    for name in ("email", "username", "full_name", "role", "is_active"):
        if name in fields and fields[name] is None:
            raise ValidationFailed(f"{name} may not be null", field=name)
    before = _snapshot(target)

    if "email" in fields or "username" in fields:
        email = str(fields["email"]).lower() if "email" in fields else None
        await _ensure_unique(tx, email, fields.get("username"), except_id=target.id)
        if email is not None:
            target.email = email
        if "username" in fields:
            target.username = fields["username"]
    if "full_name" in fields:
        target.full_name = fields["full_name"]
    if "role" in fields and fields["role"] != target.role:
        new_role = Role(fields["role"])
        if not outranks(actor.role, new_role):
            raise Forbidden(f"a {actor.role} may only grant roles below their own, not {new_role.value}")
        if may_have_reports(target.role) and not may_have_reports(new_role):
            await _lock_tree(tx)
            await _refuse_while_managing(tx, target, f"making them an {new_role.value}")
        target.role = new_role.value
        target.token_version += 1  # tokens minted under the old role stop working
    if "manager_id" in fields and fields["manager_id"] != target.manager_id:
        manager_id = fields["manager_id"]
        if manager_id is None:
            raise ValidationFailed("manager_id: every user but a superadmin needs a manager", field="manager_id")
        await _lock_tree(tx)
        await _active_manager(tx, manager_id)
        if manager_id in await subtree_ids(tx.sql, target.id):
            raise ValidationFailed(
                "manager_id: this manager reports to the user (directly or not); that would make a cycle",
                field="manager_id",
            )
        target.manager_id = manager_id
    if "is_active" in fields and fields["is_active"] != target.is_active:
        if fields["is_active"]:
            await _reactivate(tx, target)
        else:
            await _deactivate(tx, target)
    await _flush_unique(tx)

    after = _snapshot(target)
    if any(after[name] != before[name] for name in ("role", "is_active", "manager_id")):
        # Whoever can no longer decide what waits on them hands it on; a requester's new manager takes theirs.
        moved = after["manager_id"] != before["manager_id"]
        await reroute_for_user(tx.sql, target.id, datetime.now(UTC), context, requester_moved=moved)
    if after != before:
        if after["is_active"] is False and before["is_active"] is True:
            action = "user.deactivated"
        elif after["role"] != before["role"]:
            action = "user.role_changed"
        else:
            action = "user.updated"
        await record(tx.sql, context, action, "user", target.id, diff(before, after))
    return target


async def deactivate_user(tx: Tx, authorizer: Authorizer, actor: User, user_id: int, context: AuditContext) -> None:
    target = await get_visible(tx, authorizer, actor, user_id)
    if target.id == actor.id:
        raise ValidationFailed("you cannot deactivate yourself")
    if not outranks(actor.role, target.role):
        raise Forbidden(f"a {actor.role} may only manage users below their own role")
    if not target.is_active:
        return
    revoked = await _deactivate(tx, target)
    await tx.session.flush()
    await reroute_for_user(tx.sql, target.id, datetime.now(UTC), context, requester_moved=False)
    await record(
        tx.sql, context, "user.deactivated", "user", target.id, {"is_active": [True, False], "revoked_tokens": revoked}
    )


async def update_me(tx: Tx, settings: Settings, user: User, data: MeUpdate, context: AuditContext) -> User:
    """Name and password only. A new password needs the current one and ends every session."""
    changes: dict[str, Any] = {}
    if data.full_name is not None and data.full_name != user.full_name:
        changes["full_name"] = [user.full_name, data.full_name]
        user.full_name = data.full_name
    if data.password is not None:
        await check_current_password(user, data.current_password)
        user.password_hash = await passwords.hash_password(data.password, settings.auth.bcrypt_rounds)
        changes["password"] = "changed"
        changes["revoked_tokens"] = await sessions.revoke_all(tx, user)
    elif data.current_password is not None:
        raise ValidationFailed("current_password is only needed together with a new password")
    if changes:
        await tx.session.flush()
        await record(tx.sql, context, "user.profile_updated", "user", user.id, changes)
    return user


async def check_current_password(user: User, current_password: str | None) -> None:
    if not current_password:
        raise ValidationFailed("current_password: required to set a new password", field="current_password")
    if not await passwords.verify_password(current_password, user.password_hash):
        raise ValidationFailed("current_password is incorrect", field="current_password")


# By id, as users are created: a cursor's `id > %s` is a range on the primary key.
USERS_KEYSET = Keyset("users", ("id",), (int,), descending=False)
# A team is read whole from the manager tree and paged in memory (a subtree is small); by id, as the users list.
TEAM_KEYSET = Keyset("team", ("id",), (int,), descending=False)


async def list_users(tx: Tx, filters: UserFilters, cursor: Cursor | None = None) -> UserPage:
    pager = Pager(filters.limit, filters.offset, cursor)
    query = select(User)
    if filters.role is not None:
        query = query.where(User.role == filters.role.value)
    if filters.manager_id is not None:
        query = query.where(User.manager_id == filters.manager_id)
    if filters.is_active is not None:
        query = query.where(User.is_active.is_(filters.is_active))
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.full_name.ilike(pattern), User.email.ilike(pattern), User.username.ilike(pattern)))
    total = int(await tx.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    after = pager.key(USERS_KEYSET)
    if after is not None:
        query = query.where(USERS_KEYSET.after_clause([User.id], after))
    rows = (await tx.session.scalars(query.order_by(User.id).limit(pager.fetch).offset(filters.offset))).all()
    page, next_cursor = pager.cut(USERS_KEYSET, list(rows), lambda row: (row.id,))
    return UserPage(
        items=[UserOut.model_validate(row) for row in page],
        total=total,
        limit=filters.limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )


async def team_of(
    tx: Tx,
    authorizer: Authorizer,
    viewer: User,
    user_id: int,
    limit: int,
    offset: int,
    cursor: Cursor | None = None,
) -> UserPage:
    """Everyone below the user in the manager tree, at any depth, by id."""
    pager = Pager(limit, offset, cursor)
    root = await get_visible(tx, authorizer, viewer, user_id)
    members = await subtree_ids(tx.sql, root.id)
    members.discard(root.id)
    after = pager.key(TEAM_KEYSET)
    ordered = sorted(member for member in members if after is None or member > after[0])
    chosen = ordered[offset : offset + pager.fetch]
    rows: list[User] = []
    if chosen:
        rows = list((await tx.session.scalars(select(User).where(User.id.in_(chosen)).order_by(User.id))).all())
    page, next_cursor = pager.cut(TEAM_KEYSET, rows, lambda row: (row.id,))
    return UserPage(
        items=[UserOut.model_validate(row) for row in page],
        total=len(members),
        limit=limit,
        offset=pager.page_offset,
        next_cursor=next_cursor,
    )
