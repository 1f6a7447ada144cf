"""The budget_vs_actual report: one row per budget period overlapping the report's period, among the budgets the
requester may see, with the figures kept in budget_periods and the burn against the time gone by; the same numbers
in CSV, JSON, XLSX and PDF; and never a budget outside the requester's visibility."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from temporalio.testing import ActivityEnvironment

from activities.deps import ActivityDeps
from activities.reports import ReportActivities
from domain.audit.service import AuditContext
from domain.budgets.periods import Period, grid
from domain.budgets.service import scope_for
from domain.errors import ValidationFailed
from domain.models import Report, User
from domain.reports import service
from domain.reports.datasets import ReportQuery, ReportScope, dataset_for
from domain.reports.schemas import Period as ReportPeriod
from domain.reports.schemas import ReportFilters, ReportRequest, ReportType
from domain.users.visibility import visibility_for
from tests.conftest import MakeUser, TestUser
from tests.reports.conftest import (  # noqa: F401 - fixtures, used by name
    _reports_settled,
    api,
    reports_app,
    reports_deps,
    reports_settings,
    reports_worker,
)
from tests.reports.readback import csv_table, generated, json_table, pdf_text, xlsx_table

FROM, TO = "2026-10-01", "2026-12-31"
CENT = Decimal("0.01")
HEADER = [
    "Budget",
    "Team manager",
    "Manager ID",
    "Category",
    "Period",
    "Amount",
    "Committed",
    "Actual",
    "Available",
    "Spent %",
    "Used %",
    "Elapsed %",
    "Burn",
    "Status",
]


@dataclass
class KnownBudget:
    id: int
    name: str
    kind: str
    team_manager: TestUser | None
    category: str | None
    owner: TestUser
    # per period: starts_on, ends_on, amount, committed, actual
    periods: list[tuple[date, date, Decimal, Decimal, Decimal]]


@dataclass
class BudgetOrg:
    admin: TestUser
    accountant: TestUser
    top: TestUser  # manager of mid
    mid: TestUser  # manager of e1
    other: TestUser  # a manager of a separate team (e2)
    e1: TestUser
    e2: TestUser
    budgets: dict[str, KnownBudget]
    names: dict[int, str]  # user id -> full name

    def visible(self, viewer: TestUser) -> set[str]:
        """Budget names the viewer may see, by the rule as the issue states it (worked out by hand here)."""
        subtree = {
            self.admin.id: None,
            self.accountant.id: None,
            self.top.id: {self.top.id, self.mid.id, self.e1.id},
            self.mid.id: {self.mid.id, self.e1.id},
            self.other.id: {self.other.id, self.e2.id},
            self.e1.id: {self.e1.id},
            self.e2.id: {self.e2.id},
        }[viewer.id]
        return {
            b.name
            for b in self.budgets.values()
            if subtree is None
            or b.owner.id == viewer.id
            or (b.team_manager is not None and b.team_manager.id in subtree)
        }


def d(text: str) -> Decimal:
    return Decimal(text)


# name: (kind, team manager, category, owner, starts_on, [(amount, committed, actual) per period])
LAYOUT: dict[str, tuple[str, str | None, str | None, str, date, list[tuple[str, str, str]]]] = {
    "Mid team monthly": (
        "month",
        "mid",
        None,
        "mid",
        date(2026, 9, 1),
        [
            ("800.00", "0", "800.00"),
            ("1000.00", "100.00", "900.00"),
            ("1000.00", "0", "1200.00"),
            ("1000.00", "50.00", "300.00"),
            ("1000.00", "0", "0"),
        ],
    ),  # fmt: skip
    "Top team software": ("quarter", "top", "software", "top", date(2026, 10, 1), [("9000.00", "1000.00", "2000.00")]),
    "Other team": (
        "month",
        "other",
        None,
        "other",
        date(2026, 11, 1),
        [("500.00", "0", "400.00"), ("500.00", "0", "0")],
    ),
    "Company travel": ("year", None, "travel", "accountant", date(2026, 1, 1), [("120000.00", "0", "50000.00")]),
    "Mid meals": ("month", None, "meals", "mid", date(2026, 12, 1), [("200.00", "0", "0")]),
    "Later year": ("year", "mid", None, "mid", date(2027, 1, 1), [("5000.00", "0", "0")]),
}


async def insert_budget(
    deps: ActivityDeps,
    name: str,
    kind: str,
    starts_on: date,
    owner: TestUser,
    creator: TestUser,
    figures: list[tuple[str, str, str]],
    team_manager: TestUser | None = None,
    category: str | None = None,
) -> KnownBudget:
    """A budget written straight into its tables, each period with its committed and actual sums."""
    periods = []
    async with deps.db.transaction() as tx:
        budget_id = await tx.sql.scalar(
            "INSERT INTO budgets (name, team_manager_id, category, period_kind, starts_on, policy, thresholds, "
            "owner_id, created_by_id, currency) VALUES (%s, %s, %s, %s, %s, 'warn', '{80,100}', %s, %s, 'USD') "
            "RETURNING id",
            (name, team_manager.id if team_manager else None, category, kind, starts_on, owner.id, creator.id),
        )
        for period, (amount, committed, actual) in zip(grid(kind, starts_on, len(figures)), figures, strict=True):
            await tx.sql.run(
                "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount, committed, actual) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (budget_id, period.starts_on, period.ends_on, amount, committed, actual),
            )
            periods.append((period.starts_on, period.ends_on, d(amount), d(committed), d(actual)))
    return KnownBudget(int(budget_id), name, kind, team_manager, category, owner, periods)


@pytest.fixture
async def budget_org(make_user: MakeUser, activity_deps: ActivityDeps) -> BudgetOrg:
    admin = await make_user("admin", email="boss@example.com", full_name="Ada Admin")
    accountant = await make_user("accountant", full_name="Ann Accountant")
    top = await make_user("manager", full_name="Tom Top")
    mid = await make_user("manager", manager=top, full_name="Mia Middle")
    other = await make_user("manager", full_name="Olga Other")
    e1 = await make_user("employee", manager=mid, full_name="Eve One")
    e2 = await make_user("employee", manager=other, full_name="Ed Two")
    people = {"top": top, "mid": mid, "other": other, "accountant": accountant}
    budgets = {}
    for name, (kind, manager, category, owner, starts_on, figures) in LAYOUT.items():
        budgets[name] = await insert_budget(
            activity_deps,
            name,
            kind,
            starts_on,
            people[owner],
            accountant,
            figures,
            team_manager=people[manager] if manager else None,
            category=category,
        )
    names = {
        u.id: full
        for u, full in [(top, "Tom Top"), (mid, "Mia Middle"), (other, "Olga Other"), (accountant, "Ann Accountant")]
    }
    return BudgetOrg(admin, accountant, top, mid, other, e1, e2, budgets, names)


# --- the expected table, worked out independently of the dataset -----------------------------------------------


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def percent(part: Fraction) -> str:
    return str((Decimal(part.numerator) * 100 / Decimal(part.denominator)).quantize(CENT, ROUND_HALF_UP))


def expected_rows(org: BudgetOrg, viewer: TestUser, as_of: date, start: date, end: date) -> list[list[str]]:
    """The report's text rows for `viewer` on `as_of`, from the known figures with exact fractions."""
    rows: list[tuple[tuple[str, int, date], list[str]]] = []
    totals = [Decimal(0)] * 3
    visible = org.visible(viewer)
    for budget in org.budgets.values():
        if budget.name not in visible:
            continue
        for starts_on, ends_on, amount, committed, actual in budget.periods:
            if not (starts_on <= end and ends_on > start):
                continue
            days = (ends_on - starts_on).days
            gone = min(max((as_of - starts_on).days + 1, 0), days)
            elapsed = Fraction(gone, days)
            spent = Fraction(actual) / Fraction(amount)
            available = amount - committed - actual
            burn = spent / elapsed if elapsed else None
            burn_text = "" if burn is None else percent(burn / 100)
            if available < 0:
                status = "over"
            elif (burn is not None and Decimal(burn_text) > 1) or (burn is None and actual > 0):
                status = "ahead of plan"
            else:
                status = "on track"
            manager = budget.team_manager
            rows.append(
                (
                    (budget.name, budget.id, starts_on),
                    [
                        budget.name,
                        org.names[manager.id] if manager else "",
                        str(manager.id) if manager else "",
                        budget.category or "",
                        Period(starts_on, ends_on).label(budget.kind),
                        money(amount),
                        money(committed),
                        money(actual),
                        money(available),
                        percent(spent),
                        percent(Fraction(committed + actual) / Fraction(amount)),
                        percent(elapsed),
                        burn_text,
                        status,
                    ],
                )
            )
            for index, value in enumerate((amount, committed, actual)):
                totals[index] += value
    amount, committed, actual = totals
    total_row = ["Total", "", "", "", ""] + [money(v) for v in (amount, committed, actual, amount - committed - actual)]
    if amount:
        total_row += [
            percent(Fraction(actual) / Fraction(amount)),
            percent(Fraction(committed + actual) / Fraction(amount)),
        ]
    else:
        total_row += ["0.00", "0.00"]
    total_row += ["", "", ""]
    return [row for _, row in sorted(rows, key=lambda item: item[0])] + [total_row]


# --- requesting and generating ----------------------------------------------------------------------------------


async def request_budget_report(
    deps: ActivityDeps, viewer: TestUser, fmt: str, start: str = FROM, end: str = TO, **filters: Any
) -> Report:
    """Request the report as `viewer` with their visibility and budget scope, as the route does."""
    async with deps.db.transaction() as tx:
        user = await tx.session.get(User, viewer.id)
        assert user is not None
        request = ReportRequest(
            type=ReportType.BUDGET_VS_ACTUAL,
            format=fmt,  # type: ignore[arg-type]
            period=ReportPeriod.model_validate({"from": start, "to": end}),
            filters=ReportFilters(**filters),
        )
        return await service.request_report(
            tx,
            deps.settings.reports,
            user,
            await visibility_for(tx.sql, deps.authorizer, user),
            request,
            AuditContext(),
            authorizer=deps.authorizer,
        )


async def generate(
    deps: ActivityDeps, viewer: TestUser, fmt: str, start: str = FROM, end: str = TO, **filters: Any
) -> tuple[Report, bytes, Path]:
    """Request, run the real generate activity, read the stored file."""
    report = await request_budget_report(deps, viewer, fmt, start, end, **filters)
    return await generated(deps, report.id)


def generation_day(deps: ActivityDeps) -> date:
    """The report's generation date, in the reports' time zone (what the report measures elapsed time on)."""
    return datetime.now(ZoneInfo(deps.settings.reports.timezone)).date()


def budget_column_kinds(deps: ActivityDeps) -> list[Any]:
    query = ReportQuery(ReportType.BUDGET_VS_ACTUAL, date(2026, 1, 1), date(2026, 1, 1), ReportScope(True),
                        base_currency=deps.settings.approvals.base_currency)  # fmt: skip
    return dataset_for(query).columns


# --- tests ------------------------------------------------------------------------------------------------------


async def test_rows_burn_and_status_on_a_given_day(budget_org: BudgetOrg, activity_deps: ActivityDeps) -> None:
    """On 2026-11-15, by hand: half of November and of the quarter are gone, 319 of 365 days of the year."""
    query = ReportQuery(
        ReportType.BUDGET_VS_ACTUAL,
        date(2026, 10, 1),
        date(2026, 12, 31),
        ReportScope(True, budgets=await _scope(activity_deps, budget_org.accountant)),
        base_currency="USD",
        as_of=date(2026, 11, 15),
    )
    dataset = dataset_for(query)
    async with activity_deps.db.transaction() as tx:
        rows = [row async for batch in dataset.batches(tx) for row in batch]
    by_key = {(row[0], row[4]): row[5:] for row in rows}
    # amount, committed, actual, available, spent %, used %, elapsed %, burn, status
    assert by_key[("Mid team monthly", "2026-10")] == (
        d("1000.00"), d("100.00"), d("900.00"), d("0.00"), d("90.00"), d("100.00"), d("100.00"), d("0.90"), "on track"
    )  # fmt: skip
    assert by_key[("Mid team monthly", "2026-11")] == (
        d("1000.00"), d("0.00"), d("1200.00"), d("-200.00"), d("120.00"), d("120.00"), d("50.00"), d("2.40"), "over"
    )  # fmt: skip
    # Spent before its period starts: no burn, ahead of plan.
    assert by_key[("Mid team monthly", "2026-12")][6:] == (d("0.00"), None, "ahead of plan")
    assert by_key[("Top team software", "2026-10 to 2026-12")] == (
        d("9000.00"), d("1000.00"), d("2000.00"), d("6000.00"), d("22.22"), d("33.33"), d("50.00"), d("0.44"),
        "on track",
    )  # fmt: skip
    assert by_key[("Other team", "2026-11")][4:] == (d("80.00"), d("80.00"), d("50.00"), d("1.60"), "ahead of plan")
    assert by_key[("Other team", "2026-12")][6:] == (d("0.00"), None, "on track")
    # 50000 / 120000 = 41.67 %, over 319 / 365 = 87.40 % of the year: 0.4767 -> 0.48
    assert by_key[("Company travel", "2026-01 to 2026-12")][4:] == (
        d("41.67"), d("41.67"), d("87.40"), d("0.48"), "on track"
    )  # fmt: skip
    # September (before the range) and 2027 (after it) are not rows.
    assert ("Mid team monthly", "2026-09") not in by_key and ("Mid team monthly", "2027-01") not in by_key
    assert "Later year" not in {row[0] for row in rows}
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    # Totals: amounts of the 8 rows, and the shares of the totals.
    assert dataset.totals == [
        ("Total", "", None, "", "", d("133200.00"), d("1150.00"), d("54800.00"), d("77250.00"), d("41.14"),
         d("42.00"), None, None, "")
    ]  # fmt: skip
    assert len(rows) == 8
    assert "2026-11-15" in dataset.basis


async def _scope(deps: ActivityDeps, viewer: TestUser) -> Any:
    async with deps.db.transaction() as tx:
        user = await tx.session.get(User, viewer.id)
        assert user is not None
        return await scope_for(tx.sql, deps.authorizer, user)


async def test_every_format_holds_the_same_numbers(budget_org: BudgetOrg, activity_deps: ActivityDeps) -> None:
    deps = activity_deps
    today = generation_day(deps)
    expected = expected_rows(budget_org, budget_org.accountant, today, date(2026, 10, 1), date(2026, 12, 31))
    assert len(expected) == 9  # eight periods and the totals

    csv_report, csv_bytes, _ = await generate(deps, budget_org.accountant, "csv")
    header, from_csv = csv_table(csv_bytes)
    assert header == HEADER
    assert from_csv == expected
    assert csv_report.rows == 8
    assert csv_report.filename == f"budget_vs_actual_{FROM}_{TO}.csv"

    _, json_bytes, _ = await generate(deps, budget_org.accountant, "json")
    document, from_json = json_table(json_bytes)
    assert from_json == expected
    assert document["report"]["type"] == "budget_vs_actual"
    assert document["report"]["scope"] == "All budgets (organisation-wide)"
    assert document["report"]["currency"] == "USD"
    assert document["sections"] == []
    assert [c["key"] for c in document["columns"]][-2:] == ["burn", "status"]

    xlsx_report, _, xlsx_path = await generate(deps, budget_org.accountant, "xlsx")
    columns = budget_column_kinds(deps)
    raw, from_xlsx = xlsx_table(xlsx_path, "budget_vs_actual", columns)
    assert from_xlsx == expected
    # Typed cells: money, shares and burn are numbers, the manager id an integer, labels text.
    book = openpyxl.load_workbook(xlsx_path)
    sheet = book["Report"]
    assert [cell.value for cell in sheet[1]] == HEADER
    for row in sheet.iter_rows(min_row=2, max_row=1 + (xlsx_report.rows or 0)):
        for column, cell in zip(columns, row, strict=True):
            if cell.value is None:
                continue
            if column.numeric:
                assert cell.data_type == "n" and type(cell.value) in (int, float), (column.key, cell.value)
            else:
                assert isinstance(cell.value, str), (column.key, cell.value)
    book.close()
    assert raw[-1][0] == "Total"

    pdf_report, pdf_bytes, _ = await generate(deps, budget_org.accountant, "pdf")
    assert pdf_report.content_type == "application/pdf"
    _, text = pdf_text(pdf_bytes)
    flat = " ".join(text.split())
    assert "Budget versus actual" in flat and "All budgets (organisation-wide)" in flat
    for name in budget_org.visible(budget_org.accountant) - {"Later year"}:
        assert name in flat, name
    for total in expected[-1][5:11]:
        assert total in flat, total
    assert "ahead of plan" in flat and "over" in flat


async def test_each_viewer_sees_only_their_budgets(budget_org: BudgetOrg, activity_deps: ActivityDeps) -> None:
    org = budget_org
    today = generation_day(activity_deps)
    seen = {}
    for viewer in (org.admin, org.accountant, org.top, org.mid, org.other, org.e1, org.e2):
        report, content, _ = await generate(activity_deps, viewer, "csv")
        _, table = csv_table(content)
        assert table == expected_rows(org, viewer, today, date(2026, 10, 1), date(2026, 12, 31)), viewer.username
        seen[viewer.username] = {row[0] for row in table[:-1]}
        assert report.scope["viewer_id"] == viewer.id
    in_range = {"Mid team monthly", "Top team software", "Other team", "Company travel", "Mid meals"}
    assert seen[org.admin.username] == seen[org.accountant.username] == in_range
    # A manager: their subtree's team budgets (mid's team is under top), not the category budget owned by mid.
    assert seen[org.top.username] == {"Mid team monthly", "Top team software"}
    # mid: their team's and the one they own; never top's team budget above them, nor another team's.
    assert seen[org.mid.username] == {"Mid team monthly", "Mid meals"}
    assert seen[org.other.username] == {"Other team"}
    assert seen[org.e1.username] == seen[org.e2.username] == set()
    # An employee's report is a table with a zero total, not an error.
    _, content, _ = await generate(activity_deps, org.e1, "csv")
    assert csv_table(content)[1] == [
        ["Total", "", "", "", "", "0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "", "", ""]
    ]


async def test_the_budget_scope_is_fixed_at_request_time(budget_org: BudgetOrg, activity_deps: ActivityDeps) -> None:
    """A report requested by a manager shows what they could see then, whoever generates it and whatever the
    team looks like by then; the scope is stored with the report and described on it."""
    org = budget_org
    report = await request_budget_report(activity_deps, org.mid, "json")
    assert report.scope["budgets"] == {"everyone": False, "team_ids": sorted([org.mid.id, org.e1.id])}
    async with activity_deps.db.transaction() as tx:  # other moves under mid after the request
        await tx.sql.run("UPDATE users SET manager_id = %s WHERE id = %s", (org.mid.id, org.other.id))
    result = await ActivityEnvironment().run(ReportActivities(activity_deps).generate_report, str(report.id))
    assert result.status == "completed"
    async with activity_deps.db.transaction() as tx:
        stored = await tx.session.get(Report, report.id)
        assert stored is not None and stored.storage_key is not None
    document = json.loads((Path(activity_deps.settings.storage.local_dir) / stored.storage_key).read_bytes())
    assert {row["budget"] for row in document["rows"]} == {"Mid team monthly", "Mid meals"}
    assert document["report"]["scope"].startswith("Budgets owned by Mia Middle")


async def test_categories_narrow_and_owner_filters_and_other_currencies_are_refused(
    budget_org: BudgetOrg, activity_deps: ActivityDeps
) -> None:
    _, content, _ = await generate(activity_deps, budget_org.accountant, "csv", categories=["travel", "software"])
    assert {row[0] for row in csv_table(content)[1][:-1]} == {"Company travel", "Top team software"}
    with pytest.raises(ValidationFailed, match="owner_ids"):
        await request_budget_report(activity_deps, budget_org.accountant, "csv", owner_ids=[budget_org.mid.id])


async def test_over_http_a_managers_report_holds_their_teams_budgets(
    api: httpx.AsyncClient,  # noqa: F811 - the reports stack's fixture
    make_user: MakeUser,
    reports_deps: ActivityDeps,  # noqa: F811
) -> None:
    """Budgets made through POST /budgets, figures put into their periods, the report requested through the API and
    generated by the workflow: the manager's holds their team's budget and not another team's."""
    accountant = await make_user("accountant")
    manager = await make_user("manager", full_name="Max Manager")
    stranger = await make_user("manager")
    employee = await make_user("employee", manager=manager)
    made = {}
    for name, team in (("Max team December", manager), ("Stranger team December", stranger)):
        body = {"name": name, "team_manager_id": team.id, "period": "month", "starts_on": "2026-12-01",
                "amounts": ["1000.00"], "policy": "warn"}  # fmt: skip
        response = await api.post("/api/v1/budgets", json=body, headers=accountant.headers)
        assert response.status_code == 201, response.text
        made[name] = response.json()["id"]
    async with reports_deps.db.transaction() as tx:
        await tx.sql.run(
            "UPDATE budget_periods SET committed = 125.50, actual = 374.50 WHERE budget_id = %s",
            (made["Max team December"],),
        )

    period = {"from": "2026-12-01", "to": "2026-12-31"}
    bad = await api.post(
        "/api/v1/reports",
        json={"type": "budget_vs_actual", "format": "csv", "period": period, "presentation_currency": "GBP"},
        headers=manager.headers,
    )
    assert bad.status_code == 422 and "base currency" in bad.text

    accepted = await api.post(
        "/api/v1/reports", json={"type": "budget_vs_actual", "format": "csv", "period": period}, headers=manager.headers
    )
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["id"]
    body = await _finished(api, manager, report_id)
    assert body["status"] == "completed", body
    assert body["scope"]["budgets"] == {"everyone": False, "team_ids": sorted([manager.id, employee.id])}
    download = await api.get(f"/api/v1/reports/{report_id}/download", headers=manager.headers)
    assert download.status_code == 200
    _, table = csv_table(download.content)
    today = datetime.now(ZoneInfo(reports_deps.settings.reports.timezone)).date()
    elapsed = Fraction(min(max((today - date(2026, 12, 1)).days + 1, 0), 31), 31)
    burn = "" if not elapsed else percent(Fraction(37450, 100000) / elapsed / 100)
    assert table[0][:12] == ["Max team December", "Max Manager", str(manager.id), "", "2026-12", "1000.00", "125.50",
                             "374.50", "500.00", "37.45", "50.00", percent(elapsed)]  # fmt: skip
    assert table[0][12] == burn
    assert [row[0] for row in table] == ["Max team December", "Total"]


async def _finished(http: httpx.AsyncClient, user: TestUser, report_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = datetime.now(UTC).timestamp() + seconds
    while True:
        response = await http.get(f"/api/v1/reports/{report_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        assert datetime.now(UTC).timestamp() < deadline, f"report still {body['status']}"
        await asyncio.sleep(0.2)


def test_a_stored_scope_without_budgets_sees_all_only_when_organisation_wide() -> None:
    """A scheduled report (admins', `kind` all) carries no budget scope and covers every budget; a stored request
    without one (made before budget reports existed) sees only budgets its requester owns."""
    scheduled = ReportScope.from_dict({"kind": "all"}, budget_report=True).budget_scope()
    assert scheduled.everyone and scheduled.where("b") == ("TRUE", ())
    own = ReportScope.from_dict({"kind": "owners", "viewer_id": 7, "owner_ids": [7, 8]}, budget_report=True)
    assert own.budget_scope().where("b") == ("(b.owner_id = %s OR b.team_manager_id = ANY(%s))", (7, []))
    carried = {
        "kind": "owners",
        "viewer_id": 7,
        "owner_ids": [7, 8],
        "budgets": {"everyone": False, "team_ids": [8, 7]},
    }
    assert ReportScope.from_dict(carried, budget_report=True).budget_scope().team_ids == (7, 8)
    # Entry reports ignore a budget scope.
    assert ReportScope.from_dict(carried).budgets is None
