"""Sessions: a short-lived access token plus a rotating refresh token.

Each login starts a token family. A refresh uses its token up and issues the next one in the family; a used
token presented again means it was copied, so the whole family is revoked. Logging out revokes the family and
bumps the user's token version, which ends every access token at once (other devices refresh to carry on).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from core.db import Tx
from core.security import InvalidToken, decode_token, issue_token
from core.settings import AuthSettings
from domain.audit.service import AuditContext, record
from domain.auth.schemas import TokenPair
from domain.errors import Unauthorized
from domain.models import RefreshToken, User

INVALID_REFRESH = "invalid or expired refresh token"


def _access_lifetime(settings: AuthSettings) -> timedelta:
    return timedelta(minutes=settings.access_token_expire_minutes)


async def _issue_pair(
    tx: Tx, settings: AuthSettings, user: User, family: uuid.UUID, context: AuditContext
) -> TokenPair:
    refresh_id = uuid.uuid4()
    lifetime = timedelta(days=settings.refresh_token_expire_days)
    refresh, claims = issue_token(
        settings,
        user_id=user.id,
        token_type="refresh",
        token_version=user.token_version,
        lifetime=lifetime,
        jti=refresh_id.hex,
        family=family.hex,
    )
    tx.session.add(
        RefreshToken(
            id=refresh_id,
            user_id=user.id,
            family_id=family,
            expires_at=claims.expires_at,
            client_ip=(context.client_ip or None) and context.client_ip[:64],
            user_agent=(context.user_agent or None) and context.user_agent[:300],
        )
    )
    access, _ = issue_token(
        settings,
        user_id=user.id,
        token_type="access",
        token_version=user.token_version,
        lifetime=_access_lifetime(settings),
        family=family.hex,
    )
    await tx.session.flush()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=settings.access_token_expire_minutes * 60)


async def new_session(tx: Tx, settings: AuthSettings, user: User, context: AuditContext) -> tuple[TokenPair, str]:
    """A new token family for the user (no audit row: the caller records why)."""
    family = uuid.uuid4()
    return await _issue_pair(tx, settings, user, family, context), family.hex


async def start_session(
    tx: Tx,
    settings: AuthSettings,
    user: User,
    context: AuditContext,
    second_factor: str | None = None,
) -> TokenPair:
    """A successful sign-in: a new token family, `last_login_at`, and the audit row."""
    user.last_login_at = datetime.now(UTC)
    pair, family = await new_session(tx, settings, user, context)
    changes = {"session": family} if second_factor is None else {"session": family, "second_factor": second_factor}
    await record(tx.sql, context.model_copy(update={"actor_id": user.id}), "auth.login", "user", user.id, changes)
    return pair


async def rotate(tx: Tx, settings: AuthSettings, token: str, context: AuditContext) -> TokenPair:
    """Exchange a refresh token for a new pair. A replayed token revokes its family (flushed; the caller commits
    even though this raises, so the revocation holds)."""
    try:
        claims = decode_token(settings, token, "refresh")
        token_id = uuid.UUID(hex=claims.jti)
    except (InvalidToken, ValueError) as exc:
        raise Unauthorized(INVALID_REFRESH) from exc
    # The row lock makes two concurrent uses of one token count as a replay, not as two rotations.
    row = await tx.session.scalar(select(RefreshToken).where(RefreshToken.id == token_id).with_for_update())
    now = datetime.now(UTC)
    if row is None or row.user_id != claims.user_id or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthorized(INVALID_REFRESH)
    actor = context.model_copy(update={"actor_id": row.user_id})
    if row.used_at is not None:
        revoked = await revoke_family(tx, row.family_id)
        await record(
            tx.sql,
            actor,
            "auth.refresh_replayed",
            "user",
            row.user_id,
            {"session": row.family_id.hex, "revoked_tokens": revoked},
        )
        raise Unauthorized(INVALID_REFRESH)
    user = await tx.session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized(INVALID_REFRESH)
    row.used_at = now
    pair = await _issue_pair(tx, settings, user, row.family_id, context)
    await record(tx.sql, actor, "auth.refresh", "user", user.id, {"session": row.family_id.hex})
    return pair


async def revoke_family(tx: Tx, family: uuid.UUID) -> int:
    result = await tx.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def revoke_all(tx: Tx, user: User) -> int:
    """End every session of the user: refresh tokens revoked, access tokens outdated by the version bump."""
    result = await tx.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    user.token_version += 1
    await tx.session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


async def logout(tx: Tx, user: User, family_hex: str | None, everywhere: bool, context: AuditContext) -> None:
    if everywhere or not family_hex:
        revoked = await revoke_all(tx, user)
    else:
        try:
            family = uuid.UUID(hex=family_hex)
        except ValueError:
            family = None
        revoked = await revoke_family(tx, family) if family else 0
        user.token_version += 1  # this session's access token must stop working now, not in 15 minutes
        await tx.session.flush()
    await record(tx.sql, context, "auth.logout", "user", user.id, {"everywhere": everywhere, "revoked_tokens": revoked})
