"""Users: one's own profile, and (admin and up) the people in the manager tree."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import Authorize, Grant, RowId, ServicesDep, TxDep, rate_limited
from api.listing import listing_of
from api.routes.auth import throttle
from domain.auth import rate_limits
from domain.models import Role
from domain.pagination import Cursor
from domain.users import service
from domain.users.schemas import MeUpdate, UserCreate, UserFilters, UserOut, UserPage, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])

ProfileRead = Annotated[Grant, Depends(Authorize("profile", "read"))]
ProfileUpdate = Annotated[Grant, Depends(Authorize("profile", "update"))]
UserRead = Annotated[Grant, Depends(Authorize("user", "read"))]
UserCreateGrant = Annotated[Grant, Depends(Authorize("user", "create"))]
UserUpdateGrant = Annotated[Grant, Depends(Authorize("user", "update"))]
UserDelete = Annotated[Grant, Depends(Authorize("user", "delete"))]
TeamRead = Annotated[Grant, Depends(Authorize("user", "read_team"))]

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
UserListing = Annotated[Cursor, Depends(listing_of(UserOut))]


# /me comes before /{user_id}; the id is an int path parameter so /me/... routers of other features match first.
@router.get("/me", summary="The signed-in user")
async def me(grant: ProfileRead) -> UserOut:
    return UserOut.model_validate(grant.user)


@router.patch("/me", summary="Change one's name or password (role, manager and status are not one's own to set)")
@rate_limited
async def update_me(body: MeUpdate, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> UserOut:
    """A new password needs `current_password` and ends every session, this one included."""
    if body.password is not None:
        per_account, _ = rate_limits.login_limits(services.settings.auth)
        await throttle(tx, [(per_account, f"user:{grant.user.id}")])
    user = await service.update_me(tx, services.settings, grant.user, body, grant.audit)
    return UserOut.model_validate(user)


@router.get("/", summary="List users (admin and up), filtered and paginated")
async def list_users(
    tx: TxDep,
    grant: UserRead,
    cursor: UserListing,
    role: Role | None = None,
    manager_id: int | None = None,
    is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100, description="part of a name, email or username")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UserPage:
    filters = UserFilters(role=role, manager_id=manager_id, is_active=is_active, q=q, limit=limit, offset=offset)
    return await service.list_users(tx, filters, cursor)


@router.post("/", status_code=status.HTTP_201_CREATED, summary="Create a user with a role below one's own")
async def create_user(body: UserCreate, tx: TxDep, services: ServicesDep, grant: UserCreateGrant) -> UserOut:
    user = await service.create_user(tx, services.settings, grant.user, body, grant.audit)
    return UserOut.model_validate(user)


@router.get("/{user_id:int}", summary="A user within one's visibility (else 404)")
async def get_user(user_id: RowId, tx: TxDep, services: ServicesDep, grant: ProfileRead) -> UserOut:
    """Admins see everyone, managers their subtree, everyone else themselves."""
    user = await service.get_visible(tx, services.authorizer, grant.user, user_id)
    return UserOut.model_validate(user)


@router.patch("/{user_id:int}", summary="Change a user below one's own role")
async def update_user(
    user_id: RowId, body: UserUpdate, tx: TxDep, services: ServicesDep, grant: UserUpdateGrant
) -> UserOut:
    """A role change or deactivation ends the user's sessions at once; a manager change may not close a cycle."""
    user = await service.update_user(tx, services.settings, services.authorizer, grant.user, user_id, body, grant.audit)
    return UserOut.model_validate(user)


@router.delete("/{user_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Deactivate a user")
async def deactivate_user(user_id: RowId, tx: TxDep, services: ServicesDep, grant: UserDelete) -> None:
    """Users are never deleted (their records and audit trail stay); they stop being able to sign in."""
    await service.deactivate_user(tx, services.authorizer, grant.user, user_id, grant.audit)


@router.get("/{user_id:int}/team", summary="Everyone below a user in the manager tree")
async def team(
    user_id: RowId,
    tx: TxDep,
    services: ServicesDep,
    grant: TeamRead,
    cursor: UserListing,
    limit: Limit = 100,
    offset: Offset = 0,
) -> UserPage:
    return await service.team_of(tx, services.authorizer, grant.user, user_id, limit, offset, cursor)
