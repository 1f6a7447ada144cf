"""An invoice's totals: each line's net and tax rounded to the currency's minor units, then summed (per line, then
summed: domain/invoices/totals.py says why), checked against figures computed by hand in three currencies."""

from __future__ import annotations

from decimal import Decimal

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.invoices.totals import line_amounts, totals
from domain.money import fits
from tests.approvals.conftest import Team
from tests.invoices.conftest import create_customer

# (quantity, unit price, tax rate %) per line; the totals worked out on paper, half-up per line.
USD_LINES = [("3", "19.99", "19"), ("1", "0.05", "7")]
# 3 x 19.99 = 59.97, tax 11.3943 -> 11.39; 0.05, tax 0.0035 -> 0.00.
USD_TOTALS = ("60.02", "11.39", "71.41")
JPY_LINES = [("2", "1250", "10"), ("3", "333", "8")]
# 2500, tax 250; 999, tax 79.92 -> 80.
JPY_TOTALS = ("3499", "330", "3829")
BHD_LINES = [("1.5", "12.345", "5"), ("2", "0.125", "10")]
# 1.5 x 12.345 = 18.5175 -> 18.518, tax 0.9259 -> 0.926; 0.250, tax 0.025.
BHD_TOTALS = ("18.768", "0.951", "19.719")


def _body(customer_id: int, currency: str, lines: list[tuple[str, str, str]]) -> dict[str, object]:
    return {
        "customer_id": customer_id,
        "currency": currency,
        "issue_date": "2026-11-02",
        "lines": [{"description": f"line {n}", "quantity": q, "unit_price": p, "tax_rate": r}
                  for n, (q, p, r) in enumerate(lines, 1)],
    }  # fmt: skip


async def test_totals_in_three_currencies_match_the_hand_computed_figures(
    client: httpx.AsyncClient, team: Team
) -> None:
    customer = await create_customer(client, team.accountant)
    for currency, lines, expected in (("USD", USD_LINES, USD_TOTALS), ("JPY", JPY_LINES, JPY_TOTALS),
                                      ("BHD", BHD_LINES, BHD_TOTALS)):  # fmt: skip
        response = await client.post("/api/v1/invoices", json=_body(customer["id"], currency, lines),
                                     headers=team.accountant.headers)  # fmt: skip
        assert response.status_code == 201, response.text
        invoice = response.json()
        assert (invoice["subtotal"], invoice["tax_total"], invoice["total"]) == expected, currency
        # Each line as printed adds up to the totals printed under them.
        assert sum(Decimal(line["net"]) for line in invoice["lines"]) == Decimal(expected[0])
        assert sum(Decimal(line["tax"]) for line in invoice["lines"]) == Decimal(expected[1])
    assert [line["net"] for line in invoice["lines"]] == ["18.518", "0.250"]  # BHD shown with three places


async def test_per_line_rounding_differs_from_rounding_the_sum() -> None:
    # The USD case: the tax of the sum (11.3978 -> 11.40) is a cent more than the sum of the lines' taxes.
    lines = [line_amounts(Decimal(q), Decimal(p), Decimal(r), "USD") for q, p, r in USD_LINES]
    unrounded_tax = sum(Decimal(q) * Decimal(p) * Decimal(r) / 100 for q, p, r in USD_LINES)
    assert unrounded_tax.quantize(Decimal("0.01")) == Decimal("11.40")
    assert totals(lines).tax_total == Decimal("11.39")


async def test_a_price_finer_than_the_currency_is_refused(client: httpx.AsyncClient, team: Team) -> None:
    customer = await create_customer(client, team.accountant)
    for currency, price in (("JPY", "1250.5"), ("USD", "1.005")):
        response = await client.post("/api/v1/invoices", json=_body(customer["id"], currency, [("1", price, "0")]),
                                     headers=team.accountant.headers)  # fmt: skip
        assert response.status_code == 422, response.text
        assert "unit_price" in response.text
    for bad in ({"quantity": "0"}, {"quantity": "NaN"}, {"tax_rate": "101"}, {"unit_price": "-1"}, {"extra": 1}):
        line = {"description": "x", "quantity": "1", "unit_price": "1.00", "tax_rate": "0", **bad}
        body = {"customer_id": customer["id"], "issue_date": "2026-11-02", "lines": [line]}
        response = await client.post("/api/v1/invoices", json=body, headers=team.accountant.headers)
        assert response.status_code == 422, (bad, response.text)


_PLACES = {"USD": 2, "JPY": 0, "BHD": 3}


@st.composite
def _lines(draw: st.DrawFn) -> tuple[str, list[tuple[Decimal, Decimal, Decimal]]]:
    currency = draw(st.sampled_from(sorted(_PLACES)))
    places = _PLACES[currency]
    line = st.tuples(
        st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000), places=4),
        st.integers(min_value=0, max_value=10**9).map(lambda n: Decimal(n).scaleb(-places)),
        st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2),
    )
    return currency, draw(st.lists(line, min_size=1, max_size=20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_lines())
def test_totals_are_the_sums_of_the_rounded_lines(case: tuple[str, list[tuple[Decimal, Decimal, Decimal]]]) -> None:
    currency, raw = case
    lines = [line_amounts(quantity, price, rate, currency) for quantity, price, rate in raw]
    result = totals(lines)
    assert result.total == result.subtotal + result.tax_total
    assert result.subtotal == sum(line.net for line in lines)
    for value in (result.subtotal, result.tax_total, result.total, *(line.tax for line in lines)):
        assert fits(value, currency)
    # Each line is within half a minor unit of its exact amount.
    half = Decimal(1).scaleb(-_PLACES[currency]) / 2
    for (quantity, price, rate), line in zip(raw, lines, strict=True):
        assert abs(line.net - quantity * price) <= half
        assert abs(line.tax - line.net * rate / 100) <= half
