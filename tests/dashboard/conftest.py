"""Random finance data for the dashboard tests, inserted the way the services do it (entry rows plus the status hook),
and a brute-force recomputation of every dashboard figure straight from the tables."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from core.db import Tx
from domain.models import ApprovalRequest, ApprovalStep, Entry

# `team` (admin <- manager <- employee, with the in-process worker) for the end-to-end tests; its teardown ends the
# test's workflows before the tables are emptied.
from tests.approvals.conftest import team  # noqa: F401
from tests.conftest import MakeUser, TestUser

CATEGORIES = {"expense": ["travel", "software", "meals", "hardware"], "revenue": ["sales", "services", "licences"]}
STATUSES = ["draft", "pending", "changes_requested", "approved", "approved", "approved", "rejected", "withdrawn"]
STATUSES += ["expired"]
CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    return format(value.quantize(CENT), "f")


@dataclass
class Org:
    admin: TestUser
    accountant: TestUser
    top: TestUser  # manager of mid and e3
    mid: TestUser  # manager of e1, e2
    other: TestUser  # manager of e4, a separate team
    e1: TestUser
    e2: TestUser
    e3: TestUser
    e4: TestUser

    def everyone(self) -> list[TestUser]:
        return [self.admin, self.accountant, self.top, self.mid, self.other, self.e1, self.e2, self.e3, self.e4]


@pytest.fixture
async def org(make_user: MakeUser) -> Org:
    admin = await make_user("admin")
    accountant = await make_user("accountant")
    top = await make_user("manager")
    mid = await make_user("manager", manager=top)
    other = await make_user("manager")
    e1 = await make_user("employee", manager=mid)
    e2 = await make_user("employee", manager=mid)
    e3 = await make_user("employee", manager=top)
    e4 = await make_user("employee", manager=other)
    return Org(admin, accountant, top, mid, other, e1, e2, e3, e4)


async def insert_random_data(tx: Tx, org: Org, rng: random.Random, per_owner: int = 25) -> None:
    """Entries of every kind, status and month over ~26 months, with their approval requests and steps."""
    now = datetime.now(UTC)
    managers = {u.id: u.manager_id or org.admin.id for u in org.everyone()}
    people = org.everyone()
    sequence = 0
    for owner in people:
        for _ in range(per_owner):
            sequence += 1
            kind = rng.choice(["expense", "expense", "revenue"])
            status = rng.choice(STATUSES)
            created = now - timedelta(days=rng.uniform(0, 800))
            entry = Entry(
                kind=kind,
                amount=Decimal(rng.randint(1, 500_000)) / 100,
                currency="USD",
                category=rng.choice(CATEGORIES[kind]),
                description=f"random {sequence}",
                entry_date=(now - timedelta(days=rng.uniform(0, 800))).date(),
                source="client" if kind == "revenue" else None,
                vendor="vendor" if kind == "expense" else None,
                owner_id=owner.id,
                status=status,
                created_at=created,
            )
            tx.session.add(entry)
            await tx.session.flush()
            if status == "draft":
                continue
            submitted = created + timedelta(minutes=rng.uniform(1, 600))
            final = status in {"approved", "rejected", "withdrawn", "expired"}
            decided = min(submitted + timedelta(seconds=rng.uniform(30, 10 * 86400)), now - timedelta(hours=2))
            request = ApprovalRequest(
                subject_kind=kind,
                entry_id=entry.id,
                title=entry.description,
                amount=entry.amount,
                requester_id=owner.id,
                status=status,
                workflow_id=f"approval-{kind}-{entry.id}",
                policy_version="test",
                chain=[],
                submitted_at=submitted,
                decided_at=decided if final else None,
            )
            tx.session.add(request)
            await tx.session.flush()
            entry.approval_request_id = request.id
            approver = managers[owner.id]
            step_number = 1
            if rng.random() < 0.25:  # escalated first, then the next approver decides
                tx.session.add(
                    ApprovalStep(
                        request_id=request.id,
                        sequence=step_number,
                        level=1,
                        approver_id=approver,
                        status="escalated",
                        decided_at=submitted + (decided - submitted) / 2,
                    )
                )
                step_number += 1
                approver = org.admin.id
            step_status = {"pending": "pending", "changes_requested": "changes_requested"}.get(status, status)
            delegate = rng.choice([None, None, org.accountant.id, org.e3.id])
            tx.session.add(
                ApprovalStep(
                    request_id=request.id,
                    sequence=step_number,
                    level=step_number,
                    approver_id=approver,
                    delegate_id=delegate if step_status == "pending" else None,
                    status=step_status,
                    remind_at=now + timedelta(days=rng.choice([-3, -1, 1, 3])),
                    decided_at=decided if final else None,
                )
            )
    await tx.session.flush()


# --- brute force, from the tables ---------------------------------------------------------------------


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(sql)
        return list(cur.fetchall())


class BruteForce:
    """Every dashboard number, recomputed in Python from plain SELECTs over the base tables."""

    def __init__(self, url: str) -> None:
        self.users = {row["id"]: row for row in _rows(url, "SELECT id, role, manager_id, full_name FROM users")}
        self.entries = _rows(url, "SELECT * FROM entries")
        self.requests = _rows(url, "SELECT * FROM approval_requests")
        self.steps = _rows(url, "SELECT * FROM approval_steps")
        self.request_by_id = {r["id"]: r for r in self.requests}

    def scope(self, viewer: TestUser) -> set[int] | None:
        if viewer.role in {"admin", "accountant", "superadmin"}:
            return None
        if viewer.role == "employee":
            return {viewer.id}
        found = {viewer.id}
        grew = True
        while grew:
            grew = False
            for uid, row in self.users.items():
                if row["manager_id"] in found and uid not in found:
                    found.add(uid)
                    grew = True
        return found

    @staticmethod
    def _in(scope: set[int] | None, owner: int) -> bool:
        return scope is None or owner in scope

    def approved_sum(self, scope: set[int] | None, kind: str, start: date, end: date) -> Decimal:
        return sum(
            (
                e["amount"]
                for e in self.entries
                if e["status"] == "approved"
                and e["kind"] == kind
                and start <= e["entry_date"] < end
                and self._in(scope, e["owner_id"])
            ),
            Decimal("0"),
        )

    def pending(self, scope: set[int] | None) -> dict[str, Any]:
        rows = [e for e in self.entries if e["status"] == "pending" and self._in(scope, e["owner_id"])]
        revenue = [e["amount"] for e in rows if e["kind"] == "revenue"]
        expenses = [e["amount"] for e in rows if e["kind"] == "expense"]
        return {
            "revenue": money(sum(revenue, Decimal(0))),
            "expenses": money(sum(expenses, Decimal(0))),
            "revenue_entries": len(revenue),
            "expense_entries": len(expenses),
        }

    def totals(self, scope: set[int] | None, start: date, end: date) -> dict[str, Any]:
        revenue = self.approved_sum(scope, "revenue", start, end)
        expenses = self.approved_sum(scope, "expense", start, end)
        return {
            "start": start.isoformat(),
            "end": (end - timedelta(days=1)).isoformat(),
            "revenue": money(revenue),
            "expenses": money(expenses),
            "net": money(revenue - expenses),
        }

    def approvals(self, viewer: TestUser, scope: set[int] | None, now: datetime) -> dict[str, int]:
        pending = [s for s in self.steps if s["status"] == "pending"]
        mine = [s for s in pending if viewer.id in (s["approver_id"], s["delegate_id"])]
        in_scope = [
            s
            for s in pending
            if self.request_by_id[s["request_id"]]["status"] == "pending"
            and self._in(scope, self.request_by_id[s["request_id"]]["requester_id"])
        ]
        return {
            "waiting_on_me": len(mine),
            "overdue_waiting_on_me": sum(1 for s in mine if s["remind_at"] < now),
            "pending_in_scope": sum(
                1 for r in self.requests if r["status"] == "pending" and self._in(scope, r["requester_id"])
            ),
            "overdue_in_scope": sum(1 for s in in_scope if s["remind_at"] < now),
        }

    def recent(self, scope: set[int] | None) -> list[int]:
        visible = [e for e in self.entries if self._in(scope, e["owner_id"])]
        visible.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
        return [e["id"] for e in visible[:10]]

    def top_categories(self, scope: set[int] | None, start: date, end: date) -> list[dict[str, Any]]:
        sums: dict[str, list[Any]] = {}
        for e in self.entries:
            if (
                e["status"] == "approved"
                and e["kind"] == "expense"
                and start <= e["entry_date"] < end
                and self._in(scope, e["owner_id"])
            ):
                bucket = sums.setdefault(e["category"], [Decimal(0), 0])
                bucket[0] += e["amount"]
                bucket[1] += 1
        ordered = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))[:10]
        return [{"category": c, "amount": money(a), "entries": n} for c, (a, n) in ordered]

    def top_spenders(self, scope: set[int] | None, start: date, end: date) -> list[dict[str, Any]]:
        sums: dict[int, list[Any]] = {}
        for e in self.entries:
            if (
                e["status"] == "approved"
                and e["kind"] == "expense"
                and start <= e["entry_date"] < end
                and self._in(scope, e["owner_id"])
            ):
                bucket = sums.setdefault(e["owner_id"], [Decimal(0), 0])
                bucket[0] += e["amount"]
                bucket[1] += 1
        ordered = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))[:10]
        return [
            {"user_id": o, "full_name": self.users[o]["full_name"], "amount": money(a), "entries": n}
            for o, (a, n) in ordered
        ]

    def approval_stats(self, scope: set[int] | None, start: datetime, end: datetime) -> dict[str, Any]:
        decided = [
            r
            for r in self.requests
            if r["status"] in ("approved", "rejected")
            and start <= r["decided_at"] < end
            and self._in(scope, r["requester_id"])
        ]
        approved = sum(1 for r in decided if r["status"] == "approved")
        rejected = len(decided) - approved
        times = sorted(
            (r["decided_at"] - r["submitted_at"]).total_seconds() for r in decided if r["submitted_at"] is not None
        )

        def nearest_rank(p: float) -> int | None:  # PostgreSQL's percentile_disc, in whole seconds
            if not times:
                return None
            return round(times[max(1, math.ceil(p * len(times))) - 1])

        median, p90 = nearest_rank(0.5), nearest_rank(0.9)
        escalations = sum(
            1
            for s in self.steps
            if s["status"] == "escalated"
            and start <= s["decided_at"] < end
            and self._in(scope, self.request_by_id[s["request_id"]]["requester_id"])
        )
        return {
            "approval_cycle_time": {
                "decided": len(times),
                "median_seconds": median,
                "p90_seconds": p90,
                "median_hours": None if median is None else round(median / 3600, 2),
                "p90_hours": None if p90 is None else round(p90 / 3600, 2),
            },
            "approval_rate": {
                "approved": approved,
                "rejected": rejected,
                "rate": str((Decimal(approved) / len(decided)).quantize(Decimal("0.0001"))) if decided else None,
            },
            "escalations": escalations,
        }
