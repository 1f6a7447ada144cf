"""The chart of accounts and its mapping over HTTP: accountants keep them, codes are unique, every mapping names an
active account that fits its role, a mapped account keeps fitting it, and each change has its audit row."""

from __future__ import annotations

from typing import Any

import httpx

from activities.deps import ActivityDeps
from tests.approvals.conftest import Team
from tests.conftest import TestUser
from tests.ledger.conftest import THIS_MONTH, audit_rows, created, journals

MAPPINGS = "/api/v1/accounts/mappings"


async def add(
    http: httpx.AsyncClient, user: TestUser, code: str, name: str, type_: str, **fields: Any
) -> httpx.Response:
    body = {"code": code, "name": name, "type": type_, **fields}
    return await http.post("/api/v1/accounts", json=body, headers=user.headers)


async def small_chart(http: httpx.AsyncClient, user: TestUser) -> dict[str, int]:
    ids = {}
    for code, name, type_ in (("1000", "Bank", "asset"), ("1200", "Receivables", "asset"),
                              ("2000", "Payables", "liability"), ("4000", "Sales", "revenue"),
                              ("6000", "Expenses", "expense"), ("6100", "Travel", "expense")):  # fmt: skip
        response = await add(http, user, code, name, type_)
        assert response.status_code == 201, response.text
        ids[code] = response.json()["id"]
    return ids


async def put(http: httpx.AsyncClient, user: TestUser, *mappings: dict[str, str]) -> httpx.Response:
    return await http.put(MAPPINGS, json={"mappings": list(mappings)}, headers=user.headers)


async def test_accountants_keep_the_chart_and_codes_are_unique(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    made = await add(client, team.accountant, "6100", "Travel", "expense", tax_code="VST19")
    assert made.status_code == 201, made.text
    account = made.json()
    assert {k: account[k] for k in ("code", "name", "type", "tax_code", "active")} == {
        "code": "6100", "name": "Travel", "type": "expense", "tax_code": "VST19", "active": True,
    }  # fmt: skip

    taken = await add(client, team.admin, "6100", "Travel again", "expense")
    assert taken.status_code == 409, taken.text
    assert "6100" in taken.json()["error"]["message"]
    for bad in ({"type": "income"}, {"code": "61 00"}, {"code": "-6100"}, {"code": "x" * 21}, {"name": ""},
                {"colour": "red"}, {"tax_code": "19%"}):  # fmt: skip
        body = {"code": "7000", "name": "Other", "type": "expense", **bad}
        refused = await client.post("/api/v1/accounts", json=body, headers=team.accountant.headers)
        assert refused.status_code == 422, (bad, refused.text)
    forbidden = await add(client, team.manager, "7000", "Other", "expense")
    assert forbidden.status_code == 403, forbidden.text

    changed = await client.patch(f"/api/v1/accounts/{account['id']}", json={"name": "Travel and lodging",
                                 "tax_code": None}, headers=team.accountant.headers)  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["tax_code"]) == ("Travel and lodging", None)
    other = await add(client, team.accountant, "6200", "Meals", "expense")
    clash = await client.patch(f"/api/v1/accounts/{other.json()['id']}", json={"code": "6100"},
                               headers=team.accountant.headers)  # fmt: skip
    assert clash.status_code == 409, clash.text
    missing = await client.patch("/api/v1/accounts/999999", json={"name": "x"}, headers=team.accountant.headers)
    assert missing.status_code == 404
    empty = await client.patch(f"/api/v1/accounts/{account['id']}", json={}, headers=team.accountant.headers)
    assert empty.status_code == 422

    listed = await client.get("/api/v1/accounts", params={"type": "expense"}, headers=team.accountant.headers)
    assert [item["code"] for item in listed.json()["items"]] == ["6100", "6200"]
    assert listed.json()["total"] == 2
    created_rows = await audit_rows(activity_deps, "account.created")
    assert [row[2]["code"][1] for row in created_rows] == ["6100", "6200"]
    [updated] = await audit_rows(activity_deps, "account.updated")
    assert updated[2] == {"name": ["Travel", "Travel and lodging"], "tax_code": ["VST19", None]}
    assert updated[1] == team.accountant.id


async def test_every_mapping_names_an_active_account_that_fits_its_role(
    client: httpx.AsyncClient, team: Team, activity_deps: ActivityDeps
) -> None:
    ids = await small_chart(client, team.accountant)
    user = team.accountant

    def m(kind: str, code: str, key: str = "") -> dict[str, str]:
        return {"kind": kind, "key": key, "account_code": code}

    refusals = [
        ((m("payable", "1000"),), "payable needs a liability account; 1000 (Bank) is an asset account"),
        ((m("receivable", "2000"),), "receivable needs an asset account"),
        ((m("cash", "4000"),), "cash needs an asset account"),
        ((m("source", "6000", "Grant Co"),), "source 'grant co' needs a revenue account"),
        ((m("category", "1000", "travel"),), "category 'travel' needs an expense or a revenue account"),
        ((m("category", "4000", "*"),), "category '*' needs an expense account"),
        ((m("fx_loss", "4000"),), "fx_loss needs an expense account"),
        ((m("payable", "2999"),), "payable: there is no account 2999"),
        ((m("category", "6100", ""),), "a category mapping names its category"),
        ((m("payable", "2000", "x"),), "a payable mapping has no key"),
        ((m("category", "6100", "Travel"), m("category", "6000", " travel ")), "category 'travel' is mapped twice"),
    ]
    for mappings, message in refusals:
        refused = await put(client, user, *mappings)
        assert refused.status_code == 422, (mappings, refused.text)
        assert message in refused.json()["error"]["message"], refused.json()["error"]["message"]

    inactive = await client.patch(f"/api/v1/accounts/{ids['6000']}", json={"active": False}, headers=user.headers)
    assert inactive.status_code == 200
    refused = await put(client, user, m("category", "6000", "*"))
    assert refused.status_code == 422 and "inactive" in refused.json()["error"]["message"]
    await client.patch(f"/api/v1/accounts/{ids['6000']}", json={"active": True}, headers=user.headers)
    assert (await client.get(MAPPINGS, headers=user.headers)).json() == {"mappings": []}  # nothing was kept

    full = (m("payable", "2000"), m("receivable", "1200"), m("cash", "1000"), m("category", "6100", "Travel"),
            m("category", "6000", "*"), m("category", "4000", "Grants"), m("source", "4000", "*"))  # fmt: skip
    replaced = await put(client, user, *full)
    assert replaced.status_code == 200, replaced.text
    shown = {(item["kind"], item["key"]): item["account_code"] for item in replaced.json()["mappings"]}
    assert shown == {("payable", ""): "2000", ("receivable", ""): "1200", ("cash", ""): "1000",
                     ("category", "travel"): "6100", ("category", "*"): "6000", ("category", "grants"): "4000",
                     ("source", "*"): "4000"}  # fmt: skip
    assert (await client.get(MAPPINGS, headers=team.admin.headers)).json() == replaced.json()
    assert (await client.get(MAPPINGS, headers=team.manager.headers)).status_code == 403
    assert (await put(client, team.manager, *full)).status_code == 403
    [audited] = await audit_rows(activity_deps, "account_mappings.replaced")
    assert audited[1] == user.id
    assert audited[2]["mappings"][0] == []
    assert "category 'travel' -> 6100" in audited[2]["mappings"][1]

    # A mapped account keeps fitting its role: no type change that breaks it, no deactivation (change the mapping).
    retyped = await client.patch(f"/api/v1/accounts/{ids['2000']}", json={"type": "asset"}, headers=user.headers)
    assert retyped.status_code == 409 and "mapped as payable" in retyped.json()["error"]["message"]
    off = await client.patch(f"/api/v1/accounts/{ids['6100']}", json={"active": False}, headers=user.headers)
    assert off.status_code == 409 and "category 'travel'" in off.json()["error"]["message"]
    renamed = await client.patch(f"/api/v1/accounts/{ids['6100']}", json={"code": "6110"}, headers=user.headers)
    assert renamed.status_code == 200
    now_mapped = (await client.get(MAPPINGS, headers=user.headers)).json()["mappings"]
    assert {"kind": "category", "key": "travel", "account_code": "6110", "account_name": "Travel",
            "account_type": "expense"} in now_mapped  # fmt: skip
    assert await audit_rows(activity_deps, "account.updated") != []

    # An empty mapping is a mapping too: every journal then lacks its accounts.
    assert (await put(client, user)).json() == {"mappings": []}


async def test_a_journal_without_its_account_is_a_409_naming_what_lacks_one(
    client: httpx.AsyncClient, team: Team
) -> None:
    await small_chart(client, team.accountant)
    travel = {"kind": "category", "key": "travel", "account_code": "6100"}
    assert (await put(client, team.accountant, travel)).status_code == 200
    expense = await created(client, team.employee, category="Meals")
    assert (await client.post(f"/api/v1/expenses/{expense['id']}/submit", headers=team.employee.headers)).is_success
    assert (await client.post(f"/api/v1/expenses/{expense['id']}/approve", headers=team.manager.headers)).is_success
    revenue = await created(client, team.employee, "revenue", source="Grant Co", category="grants")
    assert (await client.post(f"/api/v1/revenue/{revenue['id']}/submit", headers=team.employee.headers)).is_success
    assert (await client.post(f"/api/v1/revenue/{revenue['id']}/approve", headers=team.manager.headers)).is_success

    refused = await journals(client, team.accountant, THIS_MONTH)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "missing_account"
    assert error["details"]["missing"] == [
        "cash",
        "expense category 'meals' (map it, or category '*')",
        "payable",
        "revenue source 'Grant Co' in category 'grants' (map one, or source '*')",
    ]
