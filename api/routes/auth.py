"""Authentication: register, login (OAuth2 form or JSON), second factor, refresh, logout, OTP, password."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.routing import APIRoute
from starlette.types import Message

from api.deps import Authorize, Grant, Public, ServicesDep, TxDep, rate_limited
from core.db import Tx
from domain.audit.service import AuditContext
from domain.auth import rate_limits, sessions
from domain.auth import service as auth_service
from domain.auth.schemas import (
    GenerateOtpRequest,
    LoginRequest,
    LogoutRequest,
    OtpChallenge,
    OtpLoginRequest,
    OtpSent,
    OtpSetup,
    OtpStatus,
    OtpVerifyRequest,
    PasswordChange,
    PasswordConfirmation,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
)
from domain.errors import RateLimited, Unauthorized, ValidationFailed
from domain.users import service as users_service
from domain.users.schemas import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])

PublicContext = Annotated[AuditContext, Depends(Public("signing in happens before one has a token"))]
ProfileUpdate = Annotated[Grant, Depends(Authorize("profile", "update"))]
SessionRevoke = Annotated[Grant, Depends(Authorize("session", "revoke"))]

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_BODY_HEADERS = (b"content-type", b"content-length", b"transfer-encoding")


async def throttle(tx: Tx, checks: Iterable[tuple[rate_limits.Limit, str]]) -> None:
    """Count the attempt in every bucket, shared by all API processes, and commit at once, so the count stands
    whatever the request does next. Call it before the route writes anything (that would be committed too).

    On the request's own connection: a transaction of its own took a second pooled connection per request, and a
    burst of sign-ins as large as the pool held every connection while waiting for one (a stall until the pool's
    timeout, then 500s; found by the multi-process fault run, tests/reliability/cross_process.py)."""
    refused: list[RateLimited] = []
    for limit, key in checks:
        try:
            await rate_limits.hit(tx, limit, key)
        except RateLimited as exc:
            refused.append(exc)
    await tx.commit()
    if refused:
        raise max(refused, key=lambda exc: exc.retry_after)


@asynccontextmanager
async def keeping_failure_records(tx: Tx) -> AsyncIterator[None]:
    """A refused sign-in still commits what it recorded (audit row, a code's used-up attempt), then answers."""
    try:
        yield
    except (Unauthorized, ValidationFailed):
        await tx.commit()
        raise


def _address(context: AuditContext) -> str:
    return context.client_ip or "unknown"


class FormOrJsonLogin(APIRoute):
    """The login route reads the OAuth2 password form (what Swagger's Authorize dialog and OAuth2 clients send) as
    the JSON body it declares, so the OpenAPI document names one body type (`LoginRequest`): a generator handles
    one, and mishandles a JSON-or-form union."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_form_or_json(request: Request) -> Response:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            return await handle(await _form_as_json(request) if content_type in _FORM_TYPES else request)

        return handle_form_or_json


async def _form_as_json(request: Request) -> Request:
    form = await request.form()
    grant_type = form.get("grant_type")
    if grant_type not in (None, "", "password"):
        raise ValidationFailed("grant_type: only the password grant is supported", field="grant_type")
    # The OAuth2 extras (scope, client_id, client_secret) mean nothing here: only the credentials go on (a file
    # sent in their place is left out, so the answer is a 422 that names the missing field).
    fields = {key: value for key in ("username", "password") if isinstance(value := form.get(key), str)}
    body = json.dumps(fields).encode()
    headers = [(name, value) for name, value in request.scope["headers"] if name not in _BODY_HEADERS]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {**request.scope, "headers": headers}
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@router.post("/register", status_code=status.HTTP_201_CREATED, summary="Register as an employee")
@rate_limited
async def register(body: RegisterRequest, tx: TxDep, services: ServicesDep, context: PublicContext) -> UserOut:
    """Open when `ALLOW_REGISTRATION` is on (default: on outside production); otherwise 403."""
    login, _ = rate_limits.login_limits(services.settings.auth)
    await throttle(
        tx, [(rate_limits.Limit("register:address", "registrations", login.max_hits, 60), _address(context))]
    )
    user = await users_service.register(tx, services.settings, body, context)
    return UserOut.model_validate(user)


@rate_limited
async def login(credentials: LoginRequest, tx: TxDep, services: ServicesDep, context: PublicContext) -> Any:
    """JSON, or the same fields as the OAuth2 password form (`application/x-www-form-urlencoded`). Answers tokens,
    or `otp_required` with an `otp_token` when the account has two-factor sign-in (finish with POST
    /auth/login/otp)."""
    per_account, per_address = rate_limits.login_limits(services.settings.auth)
    account = await auth_service.throttle_key(tx, credentials.username)
    await throttle(tx, [(per_address, _address(context)), (per_account, account)])
    async with keeping_failure_records(tx):
        user = await auth_service.authenticate(
            tx, services.settings, credentials.username, credentials.password, context
        )
    return await auth_service.sign_in(tx, services.settings, user, context)


router.add_api_route(
    "/login",
    login,
    methods=["POST"],
    summary="Sign in with a username (or email) and password",
    response_model=TokenPair | OtpChallenge,
    route_class_override=FormOrJsonLogin,
)


@router.post("/login/otp", summary="Finish a sign-in with an authenticator or emailed code")
@rate_limited
async def login_otp(body: OtpLoginRequest, tx: TxDep, services: ServicesDep, context: PublicContext) -> TokenPair:
    user = await auth_service.challenged_user(tx, services.settings, body.otp_token)
    per_account, per_address = rate_limits.otp_verify_limits(services.settings.auth)
    await throttle(tx, [(per_address, _address(context)), (per_account, str(user.id))])
    async with keeping_failure_records(tx):
        return await auth_service.complete_otp_login(tx, services.settings, body.otp_token, body.code, context)


@router.post("/generate-otp", summary="Email a 6-digit sign-in code")
@rate_limited
async def generate_otp(body: GenerateOtpRequest, tx: TxDep, services: ServicesDep, context: PublicContext) -> OtpSent:
    """For a sign-in that answered `otp_required`: the code (10 minutes, single use, 5 tries) goes to the
    account's email; a new code replaces the previous one."""
    user = await auth_service.challenged_user(tx, services.settings, body.otp_token)
    per_account, per_address = rate_limits.otp_send_limits(services.settings.auth)
    await throttle(tx, [(per_address, _address(context)), (per_account, str(user.id))])
    expires_in = await auth_service.send_login_code(tx, services.settings, services.mail, user, context)
    return OtpSent(expires_in=expires_in)


@router.post("/refresh", summary="Exchange a refresh token for a new pair (the old one stops working)")
async def refresh(body: RefreshRequest, tx: TxDep, services: ServicesDep, context: PublicContext) -> TokenPair:
    """Presenting an already used refresh token revokes its whole session (someone copied it)."""
    async with keeping_failure_records(tx):
        return await sessions.rotate(tx, services.settings.auth, body.refresh_token, context)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End this session (or every session)")
async def logout(request: Request, tx: TxDep, grant: SessionRevoke, body: LogoutRequest | None = None) -> None:
    """Revokes this session's refresh tokens; every access token of the user stops working at once (other
    sessions carry on through their refresh token unless `everywhere` is true)."""
    claims = getattr(request.state, "token_claims", None)
    family = getattr(claims, "family", None)
    everywhere = body.everywhere if body else False
    await sessions.logout(tx, grant.user, family, everywhere, grant.audit)


async def _throttle_password_check(tx: Tx, services: ServicesDep, grant: Grant) -> None:
    """Every route that checks the current password shares the account's login allowance (no guessing here)."""
    per_account, _ = rate_limits.login_limits(services.settings.auth)
    await throttle(tx, [(per_account, f"user:{grant.user.id}")])


@router.post("/otp/setup", summary="Start authenticator-app enrolment (needs the current password): secret, URI, QR")
@rate_limited
async def otp_setup(body: PasswordConfirmation, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> OtpSetup:
    await _throttle_password_check(tx, services, grant)
    async with keeping_failure_records(tx):
        return await auth_service.setup_totp(tx, services.settings, grant.user, body.current_password, grant.audit)


@router.post("/otp/verify", summary="Confirm enrolment with a code from the app (and the password); enables it")
@rate_limited
async def otp_verify(body: OtpVerifyRequest, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> OtpStatus:
    per_account, per_address = rate_limits.otp_verify_limits(services.settings.auth)
    await throttle(tx, [(per_address, _address(grant.audit)), (per_account, str(grant.user.id))])
    await _throttle_password_check(tx, services, grant)
    async with keeping_failure_records(tx):
        return await auth_service.enable_totp(tx, grant.user, body.code, body.current_password, grant.audit)


@router.post("/otp/email", summary="Turn on two-factor sign-in by emailed code (needs the current password)")
@rate_limited
async def otp_email(body: PasswordConfirmation, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> OtpStatus:
    """From then on a sign-in answers `otp_required`; POST /auth/generate-otp emails the code to the account's
    address. 409 when two-factor sign-in is already on."""
    await _throttle_password_check(tx, services, grant)
    async with keeping_failure_records(tx):
        return await auth_service.enable_email_otp(tx, grant.user, body.current_password, grant.audit)


@router.post("/otp/disable", summary="Turn two-factor sign-in off (needs the current password)")
@rate_limited
async def otp_disable(body: PasswordConfirmation, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> OtpStatus:
    """Forgets the authenticator secret (a new enrolment starts from scratch) and kills live emailed codes.
    409 when two-factor sign-in is not on."""
    await _throttle_password_check(tx, services, grant)
    async with keeping_failure_records(tx):
        return await auth_service.disable_otp(tx, grant.user, body.current_password, grant.audit)


@router.post("/change-password", summary="Change the password (needs the current one); ends every other session")
@rate_limited
async def change_password(body: PasswordChange, tx: TxDep, services: ServicesDep, grant: ProfileUpdate) -> TokenPair:
    await _throttle_password_check(tx, services, grant)
    return await auth_service.change_password(
        tx, services.settings, grant.user, body.current_password, body.new_password, grant.audit
    )
