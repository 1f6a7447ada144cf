"""Two-factor sign-in: authenticator-app enrolment, replayed TOTP codes, emailed codes that expire and die."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy import select, update

from activities.deps import ActivityDeps
from core.settings import Settings
from domain.models import OtpCode
from tests.conftest import PASSWORD, MakeUser
from tests.conftest import TestUser as Member
from tests.identity.conftest import bearer, latest_code, login

OTP = "/api/v1/auth"


PROOF = {"current_password": PASSWORD}


async def _enrol(client: httpx.AsyncClient, user: Member) -> tuple[pyotp.TOTP, str]:
    setup = await client.post(f"{OTP}/otp/setup", json=PROOF, headers=user.headers)
    assert setup.status_code == 200, setup.text
    body = setup.json()
    assert body["provisioning_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].lstrip().startswith("<svg") and "xmlns" in body["qr_svg"]
    totp = pyotp.TOTP(body["secret"])
    code = totp.now()
    enabled = await client.post(f"{OTP}/otp/verify", json={"code": code, **PROOF}, headers=user.headers)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == {"otp_enabled": True, "methods": ["totp", "email"]}
    return totp, code


async def test_totp_enrolment_then_sign_in_and_a_code_works_once(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("employee")
    wrong = await client.post(f"{OTP}/otp/verify", json={"code": "000000", **PROOF}, headers=user.headers)
    assert wrong.status_code == 409  # nothing to verify before setup
    totp, enrolment_code = await _enrol(client, user)

    challenge = await login(client, user.username)
    assert challenge.status_code == 200
    assert challenge.json()["otp_required"] is True and "access_token" not in challenge.json()
    otp_token = challenge.json()["otp_token"]

    # The enrolment code's time step is used up: the same code cannot sign in.
    replay = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": enrolment_code})
    assert replay.status_code == 401

    next_code = totp.at(datetime.now(UTC) + timedelta(seconds=30))  # valid_window 1 accepts the next step
    signed_in = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": next_code})
    assert signed_in.status_code == 200, signed_in.text
    me = await client.get("/api/v1/users/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["otp_enabled"] is True
    again = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": next_code})
    assert again.status_code == 401

    # With the factor enabled, nobody can swap the secret through setup again.
    assert (await client.post(f"{OTP}/otp/setup", json=PROOF, headers=user.headers)).status_code == 409


async def _email_challenge(client: httpx.AsyncClient, make_user: MakeUser) -> tuple[Member, str]:
    user = await make_user("employee", otp_enabled=True)  # two-factor by email only (no authenticator)
    challenge = await login(client, user.username)
    assert challenge.json()["methods"] == ["email"]
    otp_token = challenge.json()["otp_token"]
    sent = await client.post(f"{OTP}/generate-otp", json={"otp_token": otp_token})
    assert sent.status_code == 200, sent.text
    assert sent.json()["expires_in"] == 600
    return user, otp_token


async def test_emailed_code_signs_in_once_and_is_stored_hashed(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, activity_deps: ActivityDeps
) -> None:
    user, otp_token = await _email_challenge(client, make_user)
    code = latest_code(settings, user.email)
    async with activity_deps.db.transaction() as tx:
        stored = (await tx.session.scalars(select(OtpCode.code_hash).where(OtpCode.user_id == user.id))).all()
    assert stored and code not in stored[0]
    ok = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": code})
    assert ok.status_code == 200, ok.text
    assert (await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": code})).status_code == 401


async def test_emailed_code_dies_after_five_wrong_tries(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user, otp_token = await _email_challenge(client, make_user)
    code = latest_code(settings, user.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        answer = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": wrong})
        assert answer.status_code == 401
    dead = await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": code})
    assert dead.status_code == 401
    # A new code works again (and the dead one stays dead).
    await client.post(f"{OTP}/generate-otp", json={"otp_token": otp_token})
    fresh = latest_code(settings, user.email)
    assert (await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": fresh})).status_code == 200


async def test_emailed_code_expires(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, activity_deps: ActivityDeps
) -> None:
    user, otp_token = await _email_challenge(client, make_user)
    code = latest_code(settings, user.email)
    async with activity_deps.db.transaction() as tx:  # ten minutes pass
        await tx.session.execute(
            update(OtpCode)
            .where(OtpCode.user_id == user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": code})).status_code == 401


async def test_a_new_code_replaces_the_previous_one(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user, otp_token = await _email_challenge(client, make_user)
    first = latest_code(settings, user.email)
    await client.post(f"{OTP}/generate-otp", json={"otp_token": otp_token})
    second = latest_code(settings, user.email)
    if first != second:
        assert (await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": first})).status_code == 401
    assert (await client.post(f"{OTP}/login/otp", json={"otp_token": otp_token, "code": second})).status_code == 200


async def test_an_otp_token_is_not_an_access_token(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user("employee", otp_enabled=True)
    otp_token = (await login(client, user.username)).json()["otp_token"]
    assert (await client.get("/api/v1/users/me", headers=bearer(otp_token))).status_code == 401


async def test_a_pending_authenticator_secret_does_not_sign_in(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """An email-only account adds an app: until enrolment is confirmed, its codes open nothing."""
    user = await make_user("employee", otp_enabled=True)
    setup = await client.post(f"{OTP}/otp/setup", json=PROOF, headers=user.headers)
    assert setup.status_code == 200
    totp = pyotp.TOTP(setup.json()["secret"])
    challenge = (await login(client, user.username)).json()
    assert challenge["methods"] == ["email"]
    pending = await client.post(f"{OTP}/login/otp", json={"otp_token": challenge["otp_token"], "code": totp.now()})
    assert pending.status_code == 401
    confirmed = await client.post(f"{OTP}/otp/verify", json={"code": totp.now(), **PROOF}, headers=user.headers)
    assert confirmed.status_code == 200
    assert (await login(client, user.username)).json()["methods"] == ["totp", "email"]
