"""Fixed-window rate limits counted in the `rate_limit_hits` table, so every API process shares them.

Every attempt counts (not only failures): the counter goes up atomically before the credentials are checked,
so parallel guesses cannot slip past it. Keys are hashed, so the table holds no user names or addresses.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert

from core.db import Tx
from core.settings import AuthSettings
from domain.errors import RateLimited
from domain.models import RateLimitHit

# A client address stands for many accounts (an office behind one NAT), so it gets a larger allowance.
PER_ADDRESS_FACTOR = 5
_SWEEP_ONE_IN = 200  # now and then, drop windows of every bucket that ended a day ago
_KEEP = timedelta(days=1)


@dataclass(frozen=True)
class Limit:
    name: str  # the bucket prefix, e.g. "login:account"
    what: str  # for the message: "sign-in attempts"
    max_hits: int
    window_seconds: int


def login_limits(settings: AuthSettings) -> tuple[Limit, Limit]:
    """(per account, per client address) for password sign-in."""
    per_minute = settings.login_rate_per_minute
    return (
        Limit("login:account", "sign-in attempts for this account", per_minute, 60),
        Limit("login:address", "sign-in attempts from this address", per_minute * PER_ADDRESS_FACTOR, 60),
    )


def otp_verify_limits(settings: AuthSettings) -> tuple[Limit, Limit]:
    per_minute = settings.login_rate_per_minute
    return (
        Limit("otp-verify:account", "one-time code attempts for this account", per_minute, 60),
        Limit("otp-verify:address", "one-time code attempts from this address", per_minute * PER_ADDRESS_FACTOR, 60),
    )


def otp_send_limits(settings: AuthSettings) -> tuple[Limit, Limit]:
    per_hour = settings.otp_send_rate_per_hour
    return (
        Limit("otp-send:account", "codes sent to this account", per_hour, 3600),
        Limit("otp-send:address", "codes requested from this address", per_hour * PER_ADDRESS_FACTOR, 3600),
    )


def _bucket(limit: Limit, key: str) -> str:
    return f"{limit.name}:{hashlib.sha256(key.encode()).hexdigest()[:48]}"


async def hit(tx: Tx, limit: Limit, key: str, now: datetime | None = None) -> None:
    """Count one attempt against `key`; raise RateLimited (with the seconds to wait) once over the limit."""
    moment = now or datetime.now(UTC)
    epoch = moment.timestamp()
    window = int(epoch) // limit.window_seconds * limit.window_seconds
    window_start = datetime.fromtimestamp(window, UTC)
    bucket = _bucket(limit, key)
    upsert = (
        insert(RateLimitHit)
        .values(bucket=bucket, window_start=window_start, hits=1)
        .on_conflict_do_update(
            index_elements=[RateLimitHit.bucket, RateLimitHit.window_start],
            set_={"hits": RateLimitHit.hits + 1},
        )
        .returning(RateLimitHit.hits)
    )
    hits = int((await tx.session.execute(upsert)).scalar_one())
    if hits == 1:  # a new window: the bucket's older windows are of no further use
        await tx.session.execute(
            delete(RateLimitHit).where(RateLimitHit.bucket == bucket, RateLimitHit.window_start < window_start)
        )
        if secrets.randbelow(_SWEEP_ONE_IN) == 0:
            await tx.session.execute(delete(RateLimitHit).where(RateLimitHit.window_start < moment - _KEEP))
    if hits > limit.max_hits:
        retry_after = max(1, math.ceil(window + limit.window_seconds - epoch))
        raise RateLimited(f"too many {limit.what}; try again in {retry_after} seconds", retry_after=retry_after)
