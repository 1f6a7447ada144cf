"""Issue 28: what a phone downloads to open the app (my approvals inbox, my last 20 entries) and to refresh it.

    python -m tests.bench.mobile [--entries 120] [--inbox 18]

Before: plain JSON, every field, offset pages, no validator (what a client got before issue 28, and still gets
when it asks nothing more). After: gzip, `?fields=` with what a phone's list row shows, and the refresh sent with
the ETags it holds (304 while nothing changed). Measured on a scratch database with a manager's realistic lists,
through the app in this process (the bytes are the app's: status line, headers and body as HTTP/1.1 carries
them; the server adds `date` and `server`, about 60 bytes, to every answer either way).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from api.app import build_services, create_app
from core.authz import Authorizer
from core.db import Database
from core.engine import WorkflowEngine
from core.security import hash_password, issue_token
from core.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    Settings,
    SmtpSettings,
    StorageSettings,
    TemporalSettings,
)
from domain.approvals.commands import ApprovalCommands
from domain.approvals.transitions import open_request
from domain.audit.service import SYSTEM
from domain.entries import repository as entries
from domain.entries import service as entry_service
from domain.entries.schemas import ExpenseCreate
from domain.fx import rates as fx_rates
from domain.fx.rates import terms_from
from domain.models import EntryKind, User
from tests.bench.run import machine
from tests.services import admin_database_url, migrate, scratch_database
from workflows.contracts import ApprovalTimers

# What a phone's list rows show (the rest is a tap away, on the item's own page).
ENTRY_FIELDS = "amount,currency,category,vendor,entry_date,status"
INBOX_FIELDS = "title,amount,currency,requester_id,waiting_since"
CATEGORIES = ("travel", "meals", "software", "hardware", "training", "office supplies", "taxi", "hotel")
VENDORS = ("Lufthansa", "Hilton Garden Inn", "Uber", "Deutsche Bahn", "JetBrains", "Staples", "Pret A Manger")


@dataclass
class Answer:
    status: int
    header_bytes: int
    body_bytes: int
    etag: str | None

    @property
    def total(self) -> int:
        return self.header_bytes + self.body_bytes


async def fetch(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Answer:
    """One GET, and the bytes of its answer as they travel (the body as sent: compressed when it was)."""
    async with http.stream("GET", url, headers=headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code in (200, 304), response.status_code
    status_line = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n"
    header_bytes = len(status_line) + sum(len(name) + len(value) + 4 for name, value in response.headers.raw) + 2
    return Answer(response.status_code, header_bytes, len(body), response.headers.get("etag"))


def settings_for(database_url: str, root: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        db=DatabaseSettings(url=database_url, pool_size=2),
        temporal=TemporalSettings(task_queue_prefix="bench-mobile"),
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48), bcrypt_rounds=4),
        storage=StorageSettings(bucket="", local_dir=root / "storage"),
        smtp=SmtpSettings(host="", mail_dir=root / "mail"),
    )


async def seed(settings: Settings, own_entries: int, inbox: int) -> tuple[User, str]:
    """A manager with `own_entries` expenses of their own over half a year and `inbox` of their team's waiting on
    them; the manager and an access token."""
    db = Database.connect(settings.db)
    terms = terms_from(settings)
    try:
        async with db.transaction() as tx:
            password = hash_password("bench-password-1", 4)
            admin = User(email="admin@bench.test", username="admin", full_name="Ada Admin", password_hash=password,
                         role="admin", is_active=True, is_verified=True)  # fmt: skip
            tx.session.add(admin)
            await tx.session.flush()
            manager = User(email="mia@bench.test", username="mia", full_name="Mia Manager", password_hash=password,
                           role="manager", manager_id=admin.id, is_active=True, is_verified=True)  # fmt: skip
            tx.session.add(manager)
            await tx.session.flush()
            team = []
            for n in range(6):
                member = User(email=f"e{n}@bench.test", username=f"e{n}", full_name=f"Employee {n}",
                              password_hash=password, role="employee", manager_id=manager.id, is_active=True,
                              is_verified=True)  # fmt: skip
                tx.session.add(member)
                team.append(member)
            await tx.session.flush()
            today = date.today()
            for n in range(own_entries):
                body = ExpenseCreate(
                    amount=Decimal(f"{(n * 37) % 900 + 12}.{n % 100:02d}"),
                    category=CATEGORIES[n % len(CATEGORIES)],
                    description=f"Client visit {n}: {CATEGORIES[n % len(CATEGORIES)]} for the quarterly review",
                    entry_date=today - timedelta(days=(n * 3) % 180),
                    vendor=VENDORS[n % len(VENDORS)],
                )
                row = await entry_service.create_entry(tx, terms, manager, EntryKind.EXPENSE, body, SYSTEM)
                if n % 3:  # most of them decided long ago
                    await entries.set_status(tx.sql, row.id, "approved", decided_at=datetime.now(UTC))
            commands = ApprovalCommands(settings, Authorizer(settings.policy_dir), WorkflowEngine(settings.temporal))
            for n in range(inbox):
                owner = team[n % len(team)]
                body = ExpenseCreate(
                    amount=Decimal(f"{(n * 53) % 700 + 20}.50"),
                    category=CATEGORIES[n % len(CATEGORIES)],
                    description=f"Team offsite {n}: {CATEGORIES[n % len(CATEGORIES)]}, receipts attached",
                    entry_date=today - timedelta(days=n),
                    vendor=VENDORS[n % len(VENDORS)],
                )
                row = await entry_service.create_entry(tx, terms, owner, EntryKind.EXPENSE, body, SYSTEM)
                fx = await fx_rates.lock(tx.sql, row.currency, row.amount, row.entry_date, terms)
                opening = commands.opening(owner, row, row.approval_title, row.description, fx.base_amount, fx)
                await open_request(tx.sql, replace(opening, timers=ApprovalTimers()), SYSTEM)
        token, _ = issue_token(settings.auth, user_id=manager.id, token_type="access",
                               token_version=manager.token_version, lifetime=timedelta(hours=1))  # fmt: skip
        return manager, token
    finally:
        await db.dispose()


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    services = build_services(settings)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://bench"
        ) as http:  # fmt: skip
            yield http
    finally:
        await services.db.dispose()


async def scenario(http: httpx.AsyncClient, me: User, token: str, samples: int = 300) -> dict[str, int]:
    auth = {"Authorization": f"Bearer {token}"}
    inbox = "/api/v1/approvals/?limit=20"
    mine = f"/api/v1/expenses/?owner_id={me.id}&sort=date&order=desc&limit=20"
    figures: dict[str, int] = {}

    # Before: what a client that asks for nothing more gets, and gets again on a refresh.
    plain = {**auth, "Accept-Encoding": "identity"}
    before_open = [await fetch(http, url, plain) for url in (inbox, mine)]
    before_refresh = [await fetch(http, url, plain) for url in (inbox, mine)]
    figures["before_open"] = sum(answer.total for answer in before_open)
    figures["before_open_body"] = sum(answer.body_bytes for answer in before_open)
    figures["before_refresh"] = sum(answer.total for answer in before_refresh)

    # Each convention alone, on opening (to see what each is worth).
    zipped = {**auth, "Accept-Encoding": "gzip"}
    figures["gzip_only_open"] = sum([(await fetch(http, url, zipped)).total for url in (inbox, mine)])
    sparse_urls = (f"{inbox}&fields={INBOX_FIELDS}", f"{mine}&fields={ENTRY_FIELDS}")
    figures["fields_only_open"] = sum([(await fetch(http, url, plain)).total for url in sparse_urls])

    # After: gzip and fields on opening; the refresh sends the ETags it holds.
    after_open = [await fetch(http, url, zipped) for url in sparse_urls]
    figures["after_open"] = sum(answer.total for answer in after_open)
    figures["after_open_body"] = sum(answer.body_bytes for answer in after_open)
    refreshed = [
        await fetch(http, url, {**zipped, "If-None-Match": answer.etag or ""})
        for url, answer in zip(sparse_urls, after_open, strict=True)
    ]
    assert [answer.status for answer in refreshed] == [304, 304], refreshed
    figures["after_refresh"] = sum(answer.total for answer in refreshed)

    # What it costs the server: the entries page served plain, and with gzip, fields and the ETag's digest, in
    # turns (a busy host slows all three alike).
    variants = {"plain_us": (mine, plain), "gzip_us": (mine, zipped), "shaped_us": (sparse_urls[1], zipped)}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(samples):
        for name, (url, headers) in variants.items():
            started = time.perf_counter()
            (await http.get(url, headers=headers)).raise_for_status()
            timings[name].append(time.perf_counter() - started)
    figures |= {name: round(statistics.median(values) * 1_000_000) for name, values in timings.items()}
    return figures


def report(figures: dict[str, int], args: argparse.Namespace) -> str:
    def kb(n: int) -> str:
        return f"{n / 1024:.1f} KiB"

    before = figures["before_open"] + figures["before_refresh"]
    after = figures["after_open"] + figures["after_refresh"]
    lines = [
        f"- Command: `python -m tests.bench.mobile --entries {args.entries} --inbox {args.inbox}`",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"| Step (a manager: an inbox of {args.inbox}, the last 20 of their {args.entries} expenses) | Before | After "
        "| Saved |",
        "| --- | --- | --- | --- |",
        f"| Open the app: 2 answers | {kb(figures['before_open'])} | {kb(figures['after_open'])} | "
        f"{1 - figures['after_open'] / figures['before_open']:.0%} |",
        f"| Refresh, nothing changed: 2 answers | {kb(figures['before_refresh'])} | {kb(figures['after_refresh'])} "
        f"| {1 - figures['after_refresh'] / figures['before_refresh']:.0%} |",
        f"| Open and refresh | {kb(before)} | {kb(after)} | {1 - after / before:.0%} |",
        "",
        f"Each alone, on opening: gzip {kb(figures['gzip_only_open'])}, fields {kb(figures['fields_only_open'])} "
        f"(bodies before {kb(figures['before_open_body'])}, after {kb(figures['after_open_body'])}).",
        "The entries page in the app's process, median of 300 in turns (database included): "
        f"plain {figures['plain_us']} us, gzipped {figures['gzip_us']} us, "
        f"gzipped with fields {figures['shaped_us']} us.",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="finance-bench-mobile-") as folder:
        with scratch_database(admin_database_url(), "finance_bench_mobile") as url:
            migrate(url)
            settings = settings_for(url, Path(folder))
            me, token = await seed(settings, args.entries, args.inbox)
            async with app_client(settings) as http:
                return await scenario(http, me, token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mobile")
    parser.add_argument("--entries", type=int, default=120, help="the manager's own expenses")
    parser.add_argument("--inbox", type=int, default=18, help="their team's expenses waiting on them")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    print(report(figures, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
