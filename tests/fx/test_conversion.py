"""Currencies' places and conversion through EUR: the rules hold for any currency, amount and pair of rates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activities.deps import ActivityDeps
from domain.errors import ValidationFailed
from domain.fx import rates
from domain.fx.rates import Terms
from domain.money import fits, in_minor_units, minor_units
from tests.fx.test_entries import ECB, cross, store_rates, working_day

PLACES = {"JPY": 0, "KRW": 0, "USD": 2, "EUR": 2, "GBP": 2, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}
BIG = Decimal("1000000000")


def test_minor_units_come_from_iso_4217() -> None:
    assert {code: minor_units(code) for code in PLACES} == PLACES
    assert minor_units("XAU") is None and minor_units("ABC") is None  # gold has none; ABC is no currency


@given(
    currency=st.sampled_from(sorted(PLACES)),
    units=st.integers(min_value=0, max_value=10**11),
    last=st.integers(min_value=1, max_value=9),
    extra=st.integers(min_value=0, max_value=2),
)
def test_an_amount_fits_its_currency_exactly_when_its_places_are_allowed(
    currency: str, units: int, last: int, extra: int
) -> None:
    # A last digit that is not zero, `extra` places beyond what the currency allows.
    amount = Decimal(units * 10 + last).scaleb(-(PLACES[currency] + extra))
    assert fits(amount, currency) == (extra == 0)
    assert fits(amount * 10**extra, currency)  # the same digits, moved back within the currency's places


rate_values = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("50000"), places=4)


@given(
    of=st.sampled_from(sorted(PLACES)),
    to=st.sampled_from(sorted(PLACES)),
    of_rate=rate_values,
    to_rate=rate_values,
    units=st.integers(min_value=1, max_value=10**11),
)
def test_a_converted_amount_is_the_cross_rate_times_the_amount_rounded_half_up_to_the_targets_places(
    of: str, to: str, of_rate: Decimal, to_rate: Decimal, units: int
) -> None:
    day = date(2026, 11, 20)
    amount = Decimal(units).scaleb(-PLACES[of])
    legs = {
        code: rates.Leg(code, Decimal(1) if code == "EUR" else rate, day, rates.Source.ECB)
        for code, rate in ((of, of_rate), (to, to_rate))
    }
    rate = rates._cross(of, to, legs[of], legs[to]) if of != to else rates.same(of, day)
    converted = rate.convert(amount)
    assert -converted.as_tuple().exponent == PLACES[to]  # type: ignore[operator]
    assert converted == (amount * rate.rate).quantize(Decimal(1).scaleb(-PLACES[to]), rounding=ROUND_HALF_UP)
    with localcontext() as context:
        context.prec = 60
        exact = amount * legs[to].rate / legs[of].rate
        # Off by at most half a minor unit, plus what a rate kept to 12 places can move an amount.
        assert abs(converted - exact) <= Decimal(1).scaleb(-PLACES[to]) / 2 + amount * Decimal("1e-12")


async def test_a_usd_entry_in_a_eur_install_converts_through_the_ecb_rate(activity_deps: ActivityDeps) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    euro_books = Terms("EUR", 7, BIG)
    async with activity_deps.db.transaction() as tx:
        locked = await rates.lock(tx.sql, "USD", Decimal("250.00"), friday + timedelta(days=1), euro_books)
        yen_books = await rates.lock(tx.sql, "GBP", Decimal("100.00"), friday, Terms("JPY", 7, BIG))
        dinar_books = await rates.lock(tx.sql, "USD", Decimal("99.99"), friday, Terms("BHD", 7, BIG))
    assert locked.rate.rate == cross("USD", "EUR", ECB)
    assert (locked.rate.day, locked.rate.source, locked.base_currency) == (friday, "ecb", "EUR")
    assert locked.base_amount == (Decimal("250.00") * locked.rate.rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert str(locked.base_amount).count(".") == 1 and len(str(locked.base_amount).split(".")[1]) == 2
    assert yen_books.base_amount == in_minor_units(Decimal("100.00") * cross("GBP", "JPY", ECB), "JPY")
    assert yen_books.base_amount.as_tuple().exponent == 0
    assert dinar_books.base_amount.as_tuple().exponent == -3


async def test_a_base_amount_over_the_maximum_is_refused_at_submit(activity_deps: ActivityDeps) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    async with activity_deps.db.transaction() as tx:
        with pytest.raises(ValidationFailed, match="must not exceed 1000.00"):
            await rates.lock(tx.sql, "GBP", Decimal("900.00"), friday, Terms("USD", 7, Decimal("1000.00")))
