"""The first superadmin: from FIRST_SUPERADMIN_EMAIL/PASSWORD, or with a random password shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from core.db import Tx
from core.security import hash_password
from domain.audit.service import SYSTEM, record
from domain.models import Role, User
from domain.users.schemas import password_length_problem


class BootstrapRefused(ValueError):
    """The configured first superadmin cannot be created as given (the message says why)."""


@dataclass(frozen=True)
class BootstrapResult:
    created: bool
    email: str
    generated_password: str | None = None  # shown once to the operator, never stored in clear


async def ensure_superadmin(tx: Tx, *, email: str, password: str, bcrypt_rounds: int) -> BootstrapResult:
    existing = await tx.session.scalar(select(User).where(User.role == Role.SUPERADMIN).limit(1))
    if existing is not None:
        return BootstrapResult(created=False, email=existing.email)
    email = (email or "superadmin@localhost").strip().lower()
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    elif problem := password_length_problem(password):
        raise BootstrapRefused(f"FIRST_SUPERADMIN_PASSWORD refused: {problem}")
    taken = await tx.session.scalar(select(func.count()).select_from(User).where(User.email == email))
    if taken:
        raise BootstrapRefused(f"a non-superadmin user already has the email {email}")
    user = User(
        email=email,
        username=email.split("@", 1)[0][:64] or "superadmin",
        full_name="Superadmin",
        password_hash=hash_password(password, bcrypt_rounds),
        role=Role.SUPERADMIN,
        is_active=True,
        is_verified=True,
    )
    tx.session.add(user)
    await tx.session.flush()
    await record(tx.sql, SYSTEM, "user.bootstrap_superadmin", "user", user.id, {"email": [None, email]})
    return BootstrapResult(created=True, email=email, generated_password=generated)
