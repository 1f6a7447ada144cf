"""Report templates over HTTP: validation answers 422 naming the field (never 500), sandbox escapes are 422 on save,
who may create and attach layouts, versions and their audit rows, and a run through the real workflow and a schedule."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from activities.deps import ActivityDeps
from domain.models import AuditLog, Report
from tests.report_templates.conftest import PERIOD
from tests.report_templates.test_formulas import ESCAPES, PIECES
from tests.report_templates.test_runs import MARGIN
from tests.reports.conftest import KnownData

URL = "/api/v1/report-templates"


def _with(change: dict[str, Any]) -> dict[str, Any]:
    definition = copy.deepcopy(MARGIN)
    definition.update(change)
    return definition


# (what is wrong, the definition, the field the 422 names)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field in a listing", {"dataset": "entries", "columns": ["date", "password_hash"]},
     "definition.columns[1]"),
    ("neither columns nor aggregates", {"dataset": "entries"}, "definition.columns"),
    ("an operator for another kind", _with({"filters": [{"field": "amount", "op": "contains", "value": "1"}]}),
     "definition.filters[0].op"),
    ("a money literal that is no number", _with({"filters": [{"field": "amount", "op": "gt", "value": "lots"}]}),
     "definition.filters[0].value"),
    ("a date literal that is no date", _with({"filters": [{"field": "date", "op": "gt", "value": "2024-13-01"}]}),
     "definition.filters[0].value"),
    ("an undefined parameter", _with({"filters": [{"field": "amount", "op": "gt", "param": "floor"}]}),
     "definition.filters[0].param"),
    ("a parameter of the wrong type", _with({
        "parameters": [{"name": "since", "type": "date"}],
        "filters": [{"field": "amount", "op": "gt", "param": "since"}]}), "definition.filters[0].param"),
    ("a default outside the bounds", _with({
        "parameters": [{"name": "floor", "type": "money", "min": "0", "max": "10", "default": "11"}]}),
     "definition.parameters[0].default"),
    ("two time buckets", _with({"group_by": [{"bucket": "month"}, {"bucket": "year"}]}),
     "definition.group_by[1].bucket"),
    ("grouping by a per-record field", _with({"group_by": [{"field": "amount"}], "calculated_rows": []}),
     "definition.group_by[0].field"),
    ("a sum of text", _with({"aggregates": [{"key": "amount", "function": "sum", "field": "category"}]}),
     "definition.aggregates[0].field"),
    ("comparing an unknown aggregate", _with({"comparisons": [{"kind": "prior_period", "aggregates": ["cost"]}]}),
     "definition.comparisons[0].aggregates[0]"),
    ("a budget comparison of approvals", {"dataset": "approvals", "aggregates": [{"key": "n", "function": "count"}],
                                          "comparisons": [{"kind": "budget"}]}, "definition.comparisons[0].kind"),
    ("a budget comparison by owner", _with({"group_by": [{"field": "owner"}], "calculated_rows": [],
                                            "comparisons": [{"kind": "budget"}]}), "definition.comparisons[0].kind"),
    ("a calculated column on an unknown column", _with({"calculated_columns": [{"key": "x", "formula": "cost * 2"}]}),
     "definition.calculated_columns[0].formula"),
    ("calculated rows over a time bucket", _with({"group_by": [{"field": "category"}, {"bucket": "month"}]}),
     "definition.calculated_rows"),
    ("a key taken twice", _with({"calculated_columns": [{"key": "amount", "formula": "1"}]}),
     "definition.calculated_columns[0].key"),
]  # fmt: skip

# Shapes refused by the schema itself.
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("an unknown dataset", {"dataset": "users", "columns": ["id"]}, "dataset"),
    ("four group levels", _with({"group_by": [{"field": "kind"}, {"field": "status"}, {"field": "owner"},
                                              {"field": "category"}]}), "group_by"),  # fmt: skip
    ("an unknown key", {**MARGIN, "sql": "SELECT 1"}, "sql"),
    ("a column key that is no name", {"dataset": "entries", "columns": ["amount; DROP TABLE entries"]}, "columns"),
    ("an unknown aggregate function", _with({"aggregates": [{"key": "a", "function": "median", "field": "amount"}]}),
     "function"),
    ("an unknown bucket", _with({"group_by": [{"bucket": "fortnight"}]}), "bucket"),
    ("a chart option that is no flag", _with({"chart": "pie"}), "chart"),
    ("a chart option it does not know", _with({"chart_type": "pie"}), "chart_type"),
    ("an over-long formula", _with({"calculated_columns": [{"key": "x", "formula": "1+" * 200 + "1"}]}), "formula"),
]  # fmt: skip


async def test_a_definition_that_makes_no_sense_is_422_naming_the_field(
    api: httpx.AsyncClient, known: KnownData
) -> None:
    for case, definition, field in INVALID:
        response = await api.post(URL, json={"name": case, "definition": definition}, headers=known.accountant.headers)
        assert response.status_code == 422, (case, response.text)
        error = response.json()["error"]
        assert error["details"]["field"] == field, (case, error)
        assert error["message"]
    for case, definition, field in MALFORMED:  # refused by the schema itself: pydantic's 422 names the location
        response = await api.post(URL, json={"name": case, "definition": definition}, headers=known.accountant.headers)
        assert response.status_code == 422, (case, response.text)
        locations = [[str(part) for part in item["loc"]] for item in response.json()["error"]["details"]]
        assert any(field in location for location in locations), (case, locations)


async def test_every_known_escape_is_422_on_save(api: httpx.AsyncClient, known: KnownData) -> None:
    for formula in ESCAPES:
        for place, definition in (
            ("calculated_columns", _with({"calculated_columns": [{"key": "x", "formula": formula}]})),
            ("calculated_rows", _with({"calculated_rows": [{"key": "x", "formula": formula}]})),
        ):
            response = await api.post(URL, json={"name": "escape", "definition": definition},
                                      headers=known.accountant.headers)  # fmt: skip
            assert response.status_code == 422, (formula, response.text)
            body = response.json()["error"]
            where = body["details"]["field"] if isinstance(body["details"], dict) else str(body["details"])
            assert place in where, (formula, body)
    listed = await api.get(URL, headers=known.accountant.headers)
    assert listed.json()["total"] == 0  # nothing was saved


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(formula=st.lists(PIECES, min_size=1, max_size=25).map("".join))
async def test_whatever_formula_is_sent_the_answer_is_201_or_422(
    api: httpx.AsyncClient, known: KnownData, formula: str
) -> None:
    definition = _with({"calculated_columns": [{"key": "x", "formula": formula}]})
    response = await api.post(URL, json={"name": f"fuzz {formula!r}"[:120], "definition": definition},
                              headers=known.accountant.headers)  # fmt: skip
    assert response.status_code in (201, 409, 422), response.text
    if response.status_code == 201:
        saved = response.json()["definition"]["calculated_columns"][0]["formula"]
        assert "_" not in saved.replace("amount_prior", "") and "." not in saved.replace("0.", "").replace(".5", "")


async def test_who_may_create_and_attach_a_layout(api: httpx.AsyncClient, known: KnownData) -> None:
    body = {"name": "Margin", "definition": MARGIN}
    assert (await api.post(URL, json=body, headers=known.alice.headers)).status_code == 403
    assert (await api.post(URL, json=body, headers=known.manager.headers)).status_code == 403
    laid_out = {**body, "layout": "<h1>{{ report.title }}</h1>"}
    refused = await api.post(URL, json=laid_out, headers=known.accountant.headers)
    assert refused.status_code == 403 and refused.json()["error"]["details"]["field"] == "layout"
    escape = await api.post(URL, json={**laid_out, "layout": "{{ ''.__class__.__mro__ }}"}, headers=known.admin.headers)
    assert escape.status_code == 422 and "sandbox" in escape.json()["error"]["message"]
    broken = await api.post(URL, json={**laid_out, "layout": "{% for %}"}, headers=known.admin.headers)
    assert broken.status_code == 422 and "not a valid template" in broken.json()["error"]["message"]
    created = await api.post(URL, json=laid_out, headers=known.admin.headers)
    assert created.status_code == 201, created.text
    assert created.json()["has_layout"] is True
    # An accountant revises the definition and keeps the admin's layout; they may not change the layout.
    template_id = created.json()["id"]
    kept = await api.patch(f"{URL}/{template_id}", json={"description": "monthly"}, headers=known.accountant.headers)
    assert kept.status_code == 200 and kept.json()["has_layout"] is True and kept.json()["version"] == 2
    removed = await api.patch(f"{URL}/{template_id}", json={"layout": None}, headers=known.accountant.headers)
    assert removed.status_code == 403
    assert (await api.get(URL, headers=known.alice.headers)).json()["items"][0]["id"] == template_id


async def test_each_patch_is_a_new_version_audited(
    api: httpx.AsyncClient, known: KnownData, reports_deps: ActivityDeps
) -> None:
    created = await api.post(URL, json={"name": "Margin", "definition": MARGIN}, headers=known.accountant.headers)
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    template_id = created.json()["id"]
    changed = _with({"subtotals": True})
    patched = await api.patch(f"{URL}/{template_id}", json={"definition": changed, "name": "Margin, subtotalled"},
                              headers={**known.accountant.headers, "If-Match": '"1"'})  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"' and patched.json()["definition"]["subtotals"] is True
    stale = await api.patch(f"{URL}/{template_id}", json={"name": "Again"},
                            headers={**known.accountant.headers, "If-Match": '"1"'})  # fmt: skip
    assert stale.status_code == 412
    invalid = await api.patch(f"{URL}/{template_id}", json={"definition": _with({"group_by": []})},
                              headers=known.accountant.headers)  # fmt: skip
    assert invalid.status_code == 422 and invalid.json()["error"]["details"]["field"] == "definition.calculated_rows"
    other_dataset = await api.patch(f"{URL}/{template_id}", json={"definition": {"dataset": "budgets",
                                    "columns": ["budget"]}}, headers=known.accountant.headers)  # fmt: skip
    assert other_dataset.status_code == 409
    nulled = await api.patch(f"{URL}/{template_id}", json={"name": None}, headers=known.accountant.headers)
    assert nulled.status_code == 422
    versions = (await api.get(f"{URL}/{template_id}/versions", headers=known.alice.headers)).json()
    assert [(v["version"], v["name"], v["definition"].get("subtotals", False)) for v in versions] == [
        (1, "Margin", False),
        (2, "Margin, subtotalled", True),
    ]
    first = await api.get(f"{URL}/{template_id}/versions/1", headers=known.alice.headers)
    assert first.json()["definition"]["calculated_rows"][0]["formula"] == MARGIN["calculated_rows"][0]["formula"]

    archived = await api.delete(f"{URL}/{template_id}", headers=known.accountant.headers)
    assert archived.status_code == 204
    assert (await api.get(URL, headers=known.alice.headers)).json()["total"] == 0
    listed = await api.get(URL, params={"include_archived": "true"}, headers=known.alice.headers)
    assert listed.json()["items"][0]["archived"] is True
    run = await api.post(f"{URL}/{template_id}/runs", json={"format": "csv", "period": PERIOD},
                         headers=known.alice.headers)  # fmt: skip
    assert run.status_code == 409

    async with reports_deps.db.transaction() as tx:
        rows = list(await tx.session.scalars(
            select(AuditLog).where(AuditLog.resource_type == "report_template").order_by(AuditLog.id)))  # fmt: skip
    assert [(row.action, row.resource_id, row.actor_id) for row in rows] == [
        ("report_template.created", str(template_id), known.accountant.id),
        ("report_template.updated", str(template_id), known.accountant.id),
        ("report_template.archived", str(template_id), known.accountant.id),
    ]
    assert rows[1].changes["version"] == 2 and rows[1].changes["name"] == ["Margin", "Margin, subtotalled"]
    assert "definition" in rows[1].changes


async def _finished(api: httpx.AsyncClient, headers: dict[str, str], report_id: str) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await api.get(f"/api/v1/reports/{report_id}", headers=headers)).json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError("the report did not finish")


async def test_a_manager_runs_an_accountants_template_through_the_workflow(
    api: httpx.AsyncClient, known: KnownData
) -> None:
    definition = {
        "dataset": "entries",
        "group_by": [{"field": "owner"}],
        "aggregates": [{"key": "amount", "function": "sum", "field": "amount"}],
        "filters": [{"field": "status", "op": "eq", "value": "approved"},
                    {"field": "kind", "op": "eq", "param": "kind"}],
        "parameters": [{"name": "kind", "type": "text", "choices": ["revenue", "expense"], "required": True}],
    }  # fmt: skip
    created = await api.post(URL, json={"name": "By owner", "definition": definition},
                             headers=known.accountant.headers)  # fmt: skip
    template_id = created.json()["id"]
    runs = f"{URL}/{template_id}/runs"
    missing = await api.post(runs, json={"format": "json", "period": PERIOD}, headers=known.manager.headers)
    assert missing.status_code == 422 and missing.json()["error"]["details"]["field"] == "parameters.kind"
    wrong = await api.post(runs, json={"format": "json", "period": PERIOD, "parameters": {"kind": "loans"}},
                           headers=known.manager.headers)  # fmt: skip
    assert wrong.status_code == 422 and "one of" in wrong.json()["error"]["message"]
    unknown = await api.post(runs, json={"format": "json", "period": PERIOD, "parameters": {"kind": "revenue",
                             "owner": "x"}}, headers=known.manager.headers)  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["field"] == "parameters.owner"

    accepted = await api.post(runs, json={"format": "json", "period": PERIOD, "parameters": {"kind": "revenue"}},
                              headers=known.manager.headers)  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    body = await _finished(api, known.manager.headers, accepted.json()["id"])
    assert body["status"] == "completed", body
    assert body["type"] == "template" and body["filters"]["template"]["version"] == 1
    download = await api.get(f"/api/v1/reports/{body['id']}/download", headers=known.manager.headers)
    document = json.loads(download.content)
    # Revenue of the manager's subtree only: Alice's 1000.00 and Bob's 2500.25; never Carol's 400.00.
    assert [(row["owner"], row["amount"]) for row in document["rows"]] == [
        (known.alice.username, "1000.00"),
        (known.bob.username, "2500.25"),
    ]
    assert document["totals"] == [{"owner": "Total", "amount": "3500.25"}]

    # The same through POST /reports, with a presentation currency it refuses, and filters it refuses.
    same = {"type": "template", "format": "csv", "period": PERIOD, "template_id": template_id,
            "parameters": {"kind": "expense"}}  # fmt: skip
    other_currency = await api.post("/api/v1/reports", json={**same, "presentation_currency": "EUR"},
                                    headers=known.manager.headers)  # fmt: skip
    assert other_currency.status_code == 422
    filtered = await api.post("/api/v1/reports", json={**same, "filters": {"categories": ["Travel"]}},
                              headers=known.manager.headers)  # fmt: skip
    assert filtered.status_code == 422 and filtered.json()["error"]["details"]["field"] == "filters"
    no_template = await api.post("/api/v1/reports", json={**same, "template_id": None}, headers=known.manager.headers)
    assert no_template.status_code == 422


async def test_a_template_schedule_runs_the_current_version(
    api: httpx.AsyncClient, known: KnownData, reports_deps: ActivityDeps
) -> None:
    created = await api.post(URL, json={"name": "Margin", "definition": MARGIN}, headers=known.accountant.headers)
    template_id = created.json()["id"]
    schedule = {"name": "Monthly margin", "type": "template", "template_id": template_id, "format": "csv",
                "cron": "0 6 1 * *", "period": "previous_month", "recipients": []}  # fmt: skip
    bad = await api.post("/api/v1/reports/schedules", json={**schedule, "parameters": {"x": "1"}},
                         headers=known.admin.headers)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "parameters.x"
    made = await api.post("/api/v1/reports/schedules", json=schedule, headers=known.admin.headers)
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    try:
        patched = await api.patch(f"{URL}/{template_id}", json={"name": "Margin v2"}, headers=known.accountant.headers)
        assert patched.json()["version"] == 2
        triggered = await api.post(f"/api/v1/reports/schedules/{schedule_id}/trigger", headers=known.admin.headers)
        assert triggered.status_code == 202
        report = None
        for _ in range(300):
            async with reports_deps.db.transaction() as tx:
                report = await tx.session.scalar(select(Report).where(Report.schedule_id == schedule_id))
            if report is not None and report.status in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        assert report is not None and report.status == "completed", report and report.error
        assert report.filters["template"]["version"] == 2 and report.filters["template"]["name"] == "Margin v2"
        assert report.filename is not None and report.filename.startswith("template_")
    finally:
        await api.delete(f"/api/v1/reports/schedules/{schedule_id}", headers=known.admin.headers)
