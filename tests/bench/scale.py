"""`make bench ARGS='--only scale'`: approval throughput with 1 API + 1 worker process and with 2 + 2, against the
engine floor on the same Temporal server in the same run, with what one approval costs each process and the
database (the figures docs/scaling.md's load model starts from).

Both layouts get the same 60 connections to PostgreSQL in all (30 per process for 1 + 1, 15 for 2 + 2), so a
difference between them is the processes', not the pools'. Rounds alternate floor, 1 + 1, 2 + 2; each layout's
median round (by its ratio to the floor) is the one reported, with its own CPU split.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from temporalio.client import Client

from tests.bench import approvals
from tests.bench.cluster import Cluster, running_cluster
from tests.bench.cpu import CpuSplit, cpu_split, pids_with_arguments
from tests.bench.generate import plain_url
from tests.bench.stack import bench_database_url, temporal_server

Row = tuple[str, str, str, str, str]
LAYOUTS = {"1 API + 1 worker": (1, 1), "2 API + 2 worker": (2, 2)}
CONNECTIONS = 60  # to PostgreSQL, over all of a layout's processes


@dataclass
class DatabaseCounters:
    """What the database did, read before and after a run: per approval once divided."""

    commits: int
    rows_written: int
    audit_head: int
    wal_lsn: str

    @classmethod
    def read(cls, database_url: str) -> DatabaseCounters:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, "
                "(SELECT coalesce(max(id), 0) FROM audit_log), pg_current_wal_lsn()::text "
                "FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        return cls(int(row[0]), int(row[1]), int(row[2]), str(row[3]))

    def per_unit(self, before: DatabaseCounters, units: int, database_url: str) -> dict[str, float]:
        with psycopg.connect(database_url, autocommit=True) as conn:
            wal = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (self.wal_lsn, before.wal_lsn)).fetchone()
        return {
            "commits": round((self.commits - before.commits) / units, 1),
            "rows written": round((self.rows_written - before.rows_written) / units, 1),
            "audit rows": round((self.audit_head - before.audit_head) / units, 2),
            "WAL kB": round(float(wal[0] if wal else 0) / 1024 / units, 1),
        }


@dataclass
class LayoutRun:
    layout: str
    floor: dict[str, float]
    ours: dict[str, float]
    cpu: CpuSplit
    processes: dict[str, int]
    database: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours["per_second"] / self.floor["per_second"]


def _database_stats_settle() -> None:
    """A backend reports its counters to pg_stat_database within a second of going idle (PostgreSQL 15)."""
    time.sleep(1.5)


def run_layout(
    database_url: str, address: str, work: Path, layout: str, args: argparse.Namespace, floor: dict[str, float]
) -> LayoutRun:
    apis, workers = LAYOUTS[layout]
    pool = CONNECTIONS // (apis + workers)
    extra = {"APPROVAL_REMINDER_HOURS": "48", "DATABASE_POOL_SIZE": str(pool), "DATABASE_MAX_OVERFLOW": "0"}
    units = args.approvals + approvals.WARM_UP  # the warm-up runs inside the measured stretch, as the floor's
    with running_cluster(database_url, address, work, apis=apis, workers=[None] * workers, extra_env=extra) as cluster:
        _database_stats_settle()
        before = DatabaseCounters.read(database_url)
        with cpu_split(cluster.processes(), units) as cpu:
            ours = asyncio.run(
                approvals.approval_throughput(cluster.stack(), args.approvals, args.concurrency, cluster.api_urls)
            )
        _database_stats_settle()
        database = DatabaseCounters.read(database_url).per_unit(before, units, database_url)
        database["history events"] = asyncio.run(history_events(cluster))
    return LayoutRun(layout, floor, ours, cpu, {"API": apis, "worker": workers}, database)


async def history_events(cluster: Cluster, sample: int = 20) -> float:
    """The events in the history of an approved expense's workflow, on average over the newest `sample` (what the
    history service stores and replays per approval: docs/scaling.md). Some take an extra workflow task or two
    (an Update arriving while a task runs), so one alone can mislead."""
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT workflow_id FROM approval_requests WHERE status = 'approved' ORDER BY id DESC LIMIT %s", (sample,)
        ).fetchall()
    if not rows:
        return 0.0
    client = await Client.connect(cluster.temporal_address)
    counts = [len((await client.get_workflow_handle(str(row[0])).fetch_history()).events) for row in rows]
    return round(sum(counts) / len(counts), 1)


@dataclass
class ScaleRuns:
    rounds: dict[str, list[LayoutRun]]  # by layout, in the order run
    floor_cpu: CpuSplit  # the floor's, of the median round

    def median(self, layout: str) -> LayoutRun:
        found = self.rounds[layout]
        return sorted(found, key=lambda run: run.ratio)[len(found) // 2]


def measure(args: argparse.Namespace, work: Path) -> ScaleRuns:
    database_url = plain_url(bench_database_url())  # psycopg's form: the app takes it too
    runs: dict[str, list[LayoutRun]] = {layout: [] for layout in LAYOUTS}
    floor_cpus: list[CpuSplit] = []
    with temporal_server(work) as address:
        port = address.rpartition(":")[2]
        temporal = {"Temporal server": lambda: pids_with_arguments("start-dev", port)}
        for _ in range(args.scale_rounds):
            with cpu_split(temporal, args.approvals + approvals.WARM_UP) as floor_cpu:
                floor = approvals.temporal_floor(address, args.approvals, args.concurrency)
            floor_cpus.append(floor_cpu)
            for layout in LAYOUTS:
                runs[layout].append(run_layout(database_url, address, work, layout, args, floor))
                print(f"  {layout}: {runs[layout][-1].ours['per_second']}/s, floor {floor['per_second']}/s", flush=True)
    by_rate = sorted(range(len(floor_cpus)), key=lambda n: runs["1 API + 1 worker"][n].floor["per_second"])
    return ScaleRuns(runs, floor_cpus[by_rate[len(by_rate) // 2]])


def bench_scale(args: argparse.Namespace, work: Path, rows: list[Row], notes: list[str]) -> None:
    runs = measure(args, work)
    one, two = runs.median("1 API + 1 worker"), runs.median("2 API + 2 worker")
    shape = f"{args.approvals} expenses: create, submit, approve over HTTP; {args.concurrency} concurrent clients"
    rounds = f"median of {args.scale_rounds} rounds"
    rows.append(
        (
            f"Approval throughput, 1 API + 1 worker process ({shape}; {rounds})",
            f"{one.ours['per_second']}/s ({one.ours['seconds']} s)",
            f"floor {one.floor['per_second']}/s ({one.floor['seconds']} s)",
            f"{one.ratio:.2f}",
            ">= 0.5 " + ("met" if one.ratio >= 0.5 else "MISSED"),
        )
    )
    rows.append(
        (
            f"Approval throughput, 2 API + 2 worker processes (clients spread over both APIs; {shape}; {rounds})",
            f"{two.ours['per_second']}/s ({two.ours['seconds']} s)",
            f"floor {two.floor['per_second']}/s ({two.floor['seconds']} s)",
            f"{two.ratio:.2f}",
            "report (2 cores: no headroom to scale into)",
        )
    )
    # Round by round (the same host state for both layouts), and the median of those.
    speedups = sorted(
        b.ours["per_second"] / a.ours["per_second"]
        for a, b in zip(runs.rounds["1 API + 1 worker"], runs.rounds["2 API + 2 worker"], strict=True)
    )
    speedup = speedups[len(speedups) // 2]
    busy = one.cpu.machine_busy
    rows.append(
        (
            "Throughput of 2 + 2 processes over 1 + 1, round by round (median; each round's pair ran back to back)",
            f"{speedup:.2f}x ({', '.join(f'{ratio:.2f}' for ratio in speedups)})",
            "1 + 1",
            f"{speedup:.2f}",
            "report" + (f" (1 + 1 already kept the machine {busy:.0%} busy)" if busy is not None else ""),
        )
    )
    for run in (one, two):
        notes.append(
            f"Scale, {run.layout}: CPU per approval, ms by process group (/proc; {run.processes['API']} API and "
            f'{run.processes["worker"]} worker processes; "this process" is the load client): {run.cpu.describe()}'
        )
        notes.append(
            f"Scale, {run.layout}: per approval in the database and the engine: "
            + ", ".join(f"{name} {value:g}" for name, value in run.database.items())
            + " (WAL is the whole server's, so an upper bound on a shared host)"
        )
        used = run.ours["per_second"] * run.cpu.total_ms / 1000
        notes.append(
            f"Scale, {run.layout}: {run.ours['per_second']}/s x {run.cpu.total_ms} ms = {used:.2f} cores used by the "
            "system's processes and the load client (the load model of docs/scaling.md: throughput = cores given / "
            "CPU per approval)"
        )
    notes.append(
        f"Scale: CPU per workflow in the floor run (the round of the median floor rate): {runs.floor_cpu.describe()}"
    )
    notes.append(
        "Scale rounds, floor / 1 + 1 / 2 + 2 in the order run: "
        + ", ".join(
            f"{a.floor['per_second']} / {a.ours['per_second']} / {b.ours['per_second']}"
            for a, b in zip(runs.rounds["1 API + 1 worker"], runs.rounds["2 API + 2 worker"], strict=True)
        )
        + " approvals/s"
    )
