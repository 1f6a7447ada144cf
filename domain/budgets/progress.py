"""How far a budget period has come: the share of it used or spent, against the share of its time gone by (burn),
and what that says (over, ahead of plan, on track). One place for the rule: the budgets' API, the budget report and
the dashboard all show these."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from domain.money import CENT

STATUS_OVER = "over"
STATUS_AHEAD = "ahead of plan"
STATUS_ON_TRACK = "on track"


def share_percent(part: Decimal, whole: Decimal) -> Decimal:
    """`part` as a percentage of `whole`, two places, half-up (0 of nothing is 0)."""
    if not whole:
        return Decimal("0.00")
    return (part * 100 / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def burn_rate(actual: Decimal, amount: Decimal, elapsed: float) -> Decimal | None:
    """The spent share over the elapsed share of the period, two places, half-up; None before the period starts."""
    if elapsed <= 0:
        return None
    return (actual / amount / Decimal(repr(elapsed))).quantize(CENT, rounding=ROUND_HALF_UP)


def budget_status(available: Decimal, actual: Decimal, burn: Decimal | None) -> str:
    """Over when nothing is available; ahead of plan when spending runs ahead of time (burn above 1, or spending in a
    period not yet started); else on track."""
    if available < 0:
        return STATUS_OVER
    if (burn is not None and burn > 1) or (burn is None and actual > 0):
        return STATUS_AHEAD
    return STATUS_ON_TRACK
