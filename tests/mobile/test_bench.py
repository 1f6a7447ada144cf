"""The phone benchmark runs (tests/bench/mobile.py) and says what it measures: fewer bytes after, 304s on refresh."""

from __future__ import annotations

import pytest

from core.settings import Settings
from tests.bench.mobile import app_client, scenario, seed

pytestmark = pytest.mark.usefixtures("database_url")


async def test_the_phone_benchmark_runs_and_saves_bytes(settings: Settings) -> None:
    me, token = await seed(settings, own_entries=25, inbox=3)
    async with app_client(settings) as http:
        figures = await scenario(http, me, token, samples=2)  # asserts the refresh's two 304s itself
    assert figures["after_open"] < figures["gzip_only_open"] < figures["before_open"]
    assert figures["after_open"] < figures["fields_only_open"] < figures["before_open"]
    assert figures["after_refresh"] < figures["after_open"] and figures["before_refresh"] == figures["before_open"]
