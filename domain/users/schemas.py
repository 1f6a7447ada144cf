"""Request and response shapes for users. Requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from domain.entries.schemas import Storable
from domain.json_numbers import BodyId
from domain.models import Role
from domain.pagination import PageInfo

# 8 to 128 characters, every one of them counts (core.security pre-hashes before bcrypt's 72-byte cut).
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
Password = Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]


def password_length_problem(password: str) -> str | None:
    """Why a password is refused, for the places that do not parse it through `Password` (the CLI)."""
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        return (
            f"a password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long, "
            f"this one has {len(password)}"
        )
    return None


Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{3,64}$", to_lower=True)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    username: str
    full_name: str
    role: Role
    manager_id: int | None
    is_active: bool
    is_verified: bool
    otp_enabled: bool
    created_at: datetime
    last_login_at: datetime | None


class UserPage(PageInfo):
    items: list[UserOut]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    username: Username
    full_name: FullName
    password: Password
    role: Role = Role.EMPLOYEE
    manager_id: BodyId = Field(description="every user but a superadmin reports to a manager")


class UserUpdate(BaseModel):
    """An admin's change to another user. `is_active: false` deactivates, like DELETE."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | SkipJsonSchema[None] = None
    username: Username | SkipJsonSchema[None] = None
    full_name: FullName | SkipJsonSchema[None] = None
    role: Role | SkipJsonSchema[None] = None
    manager_id: BodyId | None = None
    is_active: StrictBool | SkipJsonSchema[None] = None


class MeUpdate(BaseModel):
    """What a user may change about themselves: their name and their password (with the current one)."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=128)] | None = None


class UserFilters(BaseModel):
    role: Role | None = None
    manager_id: int | None = None
    is_active: bool | None = None
    q: Annotated[str, Field(max_length=100)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0
