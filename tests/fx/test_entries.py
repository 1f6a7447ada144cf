"""Entries in any currency, end to end over HTTP: each currency's places, the rate a submit locks, the chain on the
base amount, and a later rate change that moves nothing already submitted.

Expected figures are computed here from the stored rates with Decimal, not by the code under test.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team, audit_count, client, ended_status, expense_body, team  # noqa: F401
from tests.conftest import MakeUser
from workflows.contracts import AMOUNT_CENTS

# The ECB's reference rates of a working day: 1 EUR = rate units.
ECB = {"USD": "1.0850", "GBP": "0.8530", "JPY": "162.50", "BHD": "0.40910", "CHF": "0.9410"}


def working_day(back: int = 14) -> date:
    """A Friday at least `back` days ago: its weekend after it has no rates of its own."""
    day = date.today() - timedelta(days=back)
    return day - timedelta(days=(day.weekday() - 4) % 7)


async def store_rates(deps: ActivityDeps, day: date, rates: dict[str, str], source: str = "ecb") -> None:
    async with deps.db.transaction() as tx:
        for currency, rate in rates.items():
            await tx.sql.run(
                "INSERT INTO fx_rates (currency, rate_date, rate, source) VALUES (%s, %s, %s, %s)",
                (currency, day, Decimal(rate), source),
            )
        await tx.commit()


def cross(of: str, to: str, rates: dict[str, str]) -> Decimal:
    """Units of `to` per unit of `of` through EUR, kept to 12 places half-even (as the books keep a rate)."""
    per_eur = {"EUR": Decimal(1), **{code: Decimal(rate) for code, rate in rates.items()}}
    with localcontext() as context:
        context.prec = 34
        return (per_eur[to] / per_eur[of]).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


def in_cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def expense(http: httpx.AsyncClient, user: Any, amount: str, currency: str, day: date) -> dict[str, Any]:
    body = expense_body(amount, currency=currency, entry_date=day.isoformat())
    response = await http.post("/api/v1/expenses/", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit(http: httpx.AsyncClient, user: Any, entry: dict[str, Any]) -> httpx.Response:
    return await http.post(f"/api/v1/expenses/{entry['id']}/submit", headers=user.headers)


async def test_each_currency_keeps_its_own_places(client: httpx.AsyncClient, team: Team) -> None:  # noqa: F811
    today = date.today().isoformat()
    for amount, currency in (("1234.5", "JPY"), ("12.3456", "BHD"), ("10.001", "USD"), ("5.00", "XAU")):
        body = expense_body(amount, currency=currency, entry_date=today)
        refused = await client.post("/api/v1/expenses/", json=body, headers=team.employee.headers)
        assert refused.status_code == 422, (amount, currency, refused.text)
        assert currency in refused.json()["error"]["message"]
    for amount, currency, shown in (("12.345", "BHD", "12.345"), ("1234", "JPY", "1234"), ("12.5", "USD", "12.50")):
        body = expense_body(amount, currency=currency, entry_date=today)
        accepted = await client.post("/api/v1/expenses/", json=body, headers=team.employee.headers)
        assert accepted.status_code == 201, accepted.text
        assert (accepted.json()["amount"], accepted.json()["currency"]) == (shown, currency)
        again = await client.get(f"/api/v1/expenses/{accepted.json()['id']}", headers=team.employee.headers)
        assert again.json()["amount"] == shown


async def test_a_foreign_entry_locks_the_cross_rate_of_its_date_at_submit(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    activity_deps: ActivityDeps,
) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    sunday = friday + timedelta(days=2)  # no rates on a weekend: Friday's serve
    draft = await expense(client, team.employee, "100.00", "GBP", sunday)
    rate = cross("GBP", "USD", ECB)
    assert draft["base_amount"] is None and draft["fx_rate"] is None
    assert Decimal(draft["indicative_base_amount"]) == in_cents(Decimal("100.00") * rate)

    submitted = await submit(client, team.employee, draft)
    assert submitted.status_code == 200, submitted.text
    entry = submitted.json()
    assert entry["currency"] == "GBP" and entry["amount"] == "100.00"
    assert entry["base_currency"] == "USD"
    assert Decimal(entry["fx_rate"]) == rate
    assert entry["base_amount"] == str(in_cents(Decimal("100.00") * rate))  # the base currency's two places
    assert (entry["rate_date"], entry["rate_source"]) == (friday.isoformat(), "ecb")

    # Every approver sees the same figures: the inbox, the request and the audit row carry the locked rate.
    inbox = (await client.get("/api/v1/approvals/", headers=team.manager.headers)).json()["items"]
    assert [(i["amount"], i["base_currency"], i["currency"], i["original_amount"]) for i in inbox] == [
        (entry["base_amount"], "USD", "GBP", "100.00")
    ]
    request = (await client.get(f"/api/v1/approvals/{inbox[0]['request_id']}", headers=team.manager.headers)).json()
    assert (request["amount"], request["fx_rate"], request["rate_date"]) == (
        entry["base_amount"],
        entry["fx_rate"],
        friday.isoformat(),
    )
    trail = (await client.get(f"/api/v1/expenses/{entry['id']}/history", headers=team.employee.headers)).json()
    summary = next(event["summary"] for event in trail["events"] if event["action"] == "entry.submitted")
    assert f"100.00 GBP = {entry['base_amount']} USD at {entry['fx_rate']} (ecb, {friday.isoformat()})" in summary
    async with activity_deps.db.transaction() as tx:
        changes = await tx.sql.scalar(
            "SELECT changes FROM audit_log WHERE action = 'entry.submitted' AND resource_id = %s", (str(entry["id"]),)
        )
    assert (changes["currency"], changes["base_amount"], changes["fx"]["source"]) == (
        "GBP",
        entry["base_amount"],
        "ecb",
    )
    legs = {leg["currency"]: Decimal(leg["per_eur"]) for leg in changes["fx"]["legs"]}
    assert legs == {"GBP": Decimal(ECB["GBP"]), "USD": Decimal(ECB["USD"])}


async def test_a_rate_older_than_the_stale_limit_refuses_the_submit_and_names_it(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    activity_deps: ActivityDeps,
) -> None:
    friday = working_day(21)
    await store_rates(activity_deps, friday, ECB)
    late = friday + timedelta(days=8)  # FX_MAX_STALE_DAYS is 7
    draft = await expense(client, team.employee, "50.00", "CHF", late)
    refused = await submit(client, team.employee, draft)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert "CHF" in error["message"] and late.isoformat() in error["message"]
    assert set(error["details"]["missing"]) == {"CHF", "USD"}
    entry = (await client.get(f"/api/v1/expenses/{draft['id']}", headers=team.employee.headers)).json()
    assert (entry["status"], entry["base_amount"]) == ("draft", None)

    # The same entry one week after the rate submits, at that rate.
    moved = await client.patch(
        f"/api/v1/expenses/{draft['id']}",
        json={"entry_date": (friday + timedelta(days=7)).isoformat()},
        headers={**team.employee.headers, "If-Match": f'"{entry["version"]}"'},
    )
    assert moved.status_code == 200, moved.text
    assert (await submit(client, team.employee, draft)).status_code == 200


async def test_the_chain_follows_the_base_amount_across_the_manager_limit(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    activity_deps: ActivityDeps,
    temporal_client: Client,
) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    # 9,000 pounds are over the manager's 10,000 limit in dollars; 1,200,000 yen are far under it.
    pounds = await expense(client, team.employee, "9000.00", "GBP", friday)
    yen = await expense(client, team.employee, "1200000", "JPY", friday)
    assert in_cents(Decimal("9000") * cross("GBP", "USD", ECB)) > Decimal("10000")
    assert in_cents(Decimal("1200000") * cross("JPY", "USD", ECB)) < Decimal("10000")
    for entry in (pounds, yen):
        assert (await submit(client, team.employee, entry)).status_code == 200

    first = await client.post(f"/api/v1/expenses/{pounds['id']}/approve", json={}, headers=team.manager.headers)
    assert first.json()["status"] == "pending"  # the admin decides next
    second = await client.post(f"/api/v1/expenses/{pounds['id']}/approve", json={}, headers=team.admin.headers)
    assert second.json()["status"] == "approved", second.text

    # Operators find workflows by the base amount too (the AmountCents search attribute).
    for entry in (pounds, yen):
        described = await temporal_client.get_workflow_handle(f"approval-expense-{entry['id']}").describe()
        base = (await client.get(f"/api/v1/expenses/{entry['id']}", headers=team.employee.headers)).json()
        assert described.typed_search_attributes.get(AMOUNT_CENTS) == int(Decimal(base["base_amount"]) * 100)

    only = await client.post(f"/api/v1/expenses/{yen['id']}/approve", json={}, headers=team.manager.headers)
    assert only.json()["status"] == "approved", only.text
    history = (await client.get(f"/api/v1/expenses/{yen['id']}/history", headers=team.employee.headers)).json()
    assert [step["approver_id"] for step in history["steps"]] == [team.manager.id]
    assert await ended_status(temporal_client, only.json()["workflow_id"]) == WorkflowExecutionStatus.COMPLETED


async def test_a_rate_changed_after_submit_moves_nothing_submitted(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    activity_deps: ActivityDeps,
) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, ECB)
    draft = await expense(client, team.employee, "100.00", "GBP", friday)
    entry = (await submit(client, team.employee, draft)).json()
    locked = {key: entry[key] for key in ("base_amount", "fx_rate", "rate_date", "rate_source")}

    manual = await client.post(
        "/api/v1/fx/rates",
        json={"currency": "GBP", "rate_date": friday.isoformat(), "rate": "0.7000", "note": "a correction"},
        headers=team.accountant.headers,
    )
    assert manual.status_code == 201, manual.text
    assert manual.json()["overrides"]["rate"] == "0.853"  # the imported rate it wins over, said so

    seen = (await client.get(f"/api/v1/expenses/{entry['id']}", headers=team.employee.headers)).json()
    assert {key: seen[key] for key in locked} == locked
    inbox = (await client.get("/api/v1/approvals/", headers=team.manager.headers)).json()["items"]
    assert [item["amount"] for item in inbox] == [locked["base_amount"]]
    approved = await client.post(f"/api/v1/expenses/{entry['id']}/approve", json={}, headers=team.manager.headers)
    assert approved.status_code == 200, approved.text
    assert {key: approved.json()[key] for key in locked} == locked

    # A submit after the change locks the manual rate.
    later = await expense(client, team.employee, "100.00", "GBP", friday)
    relocked = (await submit(client, team.employee, later)).json()
    assert relocked["rate_source"] == "manual"
    assert Decimal(relocked["fx_rate"]) == cross("GBP", "USD", {**ECB, "GBP": "0.7000"})


async def test_manual_rates_are_for_accountants_audited_and_said_to_win(
    client: httpx.AsyncClient,  # noqa: F811
    team: Team,  # noqa: F811
    activity_deps: ActivityDeps,
    make_user: MakeUser,
) -> None:
    friday = working_day()
    await store_rates(activity_deps, friday, {"USD": "1.0850", "SEK": "11.4520"})
    body = {"currency": "SEK", "rate_date": friday.isoformat(), "rate": "11.5"}
    for user in (team.employee, team.manager):
        refused = await client.post("/api/v1/fx/rates", json=body, headers=user.headers)
        assert refused.status_code == 403, refused.text
    created = await client.post("/api/v1/fx/rates", json=body, headers=team.accountant.headers)
    assert created.status_code == 201, created.text
    assert created.json()["replaced"] is None and created.json()["overrides"]["source"] == "ecb"
    replaced = await client.post("/api/v1/fx/rates", json={**body, "rate": "11.6"}, headers=team.admin.headers)
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replaced"]["rate"] == "11.5"
    assert await audit_count(activity_deps, "fx_rate.set_manually") == 2

    listed = await client.get(
        "/api/v1/fx/rates",
        params={"currency": "SEK", "date_from": friday.isoformat(), "date_to": friday.isoformat()},
        headers=team.employee.headers,
    )
    assert listed.status_code == 200, listed.text
    rows = {row["source"]: row for row in listed.json()["items"]}
    assert (rows["manual"]["rate"], rows["manual"]["in_effect"]) == ("11.6", True)
    assert (rows["ecb"]["rate"], rows["ecb"]["in_effect"]) == ("11.452", False)
    assert Decimal(rows["manual"]["to_base"]) == cross("SEK", "USD", {"USD": "1.0850", "SEK": "11.6"})

    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    for bad in (
        {**body, "rate": "NaN"},
        {**body, "rate": "-1"},
        {**body, "rate": "0"},
        {**body, "currency": "EUR"},
        {**body, "currency": "ZZZ"},
        {**body, "rate_date": tomorrow},
        {**body, "extra": 1},
    ):
        response = await client.post("/api/v1/fx/rates", json=bad, headers=team.accountant.headers)
        assert response.status_code == 422, (bad, response.text)
    backwards = {"date_from": friday.isoformat(), "date_to": (friday - timedelta(days=1)).isoformat()}
    assert (await client.get("/api/v1/fx/rates", params=backwards, headers=team.employee.headers)).status_code == 422
    assert await audit_count(activity_deps, "fx_rate.set_manually") == 2  # the refused ones wrote nothing
