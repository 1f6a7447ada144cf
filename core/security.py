"""Cryptographic primitives: password hashing, JWTs, one-time codes. No business rules here."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import bcrypt
import jwt
import pyotp

from core.settings import AuthSettings

JWT_ALGORITHMS = ["HS256"]  # fixed: a token naming any other algorithm (or "none") is refused
TokenType = Literal["access", "refresh", "otp"]


# --- passwords -------------------------------------------------------------------------------------


def _prehash(password: str) -> bytes:
    """bcrypt reads only 72 bytes; a SHA-256 pre-hash (base64, 44 bytes) lets every character count."""
    digest = hashlib.sha256(password.encode("utf-8")).digest()
    return base64.b64encode(digest)


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode())
    except ValueError:
        return False


_DUMMY_HASH: dict[int, str] = {}


def burn_password_check(password: str, rounds: int) -> None:
    """Spend the time of a real check, so an unknown user answers as slowly as a wrong password."""
    if rounds not in _DUMMY_HASH:
        _DUMMY_HASH[rounds] = hash_password(secrets.token_urlsafe(16), rounds)
    verify_password(password, _DUMMY_HASH[rounds])


# --- JWT -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_type: TokenType
    token_version: int
    jti: str
    family: str | None
    expires_at: datetime


class InvalidToken(Exception):
    pass


def issue_token(
    settings: AuthSettings,
    *,
    user_id: int,
    token_type: TokenType,
    token_version: int,
    lifetime: timedelta,
    jti: str | None = None,
    family: str | None = None,
) -> tuple[str, TokenClaims]:
    now = datetime.now(UTC)
    claims = TokenClaims(
        user_id=user_id,
        token_type=token_type,
        token_version=token_version,
        jti=jti or uuid.uuid4().hex,
        family=family,
        expires_at=now + lifetime,
    )
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "typ": token_type,
        "ver": token_version,
        "jti": claims.jti,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    if family:
        payload["fam"] = family
    return jwt.encode(payload, settings.secret_key, algorithm=JWT_ALGORITHMS[0]), claims


@functools.lru_cache(maxsize=4096)
def _verified_payload(secret_key: str, audience: str, issuer: str, token: str) -> dict[str, Any]:
    """The claims of a token whose signature, algorithm, audience, issuer and required claims hold, remembered by
    the token's exact text: every request of a session carries the same token, and PyJWT re-derives and checks the
    key on each decode (about 5% of the API's CPU in `make bench`'s approvals). Expiry is not remembered: the
    caller checks it on every use. Tokens that fail are not remembered (lru_cache keeps no exceptions)."""
    return jwt.decode(
        token,
        secret_key,
        algorithms=JWT_ALGORITHMS,
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "iss", "aud", "jti", "typ"], "verify_exp": False},
    )


def decode_token(settings: AuthSettings, token: str, expected_type: TokenType) -> TokenClaims:
    try:
        payload = _verified_payload(settings.secret_key, settings.jwt_audience, settings.jwt_issuer, token)
        expired = int(payload["exp"]) <= time.time()
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidToken("malformed claims") from exc
    if expired:
        raise InvalidToken("Signature has expired")
    if payload.get("typ") != expected_type:
        raise InvalidToken(f"expected a {expected_type} token")
    try:
        return TokenClaims(
            user_id=int(payload["sub"]),
            token_type=payload["typ"],
            token_version=int(payload.get("ver", 0)),
            jti=str(payload["jti"]),
            family=payload.get("fam"),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidToken("malformed claims") from exc


# --- one-time codes --------------------------------------------------------------------------------


def new_email_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_code(secret_key: str, code: str) -> str:
    """Keyed hash: a leaked table of 6-digit code hashes cannot be brute-forced offline without the key."""
    return hmac.new(secret_key.encode(), code.encode(), hashlib.sha256).hexdigest()


def codes_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def totp_matching_step(secret: str, code: str, at: datetime | None = None) -> int | None:
    """The time step a TOTP code belongs to (window ±1), or None; the caller refuses reused steps."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    moment = at or datetime.now(UTC)
    step = totp.timecode(moment)
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None
