"""The soak's user mix: reads, creates and approvals against a running API (run by tests/reliability/soak.py).

    SOAK_TOKENS=tokens.json locust --headless -f tests/reliability/locustfile.py -u 50 -r 10 -t 300s --host <api>

SOAK_TOKENS names a JSON file written by the runner: {"teams": [{"manager": {"id", "token"}, "employee": {...}}],
"accountant": {"id", "token"}}. Every GET also counts in a "reads" row and every other method in a "writes" row
(type GROUP) of the stats, so the CSV carries exact percentiles for each group.

With SOAK_FINAL_STATS set, the final statistics are also written there as JSON when Locust quits, after every user
has stopped: Locust rewrites its `_stats.csv` only once a second and not at the end, so the CSV misses the requests
of the last moments (the database then counts a few more than Locust did).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment

API = "/api/v1"
CATEGORIES = ("travel", "meals", "software", "hardware", "training", "office")
APPROVE_ATTEMPTS = 100  # x 0.1 s: the workflow opens its step within milliseconds unless the worker is swamped

with open(os.environ["SOAK_TOKENS"], encoding="utf-8") as tokens_file:
    TOKENS: dict[str, Any] = json.load(tokens_file)
# One counter per user class, so every team has its readers, its creator and its approver (a reader of a team
# whose employee never files anything would browse empty lists).
_next_team: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


@events.request.add_listener
def _count_in_group(
    request_type: str, name: str, response_time: float, response_length: int, exception: Any, **_: Any
) -> None:
    environment: Environment | None = _environment
    if environment is None:
        return
    entry = environment.stats.get("reads" if request_type == "GET" else "writes", "GROUP")
    entry.log(round(response_time), response_length or 0)
    if exception is not None:
        entry.log_error(exception)


_environment: Environment | None = None


@events.init.add_listener
def _remember_environment(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment


@events.quitting.add_listener
def _write_final_stats(environment: Environment, **_: Any) -> None:
    target = os.environ.get("SOAK_FINAL_STATS")
    if not target:
        return
    stats = environment.stats
    rows = []
    for entry in [*stats.entries.values(), stats.total]:
        counted = entry.num_requests > 0
        rows.append(
            {  # the CSV's column names, so the runner reads either
                "Type": entry.method or "",
                "Name": entry.name,
                "Request Count": entry.num_requests,
                "Failure Count": entry.num_failures,
                "Requests/s": entry.total_rps,
                "50%": entry.get_response_time_percentile(0.5) if counted else 0,
                "95%": entry.get_response_time_percentile(0.95) if counted else 0,
                "99%": entry.get_response_time_percentile(0.99) if counted else 0,
                "Max Response Time": entry.max_response_time,
            }
        )
    failures = [
        {"Method": error.method, "Name": error.name, "Error": str(error.error), "Occurrences": error.occurrences}
        for error in stats.errors.values()
    ]
    with open(target, "w", encoding="utf-8") as out:
        json.dump({"stats": rows, "failures": failures}, out)


def _bearer(actor: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {actor['token']}"}


def _expense(note: str) -> dict[str, Any]:
    return {
        "amount": f"{random.randint(20, 5000)}.{random.randint(0, 99):02d}",
        "currency": "USD",
        "category": random.choice(CATEGORIES),
        "description": f"soak {note}",
        "entry_date": (date.today() - timedelta(days=random.randint(0, 60))).isoformat(),
        "vendor": "Soak Supplies",
    }


class TeamUser(FastHttpUser):
    """A user bound to one team (a manager and an employee reporting to them), round-robin within its class."""

    abstract = True
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        team = TOKENS["teams"][next(_next_team[type(self).__name__]) % len(TOKENS["teams"])]
        self.manager: dict[str, Any] = team["manager"]
        self.employee: dict[str, Any] = team["employee"]


class Reader(TeamUser):
    """Browses as the employee, the manager or the accountant (who sees every entry)."""

    weight = 6

    def on_start(self) -> None:
        super().on_start()
        self.actor: dict[str, Any] = random.choices(
            [self.employee, self.manager, TOKENS["accountant"]], weights=[5, 4, 1]
        )[0]
        self.seen: list[int] = []

    @task(4)
    def list_expenses(self) -> None:
        params: dict[str, Any] = {
            "sort": random.choice(["date", "amount"]),
            "order": random.choice(["asc", "desc"]),
            "limit": random.choice([20, 50]),
        }
        choice = random.random()
        if choice < 0.3:
            params["status"] = random.choice(["draft", "pending", "approved"])
        elif choice < 0.5:
            params["category"] = random.choice(CATEGORIES)
        elif choice < 0.7:
            params["amount_min"], params["amount_max"] = "100", "2500"
        elif choice < 0.8:
            params["date_from"] = (date.today() - timedelta(days=30)).isoformat()
        with self.client.get(
            f"{API}/expenses/",
            params=params,
            headers=_bearer(self.actor),
            name="GET /expenses/?filters",
            catch_response=True,
        ) as response:
            found = [int(item["id"]) for item in response.json()["items"]] if response.status_code == 200 else []
            if found:  # a filter that matched nothing keeps the ids seen before
                self.seen = found[:20]

    @task(3)
    def get_one(self) -> None:
        if not self.seen:
            self.list_expenses()
            return
        entry_id = random.choice(self.seen)
        self.client.get(f"{API}/expenses/{entry_id}", headers=_bearer(self.actor), name="GET /expenses/{id}")

    @task(2)
    def dashboard_overview(self) -> None:
        period = random.choice(["month", "quarter", "year"])
        self.client.get(
            f"{API}/dashboard/overview",
            params={"period": period},
            headers=_bearer(self.actor),
            name="GET /dashboard/overview",
        )

    @task(2)
    def unread_count(self) -> None:
        self.client.get(f"{API}/notifications/unread-count", headers=_bearer(self.actor))

    @task(2)
    def approvals_inbox(self) -> None:
        self.client.get(f"{API}/approvals/", headers=_bearer(self.manager), name="GET /approvals/ (inbox)")


class Creator(TeamUser):
    """Files draft expenses and looks at what they filed."""

    weight = 2

    @task(3)
    def create(self) -> None:
        with self.client.post(
            f"{API}/expenses/", json=_expense("draft"), headers=_bearer(self.employee), catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"create answered {response.status_code}: {response.text[:200]}")

    @task(1)
    def my_drafts(self) -> None:
        self.client.get(
            f"{API}/expenses/",
            params={"status": "draft", "limit": 20},
            headers=_bearer(self.employee),
            name="GET /expenses/?filters",
        )


class Approver(TeamUser):
    """The employee creates and submits an expense; the manager approves it (one step under their limit)."""

    weight = 2

    @task
    def create_submit_approve(self) -> None:
        with self.client.post(
            f"{API}/expenses/", json=_expense("approval"), headers=_bearer(self.employee), catch_response=True
        ) as created:
            if created.status_code != 201:
                created.failure(f"create answered {created.status_code}: {created.text[:200]}")
                return
        entry_id = int(created.json()["id"])
        with self.client.post(
            f"{API}/expenses/{entry_id}/submit",
            headers=_bearer(self.employee),
            name="POST /expenses/{id}/submit",
            catch_response=True,
        ) as submitted:
            if submitted.status_code != 200:
                submitted.failure(f"submit answered {submitted.status_code}: {submitted.text[:200]}")
                return
        self._approve(entry_id)

    def _approve(self, entry_id: int) -> None:
        """409 while the workflow has not yet opened its step is a retry, recorded under its own name."""
        for _ in range(APPROVE_ATTEMPTS):
            with self.client.post(
                f"{API}/expenses/{entry_id}/approve",
                json={},
                headers=_bearer(self.manager),
                name="POST /expenses/{id}/approve",
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    return
                if response.status_code == 409:
                    response.request_meta["name"] = "POST /expenses/{id}/approve (409, retried)"
                    response.success()
                else:
                    response.failure(f"approve answered {response.status_code}: {response.text[:200]}")
                    return
            time.sleep(0.1)
        self.environment.events.request.fire(
            request_type="POST",
            name="POST /expenses/{id}/approve (gave up)",
            response_time=0,
            response_length=0,
            response=None,
            context={},
            exception=RuntimeError(f"approve {entry_id} still 409 after {APPROVE_ATTEMPTS} attempts"),
        )
