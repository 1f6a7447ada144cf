"""Throttling: sign-in, code checks and code sending, per account and per client address, shared by processes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from temporalio.client import Client

from core.settings import Settings
from tests.conftest import PASSWORD, MakeUser, own_api
from tests.identity.conftest import login


@pytest.fixture
async def fresh_window() -> None:
    """Counters run in fixed one-minute windows; start well inside one, so no reset happens mid-test."""
    into_minute = time.time() % 60
    if into_minute > 50:
        await asyncio.sleep(60.5 - into_minute)


def _assert_throttled(response: httpx.Response, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds


async def test_login_is_throttled_per_account(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    fresh_window: None,
) -> None:
    monkeypatch.setattr(settings.auth, "login_rate_per_minute", 3)
    victim = await make_user("employee")
    bystander = await make_user("employee")
    for _ in range(3):
        assert (await login(client, victim.username, "wrong-password")).status_code == 401
    # Over the limit even the right password waits: guessing gains nothing.
    _assert_throttled(await login(client, victim.username, PASSWORD), 60)
    _assert_throttled(await login(client, victim.email, PASSWORD), 60)
    assert (await login(client, bystander.username, PASSWORD)).status_code == 200


async def test_login_is_throttled_per_client_address(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, fresh_window: None
) -> None:
    monkeypatch.setattr(settings.auth, "login_rate_per_minute", 2)  # per address: 5 times that
    for n in range(10):
        assert (await login(client, f"sprayed{n}", "password-1")).status_code == 401
    _assert_throttled(await login(client, "sprayed-last", "password-1"), 60)


async def test_counters_are_shared_by_api_processes(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    settings: Settings,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    fresh_window: None,
) -> None:
    monkeypatch.setattr(settings.auth, "login_rate_per_minute", 4)
    user = await make_user("employee")
    # A second application with its own engine and pool, as a second API process would have.
    async with own_api(settings, temporal_client, ("203.0.113.7", 50001)) as second:
        for http in (client, second, client, second):
            assert (await login(http, user.username, "wrong-password")).status_code == 401
        _assert_throttled(await login(second, user.username, PASSWORD), 60)
        _assert_throttled(await login(client, user.username, PASSWORD), 60)


async def test_code_sending_and_checking_are_throttled(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    fresh_window: None,
) -> None:
    monkeypatch.setattr(settings.auth, "otp_send_rate_per_hour", 2)
    monkeypatch.setattr(settings.auth, "login_rate_per_minute", 3)
    user = await make_user("employee", otp_enabled=True)
    otp_token = (await login(client, user.username)).json()["otp_token"]
    for _ in range(2):
        assert (await client.post("/api/v1/auth/generate-otp", json={"otp_token": otp_token})).status_code == 200
    _assert_throttled(await client.post("/api/v1/auth/generate-otp", json={"otp_token": otp_token}), 3600)
    for _ in range(3):
        wrong = await client.post("/api/v1/auth/login/otp", json={"otp_token": otp_token, "code": "999999"})
        assert wrong.status_code == 401
    _assert_throttled(await client.post("/api/v1/auth/login/otp", json={"otp_token": otp_token, "code": "999999"}), 60)


async def test_a_burst_of_sign_ins_larger_than_the_pool_is_answered_at_once(
    settings: Settings,
    temporal_client: Client,
    make_user: MakeUser,
    monkeypatch: pytest.MonkeyPatch,
    fresh_window: None,
) -> None:
    """Each sign-in counts its attempt on the request's own connection: were it to take a second one, a burst
    as large as the pool (a password-spraying client, say) would hold every connection while waiting for
    another, and the process would stall until the pool's timeout, then answer 500."""
    small_pool = settings.db.model_copy(update={"pool_size": 2, "max_overflow": 0})
    limited = settings.model_copy(update={"db": small_pool})
    monkeypatch.setattr(settings.auth, "login_rate_per_minute", 3)  # shared by the copy
    user = await make_user("employee")
    async with own_api(limited, temporal_client) as http, asyncio.timeout(20):
        answers = await asyncio.gather(*(login(http, user.username, "wrong-password") for _ in range(8)))
    assert sorted(answer.status_code for answer in answers) == [401] * 3 + [429] * 5
