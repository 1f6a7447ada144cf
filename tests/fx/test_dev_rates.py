"""`make dev`'s exchange rates: the sample ECB file re-dated to the working days up to today, used unless the user
set URLs of their own."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core import devstack
from domain.fx import ecb
from tests.fx.conftest import sample_bytes


@pytest.mark.parametrize("today", [date(2026, 5, 4), date(2026, 5, 9)])  # a Monday, a Saturday
def test_the_sample_is_moved_onto_the_working_days_up_to_today(
    today: date, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "VAR", tmp_path)
    redated = ecb.parse(devstack.write_dev_rates(today).read_bytes())
    sample = ecb.parse(sample_bytes())
    assert not redated.refused and len(redated.days) == len(sample.days)
    assert all(day.day.weekday() < 5 for day in redated.days)
    assert redated.days[-1].day == (today if today.weekday() < 5 else date(2026, 5, 8))
    assert [day.rates for day in redated.days] == [day.rates for day in sample.days]


def test_the_users_urls_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devstack, "VAR", tmp_path)
    mine = {"FX_RATES_URL": "https://rates.example/daily.xml", "FX_RATES_HISTORY_URL": "https://rates.example/h.xml"}
    env = dict(mine)
    devstack.dev_rates_urls(env, date(2026, 5, 4))
    assert env == mine and not (tmp_path / "fx-rates.xml").exists()

    env = {}
    devstack.dev_rates_urls(env, date(2026, 5, 4))
    assert env["FX_RATES_URL"] == env["FX_RATES_HISTORY_URL"] == (tmp_path / "fx-rates.xml").as_uri()
