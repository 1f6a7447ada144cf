"""Exchange rates as the books use them: which rate converts a currency on a day, and the rate locked at submit.

Rates are kept as the ECB publishes them, "1 EUR = rate units of the currency" (`fx_rates`); the rate between any
two currencies goes through EUR (cross rate = units of the target per EUR / units of the source per EUR). For each
leg the rate is the latest one dated on or before the day, within `max_stale_days`; on one day a manual rate wins
over the imported one. Weekends and holidays have no rates of their own: the last working day's serves.

Rounding, named once each: a cross rate is kept to RATE_PLACES decimal places, half-even (the stored rate is the
rate: amount x fx_rate reproduces the base amount, so an auditor can recompute it); a converted amount is rounded
half-up to the target currency's minor units (domain.money.in_minor_units).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from core.settings import Settings
from core.sql import Sql
from domain.errors import ValidationFailed
from domain.money import in_minor_units

EUR = "EUR"  # the reference currency of every stored rate
RATE_PLACES = 12  # as fx_rate NUMERIC(28, 12) keeps it
_RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)


class Source:
    BASE = "base"  # the entry is in the base currency: rate 1, nothing looked up
    ECB = "ecb"
    MANUAL = "manual"


@dataclass(frozen=True)
class Leg:
    """One stored rate: 1 EUR = `rate` units of `currency`, dated `day`, from `source`."""

    currency: str
    rate: Decimal
    day: date
    source: str


@dataclass(frozen=True)
class Rate:
    """Units of `to` for one unit of `of` on `day` (the older of its legs' dates), from `source` (manual when any leg
    was), and the stored rates it was made of."""

    of: str
    to: str
    rate: Decimal
    day: date
    source: str
    legs: tuple[Leg, ...] = ()

    def convert(self, amount: Decimal) -> Decimal:
        """`amount` of `of` in `to`, rounded half-up to its minor units."""
        return in_minor_units(amount * self.rate, self.to)

    def describe(self) -> dict[str, object]:
        """For an audit row or an answer: the rate and each stored rate behind it."""
        return {
            "rate": format(self.rate, "f"),
            "of": self.of,
            "to": self.to,
            "rate_date": self.day.isoformat(),
            "source": self.source,
            "legs": [
                {"currency": leg.currency, "per_eur": format(leg.rate, "f"), "rate_date": leg.day.isoformat(),
                 "source": leg.source}
                for leg in self.legs
            ],
        }  # fmt: skip


@dataclass(frozen=True)
class Locked:
    """What a submit locks: the entry's own amount and currency, and what it is in the base currency."""

    currency: str
    amount: Decimal
    base_currency: str
    rate: Rate
    base_amount: Decimal


# For each (currency, day) asked: the latest rate on or before the day and no older than `stale` days; a manual rate
# before the imported one of the same day. One statement for any number of legs (ix_fx_rates_currency_date).
_LEGS = (
    "SELECT asked.currency, asked.day, r.rate, r.rate_date, r.source "
    "FROM unnest(%s::text[], %s::date[]) AS asked(currency, day) "
    "LEFT JOIN LATERAL (SELECT rate, rate_date, source FROM fx_rates f WHERE f.currency = asked.currency "
    "AND f.rate_date <= asked.day AND f.rate_date >= asked.day - %s::int "
    "ORDER BY f.rate_date DESC, (f.source = 'manual') DESC LIMIT 1) r ON true"
)


async def _legs(sql: Sql, wanted: set[tuple[str, date]], stale_days: int) -> dict[tuple[str, date], Leg | None]:
    asked = sorted(pair for pair in wanted if pair[0] != EUR)
    found: dict[tuple[str, date], Leg | None] = {(EUR, day): Leg(EUR, Decimal(1), day, Source.ECB) for _, day in wanted}
    if asked:
        params = ([currency for currency, _ in asked], [day for _, day in asked], stale_days)
        for currency, day, rate, rate_day, source in await sql.all(_LEGS, params):
            found[(currency, day)] = Leg(currency, rate, rate_day, source) if rate is not None else None
    return found


def _cross(of: str, to: str, source_leg: Leg, target_leg: Leg) -> Rate:
    legs = tuple(leg for leg in (source_leg, target_leg) if leg.currency != EUR)
    with localcontext() as context:
        context.prec = 34
        rate = (target_leg.rate / source_leg.rate).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN)
    day = min(leg.day for leg in legs) if legs else source_leg.day
    source = Source.MANUAL if any(leg.source == Source.MANUAL for leg in legs) else Source.ECB
    return Rate(of, to, rate, day, source, legs)


def same(currency: str, day: date) -> Rate:
    return Rate(currency, currency, Decimal(1), day, Source.BASE)


async def rates_on(sql: Sql, asked: set[tuple[str, str, date]], stale_days: int) -> dict[tuple[str, str, date], Rate]:
    """The rate for each (from, to, day) asked, in one query; a pair without a rate fresh enough is left out."""
    wanted = {(currency, day) for of, to, day in asked for currency in (of, to) if of != to}
    legs = await _legs(sql, wanted, stale_days) if wanted else {}
    found: dict[tuple[str, str, date], Rate] = {}
    for of, to, day in asked:
        if of == to:
            found[(of, to, day)] = same(of, day)
            continue
        source_leg, target_leg = legs.get((of, day)), legs.get((to, day))
        if source_leg is not None and target_leg is not None:
            found[(of, to, day)] = _cross(of, to, source_leg, target_leg)
    return found


async def rate_on(sql: Sql, of: str, to: str, day: date, stale_days: int) -> Rate | None:
    """Units of `to` for one `of` on `day`, or None when a leg has no rate within `stale_days` before it."""
    return (await rates_on(sql, {(of, to, day)}, stale_days)).get((of, to, day))


@dataclass(frozen=True)
class Terms:
    """What a submit locks a rate under: the books' currency, how old a rate may be, and the largest base amount an
    entry may have (MAX_ENTRY_AMOUNT)."""

    base: str
    max_stale_days: int
    max_base_amount: Decimal


def terms_from(settings: Settings) -> Terms:
    return Terms(settings.approvals.base_currency, settings.fx.max_stale_days, settings.approvals.max_entry_amount)


async def lock(sql: Sql, currency: str, amount: Decimal, day: date, terms: Terms) -> Locked:
    """The rate a submit locks for an entry of `amount` `currency` dated `day`: 422, naming the missing rate, when
    there is none within the stale limit before the entry date, or when the base amount is over the maximum."""
    stale_days = terms.max_stale_days
    rate = await rate_on(sql, currency, terms.base, day, stale_days)
    if rate is None:
        missing = [code for code in (currency, terms.base)
                   if code != EUR and await rate_on(sql, code, EUR, day, stale_days) is None]  # fmt: skip
        raise ValidationFailed(
            f"no exchange rate from {currency} to {terms.base} dated {day.isoformat()} or up to {stale_days} days "
            f"before: import the ECB rates, or add a manual rate (units per EUR) for {', '.join(missing)}",
            field="currency",
            reason="rate_missing",
            missing=missing,
            entry_date=day.isoformat(),
            max_stale_days=stale_days,
        )
    base_amount = rate.convert(amount)
    if base_amount > terms.max_base_amount:
        raise ValidationFailed(
            f"the amount is {base_amount} {terms.base} in the base currency; it must not exceed "
            f"{terms.max_base_amount}",
            field="amount",
            maximum=str(terms.max_base_amount),
        )
    return Locked(currency, in_minor_units(amount, currency), terms.base, rate, base_amount)
