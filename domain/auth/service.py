"""Sign-in: password check, the second factor (TOTP or an emailed code), TOTP enrolment and password change.

Failures flush their audit rows (and code attempt counters) before raising; the HTTP layer commits them even
though the request fails, so a failed sign-in leaves its trace.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import segno
from sqlalchemy import select, update

from core import security
from core.db import Tx
from core.mail import MailTransport, OutgoingMail
from core.settings import Settings
from domain.audit.service import AuditContext, record
from domain.auth import passwords, sessions
from domain.auth.schemas import OtpChallenge, OtpSetup, OtpStatus, TokenPair
from domain.errors import Conflict, ServiceUnavailable, Unauthorized, ValidationFailed
from domain.mail.rendering import EmailRenderer
from domain.models import OtpCode, User
from domain.users.service import check_current_password, find_by_login

INVALID_LOGIN = "invalid username or password"
INVALID_CODE = "invalid or expired code"
INVALID_CHALLENGE = "the sign-in has expired; log in again"
OTP_TOKEN_LIFETIME = timedelta(minutes=5)
EMAIL_CODE_LIFETIME = timedelta(minutes=10)
EMAIL_CODE_MAX_ATTEMPTS = 5


async def throttle_key(tx: Tx, identifier: str) -> str:
    """The per-account rate-limit key: the user's id when the login names one (so the email and the username
    share one allowance), else the login as typed."""
    user = await find_by_login(tx, identifier)
    return f"user:{user.id}" if user is not None else f"login:{identifier.strip().lower()}"


async def authenticate(tx: Tx, settings: Settings, identifier: str, password: str, context: AuditContext) -> User:
    """The active user with this login and password. Unknown user, wrong password and inactive account get the
    same answer after the same bcrypt work."""
    user = await find_by_login(tx, identifier)
    if user is None:
        await passwords.burn_password_check(password, settings.auth.bcrypt_rounds)
        await record(
            tx.sql, context, "auth.login_failed", "user", None, {"login": identifier[:64], "reason": "unknown"}
        )
        raise Unauthorized(INVALID_LOGIN)
    if not await passwords.verify_password(password, user.password_hash) or not user.is_active:
        reason = "inactive" if user.is_active is False else "password"
        await record(tx.sql, context, "auth.login_failed", "user", user.id, {"reason": reason})
        raise Unauthorized(INVALID_LOGIN)
    return user


async def sign_in(tx: Tx, settings: Settings, user: User, context: AuditContext) -> TokenPair | OtpChallenge:
    """After the password: tokens, or a challenge when the account has two-factor sign-in."""
    if not user.otp_enabled:
        return await sessions.start_session(tx, settings.auth, user, context)
    token, _ = security.issue_token(
        settings.auth,
        user_id=user.id,
        token_type="otp",
        token_version=user.token_version,
        lifetime=OTP_TOKEN_LIFETIME,
    )
    await record(tx.sql, context, "auth.otp_challenged", "user", user.id, {})
    return OtpChallenge(
        otp_token=token, methods=second_factors(user), expires_in=int(OTP_TOKEN_LIFETIME.total_seconds())
    )


async def challenged_user(tx: Tx, settings: Settings, otp_token: str, lock: bool = False) -> User:
    """The user an `otp_token` was issued to, if the challenge still stands."""
    try:
        claims = security.decode_token(settings.auth, otp_token, "otp")
    except security.InvalidToken as exc:
        raise Unauthorized(INVALID_CHALLENGE) from exc
    query = select(User).where(User.id == claims.user_id)
    if lock:
        query = query.with_for_update()
    user = await tx.session.scalar(query)
    if user is None or not user.is_active or not user.otp_enabled or user.token_version != claims.token_version:
        raise Unauthorized(INVALID_CHALLENGE)
    return user


def totp_confirmed(user: User) -> bool:
    """An authenticator secret counts once enrolment proved the app has it (a code was accepted)."""
    return bool(user.otp_secret) and user.otp_last_step is not None


def second_factors(user: User) -> list:
    """What a sign-in accepts after the password: emailed codes whenever two-factor is on, plus the app once
    enrolled."""
    if not user.otp_enabled:
        return []
    return ["totp", "email"] if totp_confirmed(user) else ["email"]


def otp_status(user: User) -> OtpStatus:
    return OtpStatus(otp_enabled=user.otp_enabled, methods=second_factors(user))


def _accept_totp(user: User, code: str, pending: bool = False) -> bool | None:
    """True when the code is fresh, False when it is a replay of a used step, None when it does not match.
    A secret still pending enrolment only counts for the enrolment itself."""
    if not user.otp_secret or (not pending and user.otp_last_step is None):
        return None
    step = security.totp_matching_step(user.otp_secret, code)
    if step is None:
        return None
    if user.otp_last_step is not None and step <= user.otp_last_step:
        return False
    user.otp_last_step = step
    return True


async def _accept_email_code(tx: Tx, settings: Settings, user: User, code: str) -> bool:
    """Check the newest live emailed code; a wrong guess uses up one of its attempts."""
    now = datetime.now(UTC)
    row = await tx.session.scalar(
        select(OtpCode)
        .where(OtpCode.user_id == user.id, OtpCode.purpose == "login", OtpCode.used_at.is_(None))
        .order_by(OtpCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None or row.expires_at <= now or row.attempts >= EMAIL_CODE_MAX_ATTEMPTS:
        return False
    if security.codes_equal(security.hash_code(settings.auth.secret_key, code), row.code_hash):
        row.used_at = now
        return True
    row.attempts += 1
    return False


async def complete_otp_login(tx: Tx, settings: Settings, otp_token: str, code: str, context: AuditContext) -> TokenPair:
    user = await challenged_user(tx, settings, otp_token, lock=True)
    totp = _accept_totp(user, code)
    method: str | None
    if totp is True:
        method = "totp"
    elif totp is False:
        # A replay of an authenticator code already used: refused as such. It is not a guess at the emailed code,
        # so it must not use up one of that code's tries (a replayer could otherwise kill the live code).
        method = None
    else:
        method = "email" if await _accept_email_code(tx, settings, user, code) else None
    if method is None:
        reason = "totp_replayed" if totp is False else "wrong_or_expired"
        await record(tx.sql, context, "auth.otp_failed", "user", user.id, {"reason": reason})
        await tx.session.flush()
        raise Unauthorized(INVALID_CODE)
    return await sessions.start_session(tx, settings.auth, user, context, second_factor=method)


async def send_login_code(tx: Tx, settings: Settings, mail: MailTransport, user: User, context: AuditContext) -> int:
    """Email a fresh 6-digit code (stored only as a keyed hash); earlier codes stop working. Returns its life."""
    now = datetime.now(UTC)
    await tx.session.execute(
        update(OtpCode)
        .where(OtpCode.user_id == user.id, OtpCode.used_at.is_(None), OtpCode.expires_at > now)
        .values(expires_at=now)
    )
    code = security.new_email_code()
    row = OtpCode(
        user_id=user.id,
        code_hash=security.hash_code(settings.auth.secret_key, code),
        purpose="login",
        expires_at=now + EMAIL_CODE_LIFETIME,
        attempts=0,
    )
    tx.session.add(row)
    await tx.session.flush()
    minutes = int(EMAIL_CODE_LIFETIME.total_seconds() // 60)
    rendered = _renderer(settings.public_base_url, settings.app_name).render(
        "otp_code",
        {"title": "Your sign-in code", "code": code, "expires_minutes": minutes, "recipient_name": user.full_name},
    )
    # Sent now, in the request, not through the notification workflow: the person is waiting at the sign-in form.
    # The code exists in clear only in this message; the table keeps its keyed hash.
    message = OutgoingMail(
        to=[user.email],
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=f"otp-{row.id}-{uuid.uuid4().hex}@finance-ops",
    )
    try:
        await asyncio.to_thread(mail.send, message)
    except Exception as exc:
        raise ServiceUnavailable("the code could not be sent; try again shortly") from exc
    await record(tx.sql, context, "auth.otp_sent", "user", user.id, {"channel": "email", "code_id": row.id})
    return int(EMAIL_CODE_LIFETIME.total_seconds())


@lru_cache(maxsize=4)
def _renderer(base_url: str, app_name: str) -> EmailRenderer:
    """One renderer per configuration: its Jinja environment caches the compiled templates."""
    return EmailRenderer(base_url=base_url, app_name=app_name)


async def _confirm_password(tx: Tx, user: User, current_password: str, change: str, context: AuditContext) -> None:
    """The current password, before any change to how the account signs in; a wrong one is audited."""
    try:
        await check_current_password(user, current_password)
    except ValidationFailed:
        await record(tx.sql, context, "auth.otp_change_refused", "user", user.id, {"change": change})
        await tx.session.flush()
        raise


async def _locked(tx: Tx, user: User) -> User:
    locked = await tx.session.scalar(select(User).where(User.id == user.id).with_for_update())
    assert locked is not None
    return locked


def _qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()


async def setup_totp(tx: Tx, settings: Settings, user: User, current_password: str, context: AuditContext) -> OtpSetup:
    """A new secret, pending until POST /auth/otp/verify proves the authenticator app has it."""
    await _confirm_password(tx, user, current_password, "totp_setup", context)
    locked = await _locked(tx, user)
    if locked.otp_enabled and totp_confirmed(locked):
        raise Conflict("two-factor sign-in with an authenticator app is already enabled")
    secret = security.new_totp_secret()
    locked.otp_secret = secret
    locked.otp_last_step = None
    await tx.session.flush()
    uri = security.totp_uri(secret, locked.email, settings.app_name)
    await record(tx.sql, context, "auth.otp_setup_started", "user", locked.id, {})
    return OtpSetup(secret=secret, provisioning_uri=uri, qr_svg=_qr_svg(uri))


async def enable_totp(tx: Tx, user: User, code: str, current_password: str, context: AuditContext) -> OtpStatus:
    await _confirm_password(tx, user, current_password, "totp_enable", context)
    locked = await _locked(tx, user)
    if not locked.otp_secret:
        raise Conflict("start with POST /api/v1/auth/otp/setup")
    if totp_confirmed(locked):
        raise Conflict("two-factor sign-in with an authenticator app is already enabled")
    if not _accept_totp(locked, code, pending=True):
        await record(tx.sql, context, "auth.otp_failed", "user", locked.id, {"reason": "enrolment_code"})
        await tx.session.flush()
        raise ValidationFailed("code: does not match the authenticator app; check the device clock", field="code")
    locked.otp_enabled = True
    await tx.session.flush()
    await record(tx.sql, context, "auth.otp_enabled", "user", locked.id, {"method": "totp"})
    return otp_status(locked)


async def enable_email_otp(tx: Tx, user: User, current_password: str, context: AuditContext) -> OtpStatus:
    """Two-factor sign-in by a code emailed at each sign-in (POST /auth/generate-otp)."""
    await _confirm_password(tx, user, current_password, "email_enable", context)
    locked = await _locked(tx, user)
    if locked.otp_enabled:
        raise Conflict("two-factor sign-in is already on (emailed codes are accepted with it)")
    locked.otp_enabled = True
    await tx.session.flush()
    await record(tx.sql, context, "auth.otp_enabled", "user", locked.id, {"method": "email"})
    return otp_status(locked)


async def disable_otp(tx: Tx, user: User, current_password: str, context: AuditContext) -> OtpStatus:
    """Back to password-only sign-in: the authenticator secret is forgotten and live emailed codes die."""
    await _confirm_password(tx, user, current_password, "disable", context)
    locked = await _locked(tx, user)
    if not locked.otp_enabled and not locked.otp_secret:
        raise Conflict("two-factor sign-in is not on")
    before = second_factors(locked)
    locked.otp_enabled = False
    locked.otp_secret = None
    locked.otp_last_step = None
    now = datetime.now(UTC)
    await tx.session.execute(
        update(OtpCode)
        .where(OtpCode.user_id == locked.id, OtpCode.used_at.is_(None), OtpCode.expires_at > now)
        .values(expires_at=now)
    )
    await tx.session.flush()
    await record(tx.sql, context, "auth.otp_disabled", "user", locked.id, {"methods": before})
    return otp_status(locked)


async def change_password(
    tx: Tx, settings: Settings, user: User, current: str, new: str, context: AuditContext
) -> TokenPair:
    """A new password ends every session; the caller gets a fresh one."""
    await check_current_password(user, current)
    user.password_hash = await passwords.hash_password(new, settings.auth.bcrypt_rounds)
    revoked = await sessions.revoke_all(tx, user)
    pair, family = await sessions.new_session(tx, settings.auth, user, context)
    await record(
        tx.sql, context, "auth.password_changed", "user", user.id, {"revoked_tokens": revoked, "session": family}
    )
    return pair
